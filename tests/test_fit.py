"""Tests for model/studies/scaling/fit.py: synthetic recovery and Besiroglu et al.'s Chinchilla
refit."""
import csv
from pathlib import Path

import numpy as np
import pytest

from model.studies.scaling.fit import (_objective, _vertex, allocation, fit_chinchilla,
                                       fit_frontier, fit_isoflop, fit_loglog_line,
                                       fit_optimal_allocation, fit_power_law, frontier,
                                       isoflop_parabolas, leave_largest_out, optimal_n)

# The data sits beside the repo, in the workspace's shared/ folder: <workspace>/shared/data/...
CHINCHILLA_CSV = (Path(__file__).resolve().parents[2] / "shared" / "data"
                  / "chinchilla_figure4_points.csv")

E_TRUE, A_TRUE, ALPHA_TRUE = 1.5, 20.0, 0.3
SIZES = np.geomspace(1e4, 3e6, 8)


def _law(N: np.ndarray) -> np.ndarray:
    return E_TRUE + A_TRUE * N ** (-ALPHA_TRUE)


def test_power_law_recovers_known_parameters_from_noisy_data():
    rng = np.random.default_rng(0)
    L = _law(SIZES) * np.exp(0.01 * rng.standard_normal(len(SIZES)))  # 1% multiplicative noise
    fit = fit_power_law(SIZES, L, n_boot=200, seed=0)
    for true, est, (lo, hi) in [(E_TRUE, fit.E, fit.E_ci), (A_TRUE, fit.A, fit.A_ci),
                                (ALPHA_TRUE, fit.alpha, fit.alpha_ci)]:
        assert lo <= true <= hi, (true, lo, hi)
        assert lo <= est <= hi
    # 8 points with 1% noise pin alpha and E only loosely, and A (via a - alpha log N) least of all.
    assert abs(fit.E - E_TRUE) < 0.1
    assert abs(fit.alpha - ALPHA_TRUE) < 0.05
    assert abs(np.log(fit.A / A_TRUE)) < np.log(1.5)
    assert np.allclose(fit.predict(SIZES), L, rtol=0.02)


def test_leave_largest_out_is_exact_on_clean_data():
    held = leave_largest_out(SIZES, _law(SIZES), n_boot=20)
    assert held.actual == pytest.approx(_law(SIZES[-1]))
    assert abs(held.error) < 1e-4 and held.predicted == pytest.approx(held.actual, abs=1e-4)
    assert held.interval[0] - 1e-4 <= held.actual <= held.interval[1] + 1e-4
    # The floor-free line cannot bend towards the floor: it overshoots the drop and predicts low
    assert held.loglog_error < -0.01
    # A line in log N through the three next-largest sizes misses the curvature by less
    assert held.loglog_error < held.local_error < 0


@pytest.mark.long
@pytest.mark.parametrize("floor", [E_TRUE, 0.0])
def test_power_law_intervals_cover_a_known_law(floor):
    # 30 synthetic studies of 7 sizes with 1% log-noise, each fitted with 60 parametric
    # resamples, the 8th size predicted. Few resamples make percentile limits a little narrow:
    # at 60 x 60 the rates were 0.92, 0.87, 0.88 and 0.95 for E', A, alpha and the prediction.
    rng = np.random.default_rng(1)
    law = floor + A_TRUE * SIZES ** (-ALPHA_TRUE)
    hits = np.zeros(4)
    for rep in range(30):
        L = law * np.exp(0.01 * rng.standard_normal(len(SIZES)))
        fit = fit_power_law(SIZES[:-1], L[:-1], n_boot=60, seed=rep)
        lo, hi = fit.prediction_interval(SIZES[-1])
        hits += [fit.E_ci[0] <= floor <= fit.E_ci[1], fit.A_ci[0] <= A_TRUE <= fit.A_ci[1],
                 fit.alpha_ci[0] <= ALPHA_TRUE <= fit.alpha_ci[1], lo <= L[-1] <= hi]
        if fit.E_on_bound:  # a one-sided limit that is not degenerate
            assert fit.E_ci[0] == 0.0 and fit.E_ci[1] > 0.01 and 0 < fit.E_at_bound <= 1
    assert np.all(hits / 30 >= 0.8), hits / 30


