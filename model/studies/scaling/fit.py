"""Scaling-law fits: L(N) power laws, Chinchilla approaches 2 and 3, the compute frontier.

Every parametric fit here is one model, power-law terms and a floor,

    L_hat = A_1 / X_1^alpha_1 + ... + A_K / X_K^alpha_K + E,   A_k = exp(a_k),

fitted in log space (Hoffmann et al. 2022). K=1 is L(N) = E + A N^-alpha; K=2 with X = (N, D) is
Chinchilla's approach 3. The fit minimises the Huber loss of log-residuals from a grid of starts,
with E >= 0 and every alpha >= 0 as bounds. The floor is a parameter of its own, not exp(e): in
e = log E the bound E = 0 lies at e = -inf, where the gradient vanishes and a fit that wants no
floor stalls at e ~ -26 with a degenerate interval.

Intervals are 95% percentile intervals over refits of resampled data: points for Chinchilla
(Besiroglu et al.'s method), a parametric bootstrap from the noise for L(N), whole runs for the
frontier. Each refit restarts from the estimate and a few grid starts, so a resample whose optimum
lies elsewhere (e.g. a floor away from 0) finds it. A floor estimated at 0 gets a one-sided upper
limit, and the share of refits at the bound is kept. Resamples with too few distinct x to
determine the fit are counted, not fitted.

Pitfall (Besiroglu et al. 2024): the raw Huber(1e-3) objective is ~1e-3 on Chinchilla's points and
its gradient is below scipy's default L-BFGS-B gtol (1e-5), so bootstrap refits "converge" at their
start and the CIs come out absurdly narrow (alpha's ~0.002 wide instead of ~0.056). We divide the
objective by delta**2 (quadratic part becomes 0.5 (r/delta)^2) and tighten ftol/gtol.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

_OPTIONS = {"ftol": 1e-14, "gtol": 1e-9, "maxiter": 10_000}
# Hoffmann et al.'s grid of starts, per term (a, alpha) and for the floor (they grid e = log E).
_GRID_A = np.arange(0.0, 26.0, 5.0)
_GRID_ALPHA = np.arange(0.0, 2.01, 0.5)
_GRID_E = np.exp(np.arange(-1.0, 1.01, 0.5))
_N_STARTS = 20
_REFIT_FLOORS = _GRID_E[:1]  # refits also start from the estimate with these floors
_AT_BOUND = 1e-9  # a floor this small is the bound E = 0 (L-BFGS-B lands on it exactly)
# Huber delta of L(N): far above every residual (0.1 nats against ~0.01), i.e. least squares in
# log L, the maximum-likelihood fit under the Gaussian log-noise its parametric bootstrap draws.
# Hoffmann's delta = 1e-3 would make it nearly least-absolute-deviation at these residuals; it is
# kept for the Chinchilla path, where it is the published method.
LN_DELTA = 0.1

CI = tuple[float, float]
Datasets = Iterable[tuple[np.ndarray, np.ndarray]]  # resampled (log X, log L) to refit


def _check(*arrays: np.ndarray, min_points: int = 3) -> list[np.ndarray]:
    """Validate inputs: equal 1-D lengths, finite, positive (everything here is logged)."""
    out = [np.asarray(x, dtype=float).ravel() for x in arrays]
    n = len(out[0])
    if any(len(x) != n for x in out):
        raise ValueError(f"inputs differ in length: {[len(x) for x in out]}")
    if n < min_points:
        raise ValueError(f"need at least {min_points} points to fit, got {n}")
    if not all(np.all(np.isfinite(x)) and np.all(x > 0) for x in out):
        raise ValueError("inputs must be finite and positive (they are fitted in log space)")
    return out


def _log_model(theta: np.ndarray, logX: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log L_hat, d log L_hat / d(term k) (softmax weights) and d log L_hat / dE (= 1/L_hat)."""
    K = logX.shape[1]
    T = theta[0:2 * K:2] - theta[1:2 * K:2] * logX
    with np.errstate(divide="ignore"):
        logE = np.log(theta[-1])  # -inf on the bound, which the max and exp below handle
    m = np.maximum(T.max(axis=1), logE)
    w = np.exp(T - m[:, None])
    s = w.sum(axis=1) + np.exp(logE - m)
    log_hat = m + np.log(s)
    # Clipped where L_hat underflows: only a line search's trial step goes that far from the data.
    return log_hat, w / s[:, None], np.exp(-np.maximum(log_hat, -700.0))


