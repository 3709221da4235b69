"""Scaling-law fits: L(N) power laws, Chinchilla approaches 2 and 3, the compute frontier.

Every parametric fit here is one model, a log-sum-exp of power-law terms and a floor,

    log L_hat = LSE(a_1 - alpha_1 log X_1, ..., a_K - alpha_K log X_K, e),

i.e. L = E + sum_k A_k / X_k^alpha_k with A_k = exp(a_k), E = exp(e) (Hoffmann et al. 2022).
K=1 is L(N) = E + A N^-alpha; K=2 with X = (N, D) is Chinchilla's approach 3. The fit minimises the
Huber loss of log-residuals from a grid of starts; 95% CIs come from a percentile bootstrap over
points.

Pitfall (Besiroglu et al. 2024): the raw Huber(1e-3) objective is ~1e-3 on Chinchilla's points and
its gradient is below scipy's default L-BFGS-B gtol (1e-5), so bootstrap refits "converge" at their
start and the CIs come out absurdly narrow (alpha's ~0.002 wide instead of ~0.056). We divide the
objective by delta**2 (quadratic part becomes 0.5 (r/delta)^2) and tighten ftol/gtol.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

_OPTIONS = {"ftol": 1e-14, "gtol": 1e-9, "maxiter": 10_000}
# Hoffmann et al.'s grid of starts, per term (a, alpha) and for the floor e.
_GRID_A = np.arange(0.0, 26.0, 5.0)
_GRID_ALPHA = np.arange(0.0, 2.01, 0.5)
_GRID_E = np.arange(-1.0, 1.01, 0.5)
_N_STARTS = 100

CI = tuple[float, float]


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


def _objective(theta: np.ndarray, logX: np.ndarray, logL: np.ndarray, delta: float):
    """Huber(delta) of log-residuals divided by delta**2, and its gradient."""
    K = logX.shape[1]
    T = np.empty((len(logL), K + 1))
    T[:, :K] = theta[0:2 * K:2] - theta[1:2 * K:2] * logX
    T[:, K] = theta[-1]
    m = T.max(axis=1, keepdims=True)
    w = np.exp(T - m)
    s = w.sum(axis=1)
    w /= s[:, None]  # softmax weights = d(log L_hat)/d(term)
    u = (m[:, 0] + np.log(s) - logL) / delta
    au = np.abs(u)
    f = np.where(au <= 1.0, 0.5 * u * u, au - 0.5).sum()
    gw = (np.clip(u, -1.0, 1.0) / delta)[:, None] * w
    grad = np.empty_like(theta)
    grad[0:2 * K:2] = gw[:, :K].sum(axis=0)
    grad[1:2 * K:2] = -(gw[:, :K] * logX).sum(axis=0)
    grad[-1] = gw[:, K].sum()
    return f, grad


def _minimise(theta0: np.ndarray, logX: np.ndarray, logL: np.ndarray, delta: float):
    return minimize(_objective, theta0, args=(logX, logL, delta), jac=True,
                    method="L-BFGS-B", options=_OPTIONS)


def _best_of_grid(logX: np.ndarray, logL: np.ndarray, delta: float) -> np.ndarray:
    """Point estimate of theta = (a_1, alpha_1, ..., a_K, alpha_K, e), best of a grid of starts."""
    # Hoffmann's full grid is 4,500 starts for K=2 (~50 s of L-BFGS-B here). Evaluating the
    # objective on it is cheap, and on Chinchilla's points the 10 lowest-valued starts all reach the
    # best optimum (1,663 of the 4,500 do), so only the _N_STARTS lowest are optimised.
    K = logX.shape[1]
    grid = np.array(list(itertools.product(*([_GRID_A, _GRID_ALPHA] * K), _GRID_E)))
    f0 = np.array([_objective(g, logX, logL, delta)[0] for g in grid])
    runs = [_minimise(g, logX, logL, delta) for g in grid[np.argsort(f0)[:_N_STARTS]]]
    return min(runs, key=lambda r: r.fun).x


def _bootstrap(theta: np.ndarray, logX: np.ndarray, logL: np.ndarray, delta: float,
               n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, len(theta)) refits on points resampled with replacement."""
    # Each refit starts at the point estimate: the resampled optimum lies near it, so a few dozen
    # L-BFGS-B steps suffice -- provided the tolerances let the optimiser move at all.
    rng = np.random.default_rng(seed)
    n = len(logL)
    boot = np.empty((n_boot, len(theta)))
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        boot[b] = _minimise(theta, logX[idx], logL[idx], delta).x
    return boot