def test_floor_at_zero_is_a_bound_not_a_drift():
    # The old fit, with E = exp(e), stalled at e ~ -26 with an interval [9.4e-12, 9.4e-12].
    L = A_TRUE * SIZES ** (-ALPHA_TRUE) * np.exp(0.002 * np.sin(np.arange(len(SIZES))))
    fit = fit_power_law(SIZES, L, n_boot=100, seed=0)
    assert fit.E_ci[0] == 0.0 and fit.E_ci[1] > 1e-3
    assert fit.alpha_ci[0] < ALPHA_TRUE < fit.alpha_ci[1] and fit.alpha_ci[0] >= 0


def test_loglog_line_recovers_a_floor_free_power_law():
    slope, intercept = fit_loglog_line(SIZES, 5.0 * SIZES ** -0.1)
    assert slope == pytest.approx(-0.1) and intercept == pytest.approx(np.log(5.0))


def _load_chinchilla() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not CHINCHILLA_CSV.is_file():
        pytest.fail(f"Chinchilla Figure 4 data not found at {CHINCHILLA_CSV}; this test needs the "
                    "workspace's shared/data folder beside the repository")
    with CHINCHILLA_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))  # not np.genfromtxt: its '#' comments eat the hex colours
    N, C, L = (np.array([float(r[key]) for r in rows])
               for key in ("Model Size", "Training FLOP", "loss"))
    assert len(L) == 245
    keep = np.argsort(L)[:-5]  # Besiroglu et al. drop the 5 highest-loss points
    N, C, L = N[keep], C[keep], L[keep]
    return N, C / (6 * N), L


def test_chinchilla_approach3_matches_besiroglu_et_al():
    N, D, L = _load_chinchilla()
    # 400 resamples (~3 s) instead of 1000 (~8 s): the percentile bounds then move by ~0.005
    # between seeds, well inside the 0.01 tolerance used against the published intervals below.
    fit = fit_chinchilla(N, D, L, n_boot=400, seed=0)
    # Point estimates inside Besiroglu et al.'s published intervals, and close to their point
    # estimates. Issue #17 reads those intervals as 90%, not 95%: a 95% interval is then ~1.19x
    # as wide, 0.005-0.010 further out per side, which the 0.01 tolerance below still admits --
    # so this checks the intervals' placement, not their level (the coverage test does that).
    assert 1.769 <= fit.E <= 1.871 and fit.E == pytest.approx(1.8169, abs=0.01)
    assert 0.317 <= fit.alpha <= 0.373 and fit.alpha == pytest.approx(0.3478, abs=0.01)
    assert 0.331 <= fit.beta <= 0.415 and fit.beta == pytest.approx(0.3658, abs=0.01)
    assert fit.A == pytest.approx(482.01, rel=0.1) and fit.B == pytest.approx(2085.43, rel=0.1)
    # The pitfall: with default tolerances refits stay at their start and alpha's CI is ~0.002 wide.
    assert fit.alpha_ci[1] - fit.alpha_ci[0] > 0.01
    for ci, published in [(fit.E_ci, (1.769, 1.871)), (fit.alpha_ci, (0.317, 0.373)),
                          (fit.beta_ci, (0.331, 0.415))]:
        assert np.allclose(ci, published, atol=0.01), (ci, published)
    # A and B: their published estimates (482.01, 2085.43; standard errors 124.58, 1293.23)
    # inside our intervals, which are as wide as those errors make them, within a factor of 2.
    for (lo, hi), published, se in [(fit.A_ci, 482.01, 124.58), (fit.B_ci, 2085.43, 1293.23)]:
        assert lo <= published <= hi and 2 * 1.96 * se / 2 < hi - lo < 2 * 1.96 * se * 2
    assert fit.skipped == 0


def test_chinchilla_floor_at_zero_is_a_bound():
    rng = np.random.default_rng(3)
    N, D = np.geomspace(1e6, 1e9, 30), rng.permutation(np.geomspace(1e8, 1e11, 30))
    L = (400 * N ** -0.34 + 2000 * D ** -0.37) * np.exp(0.002 * rng.standard_normal(30))
    fit = fit_chinchilla(N, D, L, n_boot=20, seed=0)
    assert fit.E_ci[0] == 0.0 and 0 < fit.E_ci[1] < 0.5
    assert fit.alpha_ci[0] < fit.alpha < fit.alpha_ci[1]