def _objective(theta: np.ndarray, logX: np.ndarray, logL: np.ndarray, delta: float):
    """Huber(delta) of log-residuals divided by delta**2, and its gradient."""
    K = logX.shape[1]
    log_hat, w, inv_hat = _log_model(theta, logX)
    u = (log_hat - logL) / delta
    au = np.abs(u)
    f = np.where(au <= 1.0, 0.5 * u * u, au - 0.5).sum()
    gu = np.clip(u, -1.0, 1.0) / delta
    grad = np.empty_like(theta)
    grad[0:2 * K:2] = gu @ w
    grad[1:2 * K:2] = -gu @ (w * logX)
    grad[-1] = gu @ inv_hat
    return f, grad


def _minimise(theta0: np.ndarray, logX: np.ndarray, logL: np.ndarray, delta: float):
    K = logX.shape[1]
    bounds = [(None, None), (0.0, None)] * K + [(0.0, None)]  # alpha >= 0, E >= 0
    return minimize(_objective, theta0, args=(logX, logL, delta), jac=True,
                    method="L-BFGS-B", bounds=bounds, options=_OPTIONS)


def _best_of(starts: np.ndarray, logX: np.ndarray, logL: np.ndarray, delta: float) -> np.ndarray:
    return min((_minimise(s, logX, logL, delta) for s in starts), key=lambda r: r.fun).x


