"""Reading results.json: which checkpoints to compare, in-context gains and their trend in N.

Everything here works from the per-item scores stored in the JSON, so the report can be
redone without a model. The gain of a task is its score at k=8 (or the largest k <= 8 that
fits every model's context) minus at k=0, on the same query items where the task allows it.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .metrics import bootstrap_ci

GAIN_K = 8
ITEM_KEY = {"exact_match": "exact", "loglik_per_char": "loglik"}  # summary name -> per-item list


def finals(models: list[dict]) -> list[dict]:
    """The last checkpoint of every run, smallest N first: the points of a metric-vs-N plot."""
    last: dict[str, dict] = {}
    for m in models:
        if m["run"] not in last or m["step"] > last[m["run"]]["step"]:
            last[m["run"]] = m
    return sorted(last.values(), key=lambda m: (m["n_nonemb"], m["run"]))


def tracks(models: list[dict]) -> dict[str, list[dict]]:
    """Runs given with several checkpoints, each in step order: the over-training curves."""
    runs = defaultdict(list)
    for m in models:
        runs[m["run"]].append(m)
    return {r: sorted(ms, key=lambda m: m["step"]) for r, ms in sorted(runs.items()) if len(ms) > 1}


def gain_k(models: list[dict], task: str) -> int | None:
    """The largest k in 1..GAIN_K evaluated for this task on every model."""
    common = set.intersection(*(set(m["tasks"][task]["k"]) for m in models)) if models else set()
    ks = [int(k) for k in common if 0 < int(k) <= GAIN_K]
    return max(ks) if ks and "0" in common else None


def items(result: dict, k: int, metric: str, shuffled: bool = False) -> np.ndarray:
    return np.asarray(result["shuffled" if shuffled else "k"][str(k)]["items"][ITEM_KEY[metric]],
                      dtype=np.float64)


def gain(result: dict, k: int, metric: str, seed: int = 0) -> dict:
    """Score at k minus at k=0 with a paired bootstrap 95% CI (items share an index)."""
    diff = items(result, k, metric) - items(result, 0, metric)
    return {"value": float(diff.mean()), "ci": bootstrap_ci(diff, seed=seed)}


def _slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y (..., M) on x (M,), along the last axis."""
    xc = x - x.mean()
    return (y - y.mean(-1, keepdims=True)) @ xc / (xc @ xc)


def trend(models: list[dict], task: str, metric: str, n_boot: int = 1000, seed: int = 0):
    """Slope of the k=0 -> k=gain_k gain per decade of N, with a 95% CI from resampling the
    items of every model; None with fewer than two sizes."""
    k = gain_k(models, task)
    logn = np.log10([m["n_nonemb"] for m in models])
    if k is None or len(set(logn)) < 2:
        return None
    rng = np.random.default_rng(seed)
    point = np.empty(len(models))
    boots = np.empty((n_boot, len(models)))
    for j, m in enumerate(models):
        lo, hi = items(m["tasks"][task], 0, metric), items(m["tasks"][task], k, metric)
        point[j] = hi.mean() - lo.mean()
        pick = rng.integers(0, len(lo), (n_boot, len(lo)))
        boots[:, j] = hi[pick].mean(1) - lo[pick].mean(1)
    ci = np.percentile(_slope(logn, boots), [2.5, 97.5])
    verdict = "grows" if ci[0] > 0 else "shrinks" if ci[1] < 0 else "no clear trend"
    largest = int(np.argmax(logn))
    return {"k": k, "slope": float(_slope(logn, point)), "ci": [float(ci[0]), float(ci[1])],
            "gains": point.tolist(), "verdict": verdict,
            "largest_gain_ci": np.percentile(boots[:, largest], [2.5, 97.5]).tolist()}


def beyond_controls(trends: dict[str, dict], controls: set[str]) -> list[str]:
    """Tasks with a measurable in-context gain that grows with N faster than any control's:
    the slope's lower 95% bound is above zero and above every control's slope, and the
    largest model's gain is above zero (a rising slope of ever-negative gains is no gain)."""
    bar = max([0.0] + [t["slope"] for name, t in trends.items() if name in controls and t])
    return [name for name, t in trends.items() if name not in controls and t
            and t["ci"][0] > bar and t["largest_gain_ci"][0] > 0]
