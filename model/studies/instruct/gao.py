"""Gao et al. 2022's functional forms of reward over-optimisation, fitted with intervals, and the
verdicts the report reads from them.

With d = √KL(π ‖ π_init), the gold (true) score's gain over the initial policy is
    best-of-n:  R(d) = d·(α − β·d)          RL:  R(d) = d·(α − β·log d)
(Gao et al. 2022, eq. 1 and 2). Both are linear in (α, β) given d, so they are fitted by ordinary
least squares, with the initial policy's score as a third coefficient (an intercept) rather than
subtracted: its own sampling noise then counts once, as any point's, instead of shifting every
point alike. 95% intervals: OLS standard errors with the t quantile on n − 3 degrees of freedom
(exact for independent Gaussian noise of one variance; tests/test_gao.py checks their coverage).

Over training seeds (over_seeds), each seed's run is fitted alone and the intervals come from
the coefficients' spread over the seeds, with the t quantile on seeds − 1 degrees of freedom.

The gold score peaks where R'(d) = 0: d* = α/(2β) for best-of-n, d* = exp(α/β − 1) for RL, a
maximum only when β > 0. Its interval is Fieller's for the ratio α/β (exact under the same noise),
mapped through d*(α/β), which rises with the ratio; it is bounded exactly when β's own t-test
tells β from 0 at the same level, so an undetermined β leaves the peak unbounded.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import stats

CI = tuple[float, float]
UNBOUNDED = (-np.inf, np.inf)
FORMS = ("bon", "rl")


def bend(d: np.ndarray, form: str) -> np.ndarray:
    """What β multiplies (negated) in R(d): d² for best-of-n, d·log d for RL (0 at d = 0)."""
    if form == "bon":
        return d * d
    if form == "rl":
        return np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    raise ValueError(f"form {form!r} is not one of {FORMS}")


def peak_of(ratio: float, form: str) -> float:
    """d* as a function of α/β (for β > 0)."""
    return ratio / 2 if form == "bon" else float(np.exp(ratio - 1))


@dataclass(frozen=True)
class GaoFit:
    form: str
    alpha: float
    beta: float
    start: float  # the fitted score at d = 0
    alpha_ci: CI
    beta_ci: CI
    peak_ci: CI   # of d*; UNBOUNDED when β cannot be told from 0
    n: int        # points fitted (over all seeds)
    seeds: int = 1  # training seeds the intervals are over; 1: OLS intervals of one run's points

    @property
    def peak(self) -> float:
        """d*, the √KL where the fitted gold score is highest; nan when the curve has no maximum."""
        return peak_of(self.alpha / self.beta, self.form) if self.beta > 0 else float("nan")

    def predict(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=float)
        return self.start + self.alpha * d - self.beta * bend(d, self.form)


def fieller(a: float, b: float, cov: np.ndarray, t: float) -> CI:
    """Fieller's interval for a/b: the ρ with (a − ρb)² ≤ t²·Var(a − ρb); UNBOUNDED unless
    b²/Var(b) > t² (otherwise the set is the whole line or two rays)."""
    qa = b * b - t * t * cov[1, 1]
    if qa <= 0:
        return UNBOUNDED
    qb = -2 * (a * b - t * t * cov[0, 1])
    qc = a * a - t * t * cov[0, 0]
    root = np.sqrt(max(qb * qb - 4 * qa * qc, 0.0))
    return (-qb - root) / (2 * qa), (-qb + root) / (2 * qa)


def fit_gao(d: np.ndarray, gold: np.ndarray, form: str) -> GaoFit:
    """OLS of gold = start + α·d − β·bend(d) with 95% t intervals; ValueError under 4 points or
    fewer than 3 distinct d (the three coefficients need a residual degree of freedom)."""
    d, gold = np.asarray(d, dtype=float), np.asarray(gold, dtype=float)
    if len(d) < 4 or len(np.unique(d)) < 3:
        raise ValueError(f"Gao's {form} form needs ≥ 4 points at ≥ 3 distinct √KL; got {len(d)}")
    X = np.column_stack([np.ones_like(d), d, -bend(d, form)])
    coef, *_ = np.linalg.lstsq(X, gold, rcond=None)
    df = len(d) - 3
    resid = gold - X @ coef
    return fitted(form, coef, (resid @ resid / df) * np.linalg.inv(X.T @ X), df, len(d))


def fitted(form: str, coef: np.ndarray, cov: np.ndarray, df: int, n: int,
           seeds: int = 1) -> GaoFit:
    """The fit of coefficients (start, α, β) whose estimate has covariance cov with df degrees
    of freedom: 95% t intervals, and Fieller's for the peak."""
    t = float(stats.t.ppf(0.975, df))
    se = np.sqrt(np.diag(cov))
    ci = [(float(c - t * s), float(c + t * s)) for c, s in zip(coef, se)]
    lo, hi = fieller(coef[1], coef[2], cov[1:, 1:], t)
    peak_ci = UNBOUNDED if (lo, hi) == UNBOUNDED else (peak_of(lo, form), peak_of(hi, form))
    return GaoFit(form, float(coef[1]), float(coef[2]), float(coef[0]), ci[1], ci[2],
                  peak_ci, n, seeds)


def over_seeds(fits: list[GaoFit]) -> GaoFit:
    """One fit from the fits of several training seeds (each its own run, prompts and noise):
    the mean of their coefficients, with 95% t intervals on seeds − 1 degrees of freedom from
    the coefficients' spread over the seeds, and the peak's by Fieller's method on the same
    spread. A seed's coefficients carry both what its training drew and its points' sampling
    noise, so the spread counts both, and the intervals are exact when the seeds' coefficients
    are Gaussian, however the noise splits between the two; tests/test_gao.py checks their
    coverage. The OLS intervals of each seed's fit are not used: they miss the training seed's
    part, and its points' shared noise (the same prompts at every evaluation)."""
    if len(fits) < 2:
        raise ValueError(f"a fit over seeds needs 2 seeds or more; got {len(fits)}")
    coef = np.array([[f.start, f.alpha, f.beta] for f in fits])
    return fitted(fits[0].form, coef.mean(0), np.cov(coef.T) / len(fits), len(fits) - 1,
                  sum(f.n for f in fits), len(fits))


def above_zero(ci: CI) -> str:
    """"The quantity is > 0" read from its interval: holds when the interval lies above 0, does
    not hold when it lies below, undetermined when it spans 0."""
    lo, hi = ci
    return "holds" if lo > 0 else "does not hold" if hi < 0 else "undetermined"


def overoptimised(fit: GaoFit) -> str:
    """"Gold peaks and then falls" ⇔ β > 0, read from β's interval."""
    return above_zero(fit.beta_ci)


def pushed_out(fits: list[GaoFit]) -> str:
    """"Larger reward models push the peak out", fits ordered from the smallest reward model:
    holds when each peak's interval lies wholly above every smaller model's; does not hold when
    one lies wholly below a smaller model's; undetermined otherwise (an unbounded peak included).
    Disjoint 95% intervals are a conservative test of a difference: undetermined is the cautious
    reading."""
    pairs = list(itertools.combinations(fits, 2))  # (smaller, larger)
    if not pairs:
        return "undetermined"
    if any(big.peak_ci[1] < small.peak_ci[0] for small, big in pairs):
        return "does not hold"
    if all(big.peak_ci[0] > small.peak_ci[1] for small, big in pairs):
        return "holds"
    return "undetermined"
