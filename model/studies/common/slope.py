"""The slope of a metric against log N with its t interval, shared by the few-shot study
(in-context gain per decade of N) and the emergence study (exact match per decade, over seeds).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def slope_ci(x: np.ndarray, y: np.ndarray,
             item_var: float = 0.0) -> tuple[float, tuple[float, float]]:
    """Least-squares slope of y on x and its t 95% interval (n - 2 degrees of freedom).

    The interval comes from the scatter of the points about the line, so it counts whatever
    varies from model to model (seed, learning rate) besides each point's item noise; the
    scatter's variance is taken as at least item_var, the points' own mean variance, so that
    points that happen to lie on a line (eight gains of 0/200) do not make it zero-width."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    fit = stats.linregress(x, y)
    resid = y - fit.intercept - fit.slope * x  # by hand: linregress's stderr is nan for flat y
    sxx = float(np.sum((x - x.mean()) ** 2))
    var = max(float(resid @ resid) / (len(x) - 2), item_var)
    half = stats.t.ppf(0.975, len(x) - 2) * np.sqrt(var / sxx)
    return float(fit.slope), (float(fit.slope - half), float(fit.slope + half))