def test_isoflop_parabolas_recover_known_optimum():
    budgets = np.array([1e15, 1e16, 1e17, 1e18])
    n_opt = 0.1 * budgets ** 0.5  # N_opt ∝ C^0.5
    N, C, L = [], [], []
    for c, n in zip(budgets, n_opt):
        sizes = n * np.exp(np.linspace(-1.5, 1.0, 7))  # asymmetric around the optimum
        N += list(sizes)
        C += [c] * len(sizes)
        L += list(3.0 - 0.1 * np.log10(c) + 0.05 * np.log(sizes / n) ** 2)
    N, C, L = np.array(N + [1e6, 2e6]), np.array(C + [1e19, 1e19]), np.array(L + [1.0, 0.9])
    optima = isoflop_parabolas(N, C, L)
    assert [o[0] for o in optima] == list(budgets)  # the 2-point budget is skipped
    assert np.allclose([o[1] for o in optima], n_opt, rtol=1e-6)
    assert np.allclose([o[2] for o in optima], 3.0 - 0.1 * np.log10(budgets))
    exponent = fit_optimal_allocation([o[0] for o in optima], [o[1] for o in optima])
    assert exponent == pytest.approx(0.5)


def test_isoflop_parabolas_skip_budgets_without_an_interior_minimum():
    N = np.array([1e6, 2e6, 4e6, 1e6, 2e6, 4e6])
    C = np.array([1e17] * 3 + [1e18] * 3)
    L = np.array([3.0, 2.9, 2.8,   # monotone: the vertex lies outside the sampled sizes
                  2.0, 2.2, 2.0])  # concave: no minimum at all
    assert isoflop_parabolas(N, C, L) == []


def test_frontier_is_monotone_and_fit_frontier_recovers_the_envelope():
    rng = np.random.default_rng(1)
    c = np.geomspace(1e8, 1e14, 40)
    law = 1.0 + 10.0 * c ** -0.2
    plateau = np.full(10, 1.2) + 0.01 * rng.random(10)  # a run that stalls above the frontier
    C = np.concatenate([c, c, np.geomspace(1e12, 1e14, 10)])
    L = np.concatenate([law, law + 0.05 * rng.random(40), plateau])
    perm = rng.permutation(len(C))
    Cs, Lmin = frontier(C[perm], L[perm])
    assert np.all(np.diff(Cs) >= 0) and np.all(np.diff(Lmin) <= 0)
    assert Lmin[-1] == L.min()
    # as three runs' curves, the stalled one included
    fit = fit_frontier([(c, law), (c, L[40:80]), (C[80:], plateau)], n_boot=0)
    assert fit.alpha == pytest.approx(0.2, abs=1e-3) and fit.E == pytest.approx(1.0, abs=1e-3)


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    logX = np.log(rng.uniform(1e6, 1e10, size=(50, 2)))
    theta = np.array([6.2, 0.35, 7.7, 0.37, np.exp(0.6)])  # the floor E itself, not log E
    exact = np.logaddexp.reduce([6.2 - 0.35 * logX[:, 0], 7.7 - 0.37 * logX[:, 1],
                                 np.full(50, 0.6)], axis=0)
    # Residuals of ~delta put points on both branches of the Huber loss.
    logL = exact + 1e-3 * rng.standard_normal(50)
    _, grad = _objective(theta, logX, logL, 1e-3)
    eps = 1e-7  # central differences: forward ones are swamped by the 1/delta**2 curvature
    numeric = [(_objective(theta + eps * e, logX, logL, 1e-3)[0]
                - _objective(theta - eps * e, logX, logL, 1e-3)[0]) / (2 * eps)
               for e in np.eye(len(theta))]
    assert np.allclose(grad, numeric, rtol=1e-6)


def test_exactly_determined_fit_has_no_ci():
    N = np.array([1e4, 1e5, 1e6])
    fit = fit_power_law(N, _law(N), n_boot=50)
    assert fit.alpha == pytest.approx(ALPHA_TRUE, abs=1e-3)
    assert all(np.isnan(fit.alpha_ci)) and all(np.isnan(fit.E_ci))


