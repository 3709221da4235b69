"""Gao et al.'s over-optimisation fits on synthetic data with known coefficients: they recover
them, their 95% intervals cover the truth at close to 95%, and the verdicts follow the intervals;
best-of-n's estimator against every subset counted by hand."""
import itertools

import numpy as np
import pytest

from model.studies.instruct.bon import best_of_n, bon_kl, subset_weights
from model.studies.instruct.gao import (UNBOUNDED, GaoFit, fit_gao, over_seeds, overoptimised,
                                        peak_of, pushed_out)

TRUTH = {"bon": (0.40, 0.10), "rl": (0.30, 0.15)}  # (α, β): peaks at d* 2.0 and e^1 ≈ 2.72
START = 0.6
D = np.linspace(0.0, 5.0, 12)


def gold(form: str, d: np.ndarray, noise: float, rng) -> np.ndarray:
    alpha, beta = TRUTH[form]
    fit = GaoFit(form, alpha, beta, START, (0, 0), (0, 0), UNBOUNDED, len(d))
    return fit.predict(d) + noise * rng.standard_normal(len(d))


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_recovers_known_coefficients_without_noise(form):
    fit = fit_gao(D, gold(form, D, 1e-9, np.random.default_rng(0)), form)
    alpha, beta = TRUTH[form]
    assert fit.alpha == pytest.approx(alpha, abs=1e-6)
    assert fit.beta == pytest.approx(beta, abs=1e-6)
    assert fit.start == pytest.approx(START, abs=1e-6)
    assert fit.peak == pytest.approx(peak_of(alpha / beta, form), rel=1e-5)
    assert overoptimised(fit) == "holds"


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_intervals_cover_the_truth_at_their_nominal_rate(form):
    rng = np.random.default_rng(1)
    alpha, beta = TRUTH[form]
    d_star = peak_of(alpha / beta, form)
    hits = np.zeros(3)
    draws = 400
    for _ in range(draws):
        fit = fit_gao(D, gold(form, D, 0.05, rng), form)
        hits += [fit.alpha_ci[0] <= alpha <= fit.alpha_ci[1],
                 fit.beta_ci[0] <= beta <= fit.beta_ci[1],
                 fit.peak_ci[0] <= d_star <= fit.peak_ci[1]]
    assert np.all((0.90 <= hits / draws) & (hits / draws <= 0.98)), hits / draws


def seeded_gold(form: str, spread: float, noise: float, rng) -> np.ndarray:
    """One seed's points: Gao's curve with its own (α, β), drawn around the truth with SD
    spread·(α, β) (what training draws), plus the points' own noise."""
    alpha, beta = TRUTH[form]
    fit = GaoFit(form, alpha * (1 + spread * rng.standard_normal()),
                 beta * (1 + spread * rng.standard_normal()), START, (0, 0), (0, 0), UNBOUNDED,
                 len(D))
    return fit.predict(D) + noise * rng.standard_normal(len(D))


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_a_fit_over_seeds_recovers_the_mean_coefficients(form):
    rng = np.random.default_rng(4)
    fits = [fit_gao(D, seeded_gold(form, 0.0, 1e-9, rng), form) for _ in range(3)]
    pooled = over_seeds(fits)
    assert (pooled.alpha, pooled.beta) == pytest.approx(TRUTH[form], abs=1e-6)
    assert pooled.seeds == 3 and pooled.n == 3 * len(D)
    with pytest.raises(ValueError, match="2 seeds or more"):
        over_seeds(fits[:1])


@pytest.mark.parametrize("form", ["bon", "rl"])
@pytest.mark.parametrize("spread, noise", [(0.3, 0.005), (0.0, 0.05)])
def test_intervals_over_three_seeds_cover_at_their_nominal_rate(form, spread, noise):
    """Three seeds, the noise mostly the seeds' own coefficients or mostly the points': either
    way α's, β's and the peak's 95% intervals cover the truth about 95% of the time."""
    rng = np.random.default_rng(5)
    alpha, beta = TRUTH[form]
    d_star = peak_of(alpha / beta, form)
    hits, draws = np.zeros(3), 400
    for _ in range(draws):
        fit = over_seeds([fit_gao(D, seeded_gold(form, spread, noise, rng), form)
                          for _ in range(3)])
        hits += [fit.alpha_ci[0] <= alpha <= fit.alpha_ci[1],
                 fit.beta_ci[0] <= beta <= fit.beta_ci[1],
                 fit.peak_ci[0] <= d_star <= fit.peak_ci[1]]
    assert np.all((0.91 <= hits / draws) & (hits / draws <= 0.99)), hits / draws


def test_verdicts_follow_the_intervals():
    rng = np.random.default_rng(2)
    flat = fit_gao(D, START + 0.05 * rng.standard_normal(len(D)), "rl")  # β = 0: no peak
    assert overoptimised(flat) == "undetermined" and flat.peak_ci == UNBOUNDED
    rising = fit_gao(D, START + 0.1 * D + 0.02 * D ** 2, "bon")  # β = -0.02: keeps rising
    assert overoptimised(rising) == "does not hold"
    near, far = (GaoFit("rl", 0.3, 0.15, START, (0, 0), (0.1, 0.2), ci, 12)
                 for ci in ((2.0, 3.0), (4.0, 6.0)))
    assert pushed_out([near, far]) == "holds"
    assert pushed_out([far, near]) == "does not hold"
    unsure = GaoFit("rl", 0.3, 0.01, START, (0, 0), (-0.1, 0.1), UNBOUNDED, 12)
    assert pushed_out([near, unsure, far]) == "undetermined"
    assert pushed_out([near, unsure, near]) == "undetermined"
    assert pushed_out([far, unsure, near]) == "does not hold"  # the largest's peak below the smallest's


def test_too_few_points_is_an_error():
    with pytest.raises(ValueError, match="distinct"):
        fit_gao([0.0, 1.0, 1.0, 1.0], [0.5, 0.6, 0.6, 0.6], "rl")


def test_best_of_n_is_the_mean_over_every_n_subset_of_the_answers():
    """The estimator equals, for each prompt, the gold score of the proxy's pick averaged over
    all C(N, n) subsets: what drawing n fresh answers gives on average."""
    rng = np.random.default_rng(3)
    proxy, gold = rng.standard_normal((5, 7)), rng.random((5, 7))
    for n in range(1, 8):
        by_hand = [np.mean([gold[p, list(s)][np.argmax(proxy[p, list(s)])]
                            for s in itertools.combinations(range(7), n)]) for p in range(5)]
        np.testing.assert_allclose(best_of_n(proxy, gold, n), by_hand)
        assert subset_weights(7, n).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(best_of_n(proxy, gold, 1), gold.mean(1))  # n = 1: any answer
    np.testing.assert_allclose(best_of_n(proxy, gold, 7), gold[range(5), proxy.argmax(1)])


def test_best_of_n_kl_by_hand():
    np.testing.assert_allclose(bon_kl([1, 2, 4]), [0.0, np.log(2) - 0.5, np.log(4) - 0.75])