def _starts(logX: np.ndarray, logL: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Point estimate of theta = (a_1, alpha_1, ..., a_K, alpha_K, E), best of a grid of starts,
    and the starts of every refit: the estimate, and the estimate with its floor moved to each
    of _REFIT_FLOORS (a resample's optimum may lie at another floor; near starts converge fast)."""
    # Hoffmann's full grid is 4,500 starts for K=2 (~50 s of L-BFGS-B here). Evaluating the
    # objective on it is cheap, and on Chinchilla's points the 10 lowest-valued starts all reach the
    # best optimum (1,663 of the 4,500 do), so only the _N_STARTS (20) lowest are optimised.
    K = logX.shape[1]
    grid = np.array(list(itertools.product(*([_GRID_A, _GRID_ALPHA] * K), _GRID_E)))
    f0 = np.array([_objective(g, logX, logL, delta)[0] for g in grid])
    theta = _best_of(grid[np.argsort(f0)[:_N_STARTS]], logX, logL, delta)
    moved = np.repeat(theta[None], len(_REFIT_FLOORS), axis=0)
    moved[:, -1] = _REFIT_FLOORS
    return theta, np.vstack([theta, moved])


def _n_params(logX: np.ndarray) -> int:
    return 2 * logX.shape[1] + 1


def _determined(logX: np.ndarray) -> bool:
    """More distinct x than parameters: the fit is determined and leaves residuals."""
    return len(np.unique(logX, axis=0)) > _n_params(logX)


def _refits(starts: np.ndarray, datasets: Datasets, delta: float) -> tuple[np.ndarray, int]:
    """Refits of the resampled data sets, and how many were skipped as undetermined."""
    boot, skipped = [], 0
    for logX, logL in datasets:
        if _determined(logX):
            boot.append(_best_of(starts, logX, logL, delta))
        else:
            skipped += 1
    return np.array(boot).reshape(len(boot), starts.shape[1]), skipped


def _estimate(logX: np.ndarray, logL: np.ndarray, delta: float):
    n_params, n_distinct = _n_params(logX), len(np.unique(logX, axis=0))
    if n_distinct < n_params:
        raise ValueError(f"{n_params} parameters need at least {n_params} distinct x values, "
                         f"got {n_distinct}")
    return _starts(logX, logL, delta)


def _natural(theta: np.ndarray) -> np.ndarray:
    """(a_1, alpha_1, ..., E) -> (A_1, alpha_1, ..., E): exponentiate the a entries. A refit
    that ran off to log A > 709 gets A = inf: unbounded, as its interval's upper end says."""
    out = np.array(theta, dtype=float)
    with np.errstate(over="ignore"):
        out[..., 0:-1:2] = np.exp(out[..., 0:-1:2])
    return out


def _cis(boot: np.ndarray, E: float) -> list[CI]:
    """Percentile 95% interval per parameter, in natural units; (nan, nan) without samples.

    The floor's interval is [0, 95th percentile], one-sided, when the estimate is on the bound;
    otherwise its lower limit reads 0 when the bound holds at least 2.5% of the refits."""
    if len(boot) == 0:
        return [(float("nan"), float("nan"))] * boot.shape[1]
    nat = _natural(boot)
    out = [_interval(column) for column in nat.T]
    if E <= _AT_BOUND:
        out[-1] = (0.0, float(np.percentile(nat[:, -1], 95)))
    elif out[-1][0] <= _AT_BOUND:
        out[-1] = (0.0, out[-1][1])
    return out


def _interval(samples: np.ndarray) -> CI:
    """Percentile 95% interval of bootstrap samples, the one rule every interval here uses;
    (nan, nan) without any finite sample (no refits, or every one undefined)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PowerLawFit:
    """L(N) = E + A * N**(-alpha), with bootstrap 95% CIs.

    E_at_bound: share of refits with the floor at 0; skipped: resamples too degenerate to refit;
    noise: per refit, the SD of log L its parametric resample drew (empty for other resamplings)."""
    E: float
    A: float
    alpha: float
    E_ci: CI
    A_ci: CI
    alpha_ci: CI
    E_at_bound: float = float("nan")
    skipped: int = 0
    noise: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 3)), repr=False, compare=False)

    @property
    def E_on_bound(self) -> bool:
        """The fitted floor is the bound E = 0 (its interval is then one-sided)."""
        return self.E <= _AT_BOUND

    def predict(self, N: np.ndarray | float) -> np.ndarray:
        return self.E + self.A * np.asarray(N, dtype=float) ** (-self.alpha)

    def curves(self, N: np.ndarray) -> np.ndarray:
        """(refits, len(N)): the fitted curve of every bootstrap refit (A, alpha, E); NaN where
        a refit's A is inf and N^-alpha underflows to 0 (no curve: the bands leave it out)."""
        N = np.asarray(N, dtype=float)
        with np.errstate(invalid="ignore"):
            return self.boot[:, 2:3] + self.boot[:, 0:1] * N[None, :] ** (-self.boot[:, 1:2])

    def band(self, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise 95% band of the fitted curve over the bootstrap refits."""
        lo, hi = np.nanpercentile(self.curves(N), [2.5, 97.5], axis=0)
        return lo, hi

    def prediction_interval(self, N: float, seed: int = 0) -> CI:
        """95% interval for a new measurement at N: a refit's curve times its own log-noise."""
        rng = np.random.default_rng(seed)
        draws = self.curves([N])[:, 0] * np.exp(self.noise * rng.standard_normal(len(self.noise)))
        lo, hi = np.nanpercentile(draws, [2.5, 97.5])
        return float(lo), float(hi)


def _power_law_fit(theta: np.ndarray, boot: np.ndarray, skipped: int,
                   noise: np.ndarray = np.empty(0)) -> PowerLawFit:
    A, alpha, E = map(float, _natural(theta))
    A_ci, alpha_ci, E_ci = _cis(boot, E)
    at_bound = float(np.mean(boot[:, -1] <= _AT_BOUND)) if len(boot) else float("nan")
    return PowerLawFit(E=E, A=A, alpha=alpha, E_ci=E_ci, A_ci=A_ci, alpha_ci=alpha_ci,
                       E_at_bound=at_bound, skipped=skipped, noise=noise, boot=_natural(boot))


def _residual_sd(residuals: np.ndarray, df: int) -> float:
    """SD of residuals on their df degrees of freedom (points less fitted parameters)."""
    return float(np.sqrt(residuals @ residuals / df))


def _noise_sds(sd: float, df: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n noise SDs for a parametric bootstrap: a residual SD on df degrees of freedom, drawn as
    sd * sqrt(df / chi2_df) so that resamples carry the uncertainty of the SD itself (plugging
    it in makes intervals too narrow on few points: 7-8 points covered ~81%)."""
    return sd * np.sqrt(df / rng.chisquare(df, n))


def fit_power_law(N: np.ndarray, L: np.ndarray, *, delta: float = LN_DELTA, n_boot: int = 1000,
                  seed: int = 0, noise: float | None = None) -> PowerLawFit:
    """Fit L(N) = E + A N^-alpha with a parametric bootstrap (n_boot=0: no CIs).

    Each resample is the fitted curve times exp(sigma * z) at every size, z standard normal.
    `noise` is the SD of log L between seeds where measured; otherwise sigma comes from the fit's
    residual SD s on df = n - 3 degrees of freedom, drawn per resample as s * sqrt(df / chi2_df)
    so that the intervals carry the uncertainty of s (with s plugged in, 7-8 points covered ~81%).
    (A bootstrap over 8 points would leave the largest out of a third of the resamples.) Fewer
    than 3 distinct sizes raise ValueError; with exactly 3 and no noise given the curve
    interpolates them, and the CIs are nan rather than made up.
    """
    N, L = _check(N, L)
    logX, logL = np.log(N)[:, None], np.log(L)
    theta, starts = _estimate(logX, logL, delta)
    rng = np.random.default_rng(seed)
    if noise is not None:
        sigmas = np.full(n_boot, noise)
    elif _determined(logX):
        df = len(logL) - _n_params(logX)
        sigmas = _noise_sds(_residual_sd(_log_model(theta, logX)[0] - logL, df), df, n_boot, rng)
    else:
        sigmas = np.empty(0)
    fitted = _log_model(theta, logX)[0]
    datasets = ((logX, fitted + s * rng.standard_normal(len(logL))) for s in sigmas)
    return _power_law_fit(theta, *_refits(starts, datasets, delta), noise=sigmas)


def fit_loglog_line(N: np.ndarray, L: np.ndarray) -> tuple[float, float]:
    """Floor-free straight line log L = intercept + slope * log N (natural logs, least squares).

    Kaplan-style L = (N_c/N)^alpha has slope -alpha. It has no irreducible floor, so on data that
    bends towards one it still reports R^2 ~ 0.99 while extrapolating wrongly; use it as a baseline.
    """
    N, L = _check(N, L, min_points=2)
    slope, intercept = np.polyfit(np.log(N), np.log(L), 1)
    return float(slope), float(intercept)


@dataclass(frozen=True)
class HeldOut:
    """The largest size predicted from the others, by the law and by two baselines.

    error = predicted - actual; interval: the law's 95% prediction interval for a measurement."""
    predicted: float
    actual: float
    interval: CI
    loglog_error: float  # floor-free log-log line through the other sizes
    local_error: float   # straight line in log N through the three next-largest sizes

    @property
    def error(self) -> float:
        return self.predicted - self.actual


def leave_largest_out(N: np.ndarray, L: np.ndarray, **kw) -> HeldOut:
    """Fit the power law to all but the largest N and predict it, beside two simple baselines.

    This judges the functional form, which in-sample fit cannot, but only as far as the law
    predicts better than the baselines and the prediction interval is narrow. `kw` go to
    fit_power_law.
    """
    N, L = _check(N, L, min_points=4)
    i = int(np.argmax(N))
    keep = np.argsort(N)[:-1]
    fit = fit_power_law(N[keep], L[keep], **kw)
    slope, intercept = fit_loglog_line(N[keep], L[keep])
    local = np.polyfit(np.log(N[keep][-3:]), L[keep][-3:], 1)
    return HeldOut(float(fit.predict(N[i])), float(L[i]),
                   fit.prediction_interval(N[i]) if len(fit.boot) else (np.nan, np.nan),
                   float(np.exp(intercept + slope * np.log(N[i])) - L[i]),
                   float(np.polyval(local, np.log(N[i])) - L[i]))


def allocation(alpha: np.ndarray | float,
               beta: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal exponents of L = E + A/N^alpha + B/D^beta under C = 6ND (Hoffmann et al.
    2022, eq. 4): N_opt ∝ C^a, a = beta/(alpha + beta), and D_opt ∝ C^b, b = alpha/(alpha + beta).
    Elementwise, so that one formula gives the estimate and every bootstrap refit's (nan where
    alpha + beta = 0)."""
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return beta / (alpha + beta), alpha / (alpha + beta)


# Besiroglu et al. 2024's refit of Chinchilla's approach 3 (tests/test_fit.py reproduces it)
BESIROGLU = {"alpha": 0.3478, "beta": 0.3658}
# Published compute-optimal exponents (a in N_opt ∝ C^a, b in D_opt ∝ C^b) to compare with
PUBLISHED_ALLOCATION = {
    "Hoffmann et al. 2022 approach 1": (0.50, 0.50),
    "Hoffmann et al. 2022 approach 2": (0.49, 0.51),
    "Hoffmann et al. 2022 approach 3": (0.46, 0.54),
    "Besiroglu et al. 2024 (approach 3)": tuple(float(x) for x in allocation(**BESIROGLU)),
}


def optimal_n(params: np.ndarray, C: np.ndarray | float) -> np.ndarray:
    """N_opt(C) = G (C/6)^a with G = (alpha A / (beta B))^(1/(alpha + beta)), for natural
    parameters (A, alpha, B, beta, E) in the last axis of params: one row per fit, one column per
    C. The frontier a fit implies, so that refits give its band (nan where undefined)."""
    A, alpha, B, beta = (np.asarray(params, dtype=float).reshape(-1, 5)[:, k, None]
                         for k in range(4))
    a = allocation(alpha, beta)[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
        return G * (np.asarray(C, dtype=float).reshape(1, -1) / 6) ** a


@dataclass(frozen=True)
class ChinchillaFit:
    """L(N, D) = E + A / N**alpha + B / D**beta, with percentile-bootstrap 95% CIs, and the
    compute-optimal exponents a (N_opt ∝ C^a) and b (D_opt ∝ C^b) with theirs, taken from the
    same refits (a and b are ratios of alpha and beta, whose errors are correlated: propagating
    their marginal CIs would misstate them). boot: the refits' (A, alpha, B, beta, E)."""
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    E_ci: CI
    A_ci: CI
    B_ci: CI
    alpha_ci: CI
    beta_ci: CI
    skipped: int = 0
    a_ci: CI = (float("nan"), float("nan"))
    b_ci: CI = (float("nan"), float("nan"))
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 5)), repr=False, compare=False)

    @property
    def a(self) -> float:
        return float(allocation(self.alpha, self.beta)[0])

    @property
    def b(self) -> float:
        return float(allocation(self.alpha, self.beta)[1])

    def predict(self, N: np.ndarray | float, D: np.ndarray | float) -> np.ndarray:
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A * N ** (-self.alpha) + self.B * D ** (-self.beta)

    def optimal_n(self, C: np.ndarray | float) -> np.ndarray:
        """The compute-optimal model size at each C (C = 6ND), from the point estimate."""
        return optimal_n(np.array([self.A, self.alpha, self.B, self.beta, self.E]), C)[0]

    def optimal_n_band(self, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise 95% band of N_opt(C) over the bootstrap refits."""
        curves = optimal_n(self.boot, C)
        return tuple(np.array([_interval(col) for col in curves.T]).T)


def _resampled_points(logX: np.ndarray, logL: np.ndarray, n_boot: int, seed: int) -> Datasets:
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        idx = rng.integers(0, len(logL), len(logL))
        yield logX[idx], logL[idx]


def fit_chinchilla(N: np.ndarray, D: np.ndarray, L: np.ndarray, *, delta: float = 1e-3,
                   n_boot: int = 1000, seed: int = 0) -> ChinchillaFit:
    """Chinchilla approach 3 (Hoffmann et al. 2022, as corrected by Besiroglu et al. 2024),
    with a percentile bootstrap over points; the exponents a and b get their intervals from the
    same refits.

    Five parameters: fewer than 5 distinct (N, D) pairs raise ValueError; exactly 5 give nan CIs.
    """
    N, D, L = _check(N, D, L, min_points=5)
    logX, logL = np.log(np.column_stack([N, D])), np.log(L)
    theta, starts = _estimate(logX, logL, delta)
    datasets = _resampled_points(logX, logL, n_boot, seed) if _determined(logX) else []
    boot, skipped = _refits(starts, datasets, delta)
    A, alpha, B, beta, E = map(float, _natural(theta))
    A_ci, alpha_ci, B_ci, beta_ci, E_ci = _cis(boot, E)
    nat = _natural(boot)
    a_boot, b_boot = allocation(nat[:, 1], nat[:, 3])
    return ChinchillaFit(E=E, A=A, B=B, alpha=alpha, beta=beta, E_ci=E_ci, A_ci=A_ci, B_ci=B_ci,
                         alpha_ci=alpha_ci, beta_ci=beta_ci, skipped=skipped,
                         a_ci=_interval(a_boot), b_ci=_interval(b_boot), boot=nat)


def _vertex(x: np.ndarray, L: np.ndarray) -> tuple[float, float] | None:
    """Least-squares parabola of L in x = log N: its minimum (x_opt, L_min), None if it has
    none, or one so flat that N_opt = exp(x_opt) overflows (a bootstrap resample can be)."""
    p2, p1, p0 = np.polyfit(x, L, 2)
    if p2 <= 0 or abs(p1) >= 2 * p2 * 700:  # |x_opt| >= 700: exp overflows near 709
        return None
    return float(-p1 / (2 * p2)), float(p0 - p1 * p1 / (4 * p2))


def isoflop_parabolas(N: np.ndarray, C: np.ndarray,
                      L: np.ndarray) -> list[tuple[float, float, float]]:
    """Chinchilla approach 2: per compute budget, a parabola of L in log N, whose vertex is optimal.

    Points are grouped by exact value of C (the nominal budget of an IsoFLOP sweep). Budgets with
    fewer than 3 points are skipped, and so are those whose parabola has no minimum (curvature <= 0)
    or puts it outside the sampled range of N: such a vertex is an extrapolation, not a measurement.
    Returns [(C, N_opt, L_min)] in increasing C.
    """
    N, C, L = _check(N, C, L, min_points=1)
    out = []
    for c in np.unique(C):
        sel = C == c
        if sel.sum() < 3:
            continue
        x = np.log(N[sel])
        vertex = _vertex(x, L[sel])
        if vertex is None or not x.min() <= vertex[0] <= x.max():
            continue
        out.append((float(c), float(np.exp(vertex[0])), vertex[1]))
    return out


def fit_optimal_allocation(C_list: np.ndarray, N_opt_list: np.ndarray) -> float:
    """Exponent a of N_opt ∝ C^a: the slope of the log-log line through the IsoFLOP optima."""
    slope, _ = fit_loglog_line(C_list, N_opt_list)
    return slope


@dataclass(frozen=True)
class IsoFlopFit:
    """Chinchilla approach 2: the isoFLOP optima [(C, N_opt, L_min)] and the exponent a of
    N_opt ∝ C^a through them, with a 95% interval (nan with fewer than 2 optima, when a is
    undetermined). noise: the SD of L about the parabolas the resamples drew (nan: none drawn);
    skipped: resamples in which a budget's parabola lost its minimum; boot: the kept ones' a."""
    optima: list[tuple[float, float, float]]
    a: float
    a_ci: CI
    noise: float = float("nan")
    df: int = 0
    skipped: int = 0
    boot: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)


def fit_isoflop(N: np.ndarray, C: np.ndarray, L: np.ndarray, *, n_boot: int = 1000,
                seed: int = 0) -> IsoFlopFit:
    """Approach 2's exponent with a 95% interval from a parametric bootstrap of the runs' losses.

    Not a t interval: through 3-4 optima the log-log slope has 1-2 degrees of freedom, and the
    interval ignores how uncertain each vertex is. Not a bootstrap over runs: resampling a
    budget's 4-5 runs often leaves 3 distinct sizes, a parabola that interpolates them. Each
    resample is every interior budget's parabola plus normal noise of the pooled residual SD
    (chi-square drawn, as for L(N)); its vertices may fall outside the sampled sizes (the
    resample's wobble, not an estimate), and one that loses a minimum (or has one so far out
    that N_opt overflows) is counted as skipped."""
    N, C, L = _check(N, C, L, min_points=1)
    optima = isoflop_parabolas(N, C, L)
    if len(optima) < 2:
        return IsoFlopFit(optima, float("nan"), (float("nan"), float("nan")))
    budgets = [c for c, _, _ in optima]
    a = fit_optimal_allocation(budgets, [n for _, n, _ in optima])
    groups = [(np.log(N[C == c]), L[C == c]) for c in budgets]
    fitted = [np.polyval(np.polyfit(x, y, 2), x) for x, y in groups]
    residuals = np.concatenate([y - f for (_, y), f in zip(groups, fitted)])
    df = len(residuals) - 3 * len(groups)
    if df <= 0:  # every parabola interpolates its points: no noise to resample
        return IsoFlopFit(optima, a, (float("nan"), float("nan")))
    noise, rng = _residual_sd(residuals, df), np.random.default_rng(seed)
    boot, skipped = [], 0
    for sd in _noise_sds(noise, df, n_boot, rng):
        vertices = [_vertex(x, f + sd * rng.standard_normal(len(f)))
                    for (x, _), f in zip(groups, fitted)]
        if any(v is None for v in vertices):
            skipped += 1
            continue
        boot.append(fit_optimal_allocation(budgets, [np.exp(v[0]) for v in vertices]))
    return IsoFlopFit(optima, a, _interval(np.array(boot)), noise, df, skipped, np.array(boot))


def frontier(C: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compute-efficient frontier: the best loss reached with at most C FLOPs, over all runs.

    Takes every (FLOPs, loss) point of every learning curve and returns C sorted with the running
    minimum of L, the lower envelope (non-increasing by construction).
    """
    C, L = _check(C, L, min_points=1)
    order = np.lexsort((L, C))
    return C[order], np.minimum.accumulate(L[order])


def _envelope(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """log C and log L of the points that lower the frontier of these curves.

    The flat stretches of the running minimum repeat an earlier run's loss, and counting them
    would weight the fit towards wherever curves are dense."""
    Cs, Lmin = frontier(np.concatenate([c for c, _ in curves]),
                        np.concatenate([l for _, l in curves]))
    on = np.r_[True, Lmin[1:] < Lmin[:-1]]
    return np.log(Cs[on])[:, None], np.log(Lmin[on])


def fit_frontier(curves: list[tuple[np.ndarray, np.ndarray]], *, delta: float = LN_DELTA,
                 n_boot: int = 1000, seed: int = 0) -> PowerLawFit:
    """Fit L(C) = E + A C^-alpha to the frontier of learning curves [(C, L) per run].

    The points of one curve are not independent draws, so the bootstrap resamples whole runs
    and refits the frontier of each resample.
    """
    logX, logL = _envelope(curves)
    theta, starts = _estimate(logX, logL, delta)
    rng = np.random.default_rng(seed)
    datasets = (_envelope([curves[i] for i in rng.integers(0, len(curves), len(curves))])
                for _ in range(n_boot))
    return _power_law_fit(theta, *_refits(starts, datasets, delta))