def _fit_lse(logX: np.ndarray, logL: np.ndarray, delta: float, n_boot: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Point estimate of theta and its bootstrap samples (empty when there can be none)."""
    n_params = 2 * logX.shape[1] + 1
    n_distinct = len(np.unique(logX, axis=0))
    if n_distinct < n_params:
        raise ValueError(f"{n_params} parameters need at least {n_params} distinct x values, "
                         f"got {n_distinct}")
    if n_distinct == n_params:
        n_boot = 0  # the fit interpolates: no residuals to resample, so no CIs, not fake ones
    theta = _best_of_grid(logX, logL, delta)
    return theta, _bootstrap(theta, logX, logL, delta, n_boot, seed)


def _natural(theta: np.ndarray) -> np.ndarray:
    """(a_1, alpha_1, ..., e) -> (A_1, alpha_1, ..., E): exponentiate the even (log) entries."""
    out = np.array(theta, dtype=float)
    out[..., 0::2] = np.exp(out[..., 0::2])
    return out


def _cis(boot: np.ndarray) -> list[CI]:
    """Percentile 95% interval per parameter, in natural units; (nan, nan) without samples."""
    if len(boot) == 0:
        return [(float("nan"), float("nan"))] * boot.shape[1]
    lo, hi = np.percentile(_natural(boot), [2.5, 97.5], axis=0)
    return [(float(x), float(y)) for x, y in zip(lo, hi)]


@dataclass(frozen=True)
class PowerLawFit:
    """L(N) = E + A * N**(-alpha), with percentile-bootstrap 95% CIs."""
    E: float
    A: float
    alpha: float
    E_ci: CI
    A_ci: CI
    alpha_ci: CI
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 3)), repr=False, compare=False)

    def predict(self, N: np.ndarray | float) -> np.ndarray:
        return self.E + self.A * np.asarray(N, dtype=float) ** (-self.alpha)

    def band(self, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise 95% band of the fitted curve over the bootstrap refits (A, alpha, E)."""
        N = np.asarray(N, dtype=float)
        curves = self.boot[:, 2:3] + self.boot[:, 0:1] * N[None, :] ** (-self.boot[:, 1:2])
        lo, hi = np.percentile(curves, [2.5, 97.5], axis=0)
        return lo, hi


def fit_power_law(N: np.ndarray, L: np.ndarray, *, delta: float = 1e-3, n_boot: int = 1000,
                  seed: int = 0) -> PowerLawFit:
    """Fit L(N) = E + A N^-alpha: Huber on log L, grid of starts, bootstrap CIs (n_boot=0: none).

    Fewer than 3 distinct sizes cannot determine 3 parameters: ValueError. With exactly 3 the curve
    interpolates them, and the CIs are returned as nan rather than made up.
    """
    N, L = _check(N, L)
    theta, boot = _fit_lse(np.log(N)[:, None], np.log(L), delta, n_boot, seed)
    A, alpha, E = map(float, _natural(theta))
    A_ci, alpha_ci, E_ci = _cis(boot)
    return PowerLawFit(E=E, A=A, alpha=alpha, E_ci=E_ci, A_ci=A_ci, alpha_ci=alpha_ci,
                       boot=_natural(boot))


def fit_loglog_line(N: np.ndarray, L: np.ndarray) -> tuple[float, float]:
    """Floor-free straight line log L = intercept + slope * log N (natural logs, least squares).

    Kaplan-style L = (N_c/N)^alpha has slope -alpha. It has no irreducible floor, so on data that
    bends towards one it still reports R^2 ~ 0.99 while extrapolating wrongly; use it as a baseline.
    """
    N, L = _check(N, L, min_points=2)
    slope, intercept = np.polyfit(np.log(N), np.log(L), 1)
    return float(slope), float(intercept)


def leave_largest_out(N: np.ndarray, L: np.ndarray, **kw) -> tuple[float, float, float]:
    """Fit the power law to all but the largest N and predict it: (predicted, actual, error).

    error = predicted - actual. This judges the functional form, which in-sample fit cannot.
    `kw` go to fit_power_law; the bootstrap is off unless asked for (only the estimate is used).
    """
    N, L = _check(N, L, min_points=4)
    kw.setdefault("n_boot", 0)
    i = int(np.argmax(N))
    keep = np.arange(len(N)) != i
    predicted = float(fit_power_law(N[keep], L[keep], **kw).predict(N[i]))
    return predicted, float(L[i]), predicted - float(L[i])


@dataclass(frozen=True)
class ChinchillaFit:
    """L(N, D) = E + A / N**alpha + B / D**beta, with percentile-bootstrap 95% CIs."""
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

    def predict(self, N: np.ndarray | float, D: np.ndarray | float) -> np.ndarray:
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A * N ** (-self.alpha) + self.B * D ** (-self.beta)


def fit_chinchilla(N: np.ndarray, D: np.ndarray, L: np.ndarray, *, delta: float = 1e-3,
                   n_boot: int = 1000, seed: int = 0) -> ChinchillaFit:
    """Chinchilla approach 3 (Hoffmann et al. 2022, as corrected by Besiroglu et al. 2024).

    Five parameters: fewer than 5 distinct (N, D) pairs raise ValueError; exactly 5 give nan CIs.
    """
    N, D, L = _check(N, D, L, min_points=5)
    theta, boot = _fit_lse(np.log(np.column_stack([N, D])), np.log(L), delta, n_boot, seed)
    A, alpha, B, beta, E = map(float, _natural(theta))
    A_ci, alpha_ci, B_ci, beta_ci, E_ci = _cis(boot)
    return ChinchillaFit(E=E, A=A, B=B, alpha=alpha, beta=beta, E_ci=E_ci, A_ci=A_ci, B_ci=B_ci,
                         alpha_ci=alpha_ci, beta_ci=beta_ci)


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
        p2, p1, p0 = np.polyfit(x, L[sel], 2)
        if p2 <= 0:
            continue
        x_opt = -p1 / (2 * p2)
        if not x.min() <= x_opt <= x.max():
            continue
        out.append((float(c), float(np.exp(x_opt)), float(p0 - p1 * p1 / (4 * p2))))
    return out


def fit_optimal_allocation(C_list: np.ndarray, N_opt_list: np.ndarray) -> float:
    """Exponent a of N_opt ∝ C^a: the slope of the log-log line through the IsoFLOP optima."""
    slope, _ = fit_loglog_line(C_list, N_opt_list)
    return slope


def frontier(C: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compute-efficient frontier: the best loss reached with at most C FLOPs, over all runs.

    Takes every (FLOPs, loss) point of every learning curve and returns C sorted with the running
    minimum of L, the lower envelope (non-increasing by construction).
    """
    C, L = _check(C, L, min_points=1)
    order = np.lexsort((L, C))
    return C[order], np.minimum.accumulate(L[order])


def fit_frontier(C: np.ndarray, L: np.ndarray, **kw) -> PowerLawFit:
    """Fit L(C) = E + A C^-alpha to the frontier (`kw` go to fit_power_law).

    Only points that lower the envelope are used: the flat stretches of the running minimum repeat
    an earlier run's loss, and counting them would weight the fit towards wherever curves are dense.
    """
    Cs, Lmin = frontier(C, L)
    on = np.r_[True, Lmin[1:] < Lmin[:-1]]
    return fit_power_law(Cs[on], Lmin[on], **kw)