def test_too_few_points_raise():
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_power_law([1e4, 1e5], [3.0, 2.5])
    with pytest.raises(ValueError, match="at least 5 points"):
        fit_chinchilla([1e6] * 4, [1e9] * 4, [2.0] * 4)
    with pytest.raises(ValueError, match="at least 4 points"):
        leave_largest_out([1e4, 1e5, 1e6], [3.0, 2.5, 2.2])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1e4, 1e5, 1e6], [3.0, -2.5, 2.2])
    with pytest.raises(ValueError, match="3 distinct"):  # 4 points but only 2 sizes
        fit_power_law([1e4, 1e4, 1e5, 1e5], [3.0, 3.1, 2.5, 2.6])
    with pytest.raises(ValueError, match="length"):
        fit_power_law([1e4, 1e5, 1e6], [3.0, 2.5])


def test_frontier_intervals_resample_whole_runs():
    # each run is off the law by its own factor: its points share that error, so resampling
    # points would count it six times over; resampling runs counts it once
    rng = np.random.default_rng(4)
    curves = []
    for n in range(6):
        c = np.geomspace(1e9 * 4 ** n, 1e10 * 4 ** n, 6)
        curves.append((c, (1.0 + 10.0 * c ** -0.2) * (1 + 0.01 * rng.standard_normal())))
    fit = fit_frontier(curves, n_boot=30, seed=0)
    assert fit.alpha_ci[0] < fit.alpha < fit.alpha_ci[1]
    assert len(fit.boot) + fit.skipped == 30


# A known L(N, D) = E + A/N^alpha + B/D^beta in the range of the data-axis study (characters,
# non-embedding parameters): N_opt ∝ C^a with a = beta/(alpha + beta) = 0.615 under C = 6ND.
LAW_ND = dict(E=1.0, A=5.0, alpha=0.25, B=150.0, beta=0.4)
A_TRUE_ND, B_TRUE_ND = (float(x) for x in allocation(LAW_ND["alpha"], LAW_ND["beta"]))


def _law_nd(N: np.ndarray, D: np.ndarray) -> np.ndarray:
    return (LAW_ND["E"] + LAW_ND["A"] * N ** -LAW_ND["alpha"]
            + LAW_ND["B"] * D ** -LAW_ND["beta"])


