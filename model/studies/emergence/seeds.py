"""The emergence grid over seeds: runs grouped by model, and the statistics the verdicts and
figures rest on once a model is trained at several seeds.

- the fraction of a group's seeds transitioned by step t (a survival curve read upside down);
  a seed that never transitioned counts as not transitioned through its last evaluation and
  as unknown after it, so a curve stops where a seed's record ends;
- exact match at one task and k against N, per model: the seeds' mean, min and max, and the
  slope per decade of N over every seed's point with its t 95% interval;
- the depth threshold: transitioned/not counts of 1-layer against 2+ layer runs and Fisher's
  exact test (one-sided: do deeper models transition more often?);
- a share k/n with its Wilson interval, and whether it clears a bar, fails it or cannot tell.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ..common.task_scoring import Z95, wilson
from ..common.slope import slope_ci

Key = tuple[int, int, bool, bool]  # (depth, width, smeared keys, natural-text control)


def key(run: dict) -> Key:
    return run["n_layer"], run["n_embd"], bool(run["smear"]), bool(run.get("natural", False))


def by_model(runs: list[dict]) -> dict[Key, list[dict]]:
    """The runs of each model (all its seeds), in the order the runs come."""
    groups: dict[Key, list[dict]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return groups


def plain(runs: list[dict]) -> list[dict]:
    """The runs trained on the plan's data shape without smeared keys: the depth ladder."""
    return [r for r in runs if not r["smear"] and not r.get("natural")]


def transitioned_by(runs: list[dict], steps) -> np.ndarray:
    """Fraction of the runs whose copy loss had transitioned at or before each step; NaN at a
    step past the last evaluation of a run that had not transitioned (its fate is unknown)."""
    steps = np.asarray(steps, dtype=float)
    done = np.zeros(len(steps))
    unknown = np.zeros(len(steps), dtype=bool)
    for run in runs:
        at = run["transition"]["step"]
        hit = steps >= at if at is not None else np.zeros(len(steps), dtype=bool)
        done += hit
        unknown |= ~hit & (steps > run["evals"][-1]["step"])
    return np.where(unknown, np.nan, done / len(runs))


def curve_steps(runs: list[dict]) -> np.ndarray:
    """The steps at which a survival curve of these runs can change: the first evaluation,
    every transition and every run's last evaluation."""
    points = {float(r["evals"][0]["step"]) for r in runs}
    points |= {float(r["evals"][-1]["step"]) for r in runs}
    points |= {r["transition"]["step"] for r in runs if r["transition"]["step"] is not None}
    return np.array(sorted(points))


def seed_band(runs: list[dict], score) -> list[dict]:
    """Per model with a score (score(run) -> float or None), by N: the seeds' values, mean,
    min and max."""
    out = []
    for rs in by_model(runs).values():
        values = [v for v in map(score, rs) if v is not None]
        if values:
            out.append({"n": rs[0]["n_nonemb"], "values": values, "mean": float(np.mean(values)),
                        "min": min(values), "max": max(values), "model": rs[0]})
    return sorted(out, key=lambda b: b["n"])


def em_slope(points: list[tuple[int, float, tuple[float, float]]]) -> dict | None:
    """Slope of exact match per decade of N over (N, exact match, its 95% interval) points,
    every seed its own point, with the t 95% interval of common.slope.slope_ci: from the
    points' scatter about the line (seed-to-seed spread included), floored at their mean
    binomial variance. None with fewer than three sizes."""
    if len({n for n, _, _ in points}) < 3:
        return None
    logn = np.log10([n for n, _, _ in points])
    em = np.array([e for _, e, _ in points])
    item_var = float(np.mean([((hi - lo) / (2 * Z95)) ** 2 for _, _, (lo, hi) in points]))
    slope, (lo, hi) = slope_ci(logn, em, item_var)
    return {"slope": slope, "ci": (lo, hi), "points": len(points),
            "verdict": "grows" if lo > 0 else "shrinks" if hi < 0 else "undetermined"}


def depth_test(runs: list[dict]) -> dict | None:
    """Transitioned/not counts of the 1-layer and the 2+ layer runs of the depth ladder, and
    Fisher's exact one-sided p that 2+ layer runs transition no more often; None when either
    side has no runs."""
    ladder = plain(runs)
    count = lambda rs: (sum(r["transition"]["step"] is not None for r in rs), len(rs))
    shallow = count([r for r in ladder if r["n_layer"] == 1])
    deep = count([r for r in ladder if r["n_layer"] >= 2])
    if not shallow[1] or not deep[1]:
        return None
    table = [[deep[0], deep[1] - deep[0]], [shallow[0], shallow[1] - shallow[0]]]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    return {"shallow": shallow, "deep": deep, "p": p}


def share(k: int, n: int, of: str = "runs") -> str:
    """k/n with its 95% Wilson interval, in words."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} {of} (95% Wilson {lo:.2f}-{hi:.2f})"


def clears(k: int, n: int, bar: float) -> str:
    """Whether a share of k in n clears a bar: only when its whole Wilson interval does."""
    if n == 0:
        return "not measured"
    lo, hi = wilson(k, n)
    return "holds" if lo >= bar else "does not hold" if hi < bar else "undetermined"
