"""Reading results.json: which checkpoints to compare, in-context gains and their trend in N.

Everything here works from the per-item scores stored in the JSON, so the report can be
redone without a model. The gain of a task is its score at k=8 (or the largest k <= 8 that
fits every model's context) minus at k=0: on the same query items, except for the recall tasks,
whose k-shot query is one of its own demonstrations and so a different item than at k=0.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..common.task_scoring import Z95, bootstrap_ci, mean_diff_ci, newcombe_diff
from ..common.slope import slope_ci
from ..common.tasks import TASKS

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


def gain(result: dict, k: int, metric: str, paired: bool = True, seed: int = 0) -> dict:
    """Score at k minus at k=0 with a 95% CI. paired: item i is the same query at both k.

    Exact match: Newcombe's score interval (never zero-width, unlike a bootstrap of 0/200 vs
    0/200). Log-likelihood: paired bootstrap, or a normal two-sample interval when unpaired."""
    hi, lo = items(result, k, metric), items(result, 0, metric)
    if metric == "exact_match":
        ci = newcombe_diff(hi, lo, paired)
    else:
        ci = bootstrap_ci(hi - lo, seed=seed) if paired else mean_diff_ci(hi, lo)
    return {"value": float(hi.mean() - lo.mean()), "ci": ci}


def trend(models: list[dict], task: str, metric: str) -> dict | None:
    """Slope of the k=0 -> k=gain_k gain per decade of N over the models, with a t 95% CI from
    the models' scatter about the line; None with fewer than three sizes (no residual left)."""
    k = gain_k(models, task)
    logn = np.log10([m["n_nonemb"] for m in models])
    if k is None or len(set(logn)) < 3:
        return None
    paired = not TASKS[task].recall
    gains = [gain(m["tasks"][task], k, metric, paired) for m in models]
    point = np.array([g["value"] for g in gains])
    # each gain's variance from its 95% interval, which stays positive at 0/200 (Newcombe)
    item_var = float(np.mean([((g["ci"][1] - g["ci"][0]) / (2 * Z95)) ** 2 for g in gains]))
    slope, ci = slope_ci(logn, point, item_var)
    verdict = "grows" if ci[0] > 0 else "shrinks" if ci[1] < 0 else "no clear trend"
    return {"k": k, "slope": slope, "ci": list(ci), "gains": point.tolist(),
            "log_n": logn.tolist(), "item_var": item_var, "verdict": verdict,
            "largest_gain_ci": list(gains[int(np.argmax(logn))]["ci"])}


def beyond_controls(trends: dict[str, dict], controls: set[str]) -> list[str]:
    """Tasks with a measurable in-context gain that grows with N faster than every control's:
    the slope's lower 95% bound is above zero; so is that of the per-model difference of its
    gain and each control's (both tasks' noise counts, and the models they share cancels); and
    the largest model's gain is above zero (a rising slope of ever-negative gains is no gain)."""
    ctrl = [t for name, t in trends.items() if name in controls and t]
    return [name for name, t in trends.items() if name not in controls and t
            and t["ci"][0] > 0 and t["largest_gain_ci"][0] > 0
            and all(slope_ci(t["log_n"], np.subtract(t["gains"], c["gains"]),
                             t["item_var"] + c["item_var"])[1][0] > 0 for c in ctrl)]