def _grid(sizes: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    N, D = np.meshgrid(sizes, tokens)
    return N.ravel(), D.ravel()


def test_allocation_exponents_and_the_optimal_size_follow_hoffmann_eq4():
    assert (A_TRUE_ND, B_TRUE_ND) == pytest.approx((0.4 / 0.65, 0.25 / 0.65))
    # Besiroglu et al.'s alpha 0.3478, beta 0.3658 give their a of about 0.51
    assert allocation(0.3478, 0.3658)[0] == pytest.approx(0.5126, abs=1e-4)
    params = np.array([LAW_ND[k] for k in ("A", "alpha", "B", "beta", "E")])
    for C in (1e11, 1e13):  # N_opt minimises the loss along C = 6ND, found by brute force
        grid = np.geomspace(1e2, 1e9, 200_001)
        brute = grid[np.argmin(_law_nd(grid, C / (6 * grid)))]
        assert optimal_n(params, C)[0, 0] == pytest.approx(brute, rel=1e-3)
    assert np.log(optimal_n(params, 4e13) / optimal_n(params, 1e13)) / np.log(4) == (
        pytest.approx(A_TRUE_ND))


def test_chinchilla_recovers_alpha_beta_and_the_compute_optimal_exponents():
    N, D = _grid(np.geomspace(1e4, 1e6, 6), np.geomspace(3e5, 3e7, 5))
    rng = np.random.default_rng(6)
    L = _law_nd(N, D) * np.exp(0.002 * rng.standard_normal(len(N)))
    fit = fit_chinchilla(N, D, L, n_boot=60, seed=0)
    assert fit.alpha == pytest.approx(LAW_ND["alpha"], abs=0.03)
    assert fit.beta == pytest.approx(LAW_ND["beta"], abs=0.03)
    assert fit.a == pytest.approx(A_TRUE_ND, abs=0.03) and fit.a + fit.b == pytest.approx(1)
    for true, est, (lo, hi) in [(A_TRUE_ND, fit.a, fit.a_ci), (B_TRUE_ND, fit.b, fit.b_ci)]:
        assert lo <= true <= hi and lo <= est <= hi and hi - lo < 0.2
    # from the refits, not from alpha's and beta's marginal intervals: a + b = 1 in every refit
    assert fit.a_ci[0] + fit.b_ci[1] == pytest.approx(1) and len(fit.boot) == 60
    lo, hi = fit.optimal_n_band(np.array([1e12]))
    assert lo[0] < fit.optimal_n(1e12)[0] < hi[0]


@pytest.mark.long
def test_chinchilla_intervals_cover_a_known_law_on_the_data_axis_design():
    # The preset's shape: 4 sizes a decade apart, 4 budgets 2 decades apart, with the seed
    # noise measured on the laptop ladder (SD of log L 0.004). 20 draws of 30 refits each (few
    # refits make percentile limits a little narrow): here 0.85, 1.0, 0.85, 0.85 for alpha, beta,
    # a and b; at 40 draws of 40 refits 0.93, 1.0, 0.93, 0.93.
    N, D = _grid(np.geomspace(1.4e4, 1.1e5, 4), np.geomspace(3e5, 3e7, 4))
    rng = np.random.default_rng(5)
    truth = [LAW_ND["alpha"], LAW_ND["beta"], A_TRUE_ND, B_TRUE_ND]
    hits = np.zeros(4)
    for draw in range(20):
        L = _law_nd(N, D) * np.exp(0.004 * rng.standard_normal(len(N)))
        fit = fit_chinchilla(N, D, L, n_boot=30, seed=draw)
        hits += [lo <= t <= hi for t, (lo, hi) in
                 zip(truth, (fit.alpha_ci, fit.beta_ci, fit.a_ci, fit.b_ci))]
    assert np.all(hits / 20 >= 0.75), hits / 20


def _isoflop_design(offsets: np.ndarray, budgets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sizes at fixed log-offsets from each budget's true optimum, D = C/(6N): the loss in
    log(N/N_opt) then has the same shape at every budget, so the parabolas' vertices sit at one
    offset from the truth and the slope through them is the true exponent."""
    params = np.array([LAW_ND[k] for k in ("A", "alpha", "B", "beta", "E")])
    N = np.concatenate([optimal_n(params, c)[0] * np.exp(offsets) for c in budgets])
    C = np.repeat(budgets, len(offsets))
    return N, C, _law_nd(N, C / (6 * N))


def test_isoflop_exponent_is_recovered_with_an_interval_that_covers_it():
    budgets = 3.5e11 * 4.0 ** np.arange(3)
    N, C, L = _isoflop_design(np.linspace(-1.2, 1.2, 5), budgets)
    fit = fit_isoflop(N, C, L, n_boot=200)
    assert len(fit.optima) == 3 and fit.df == 3 * (5 - 3)
    assert fit.a == pytest.approx(A_TRUE_ND, abs=1e-6)
    assert fit.a_ci[0] < A_TRUE_ND < fit.a_ci[1]
    # 60 noisy draws of 100 resamples: at 100 x 200 the rate was 0.98 (the pooled residual SD
    # also carries the parabola's misfit, so the interval is a little conservative)
    rng = np.random.default_rng(0)
    hits = 0
    for draw in range(60):
        noisy = L * np.exp(0.004 * rng.standard_normal(len(L)))
        lo, hi = fit_isoflop(N, C, noisy, n_boot=100, seed=draw).a_ci
        hits += lo <= A_TRUE_ND <= hi
    assert hits / 60 >= 0.85, hits / 60


def test_isoflop_exponent_is_undetermined_without_two_interior_optima():
    N, C, L = _isoflop_design(np.linspace(-1.2, 1.2, 5), np.array([1e12]))
    one = fit_isoflop(N, C, L)
    assert len(one.optima) == 1 and np.isnan(one.a) and all(np.isnan(one.a_ci))
    # two budgets of exactly 3 sizes: a is determined, but no residual is left to resample
    N, C, L = _isoflop_design(np.linspace(-1.0, 1.0, 3), np.array([1e12, 4e12]))
    three = fit_isoflop(N, C, L)
    assert three.a == pytest.approx(A_TRUE_ND, abs=1e-6) and all(np.isnan(three.a_ci))


def test_a_parabola_too_flat_for_its_vertex_to_be_a_size_has_no_minimum():
    # a bootstrap resample can be this flat: exp(x_opt) would overflow and break the slope
    x = np.log(np.array([1e4, 3e4, 1e5, 3e5]))
    assert _vertex(x, 1e-12 * x ** 2 - 1e-6 * x) is None
    assert _vertex(x, -(x - 10) ** 2) is None  # a maximum
    assert _vertex(x, (x - 10) ** 2 + 1.5) == (pytest.approx(10), pytest.approx(1.5))
