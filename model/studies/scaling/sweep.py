"""A small learning-rate sweep per size, at a reduced token budget.

The learning rate is most of the difference between sizes at tiny scale:
an untuned ladder measures how fast each size leaves the n-gram
regime, not L(N). For each size we try the plan's rate times each factor; when
the best sits at an edge of the grid we extend the grid that way (at most
`extend` times), so no chosen value is an edge.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ...files import write_json
from ..common.plan import RunSpec, StudyPlan
from ..common.runner import ready, run_specs


def sweep_size(plan: StudyPlan, size: str, root: Path, tokens: int, factors: list[float],
               extend: int, **kw) -> dict[float, float]:
    """{lr: final val loss} for one size, the grid extended until its best is interior."""
    step = factors[-1] / factors[-2] if len(factors) > 1 else 2.0
    lrs = [plan.lr[size] * f for f in factors]
    results: dict[float, float] = {}
    for _ in range(extend + 1):
        todo = [RunSpec(size, lr, tokens, plan.seeds[0]) for lr in lrs if lr not in results]
        for spec, summary in zip(todo, run_specs(plan, todo, root, **kw)):
            results[spec.lr] = summary["val_loss"]
        ordered = sorted(results)
        best = min(results, key=results.get)
        if best == ordered[0]:
            lrs = [ordered[0] / step]
        elif best == ordered[-1]:
            lrs = [ordered[-1] * step]
        else:
            break
    return results


def run_sweep(plan: StudyPlan, root: Path, **kw) -> dict:
    """Sweep every size of the plan; writes root/sweep.json and returns it."""
    ready(plan)
    cfg = {"tokens": 1_000_000, "factors": [0.5, 1.0, 2.0], "extend": 2, **plan.sweep}
    swept = replace(plan, evals=5)  # a sweep only needs the final loss
    table = {}
    for size in plan.lr:
        res = sweep_size(swept, size, root, cfg["tokens"], cfg["factors"], cfg["extend"], **kw)
        best = min(res, key=res.get)
        table[size] = {"best_lr": best, "edge": best in (min(res), max(res)),
                       "val_loss": {f"{lr:.3g}": loss for lr, loss in sorted(res.items())}}
    result = {"plan": plan.name, "tokens": cfg["tokens"], "sizes": table}
    write_json(root / "sweep.json", result)
    lines = [f"# Learning-rate sweep `{plan.name}`", "",
             f"{cfg['tokens']:,} tokens per run ({plan.arch} block, {plan.tokenizer} tokens), "
             "final val loss on the whole held-out split; the grid is extended past any edge.",
             "", "| size | best lr | val loss by lr |", "|---|---:|---|"]
    for size, row in table.items():
        losses = ", ".join(f"{lr}: {v:.3f}" for lr, v in row["val_loss"].items())
        flag = " (edge)" if row["edge"] else ""
        lines.append(f"| {size} | {row['best_lr']:.3g}{flag} | {losses} |")
        print(f"{size:>6}  best lr {row['best_lr']:.3g}{flag}  {losses}")
    (root / "sweep.md").write_text("\n".join(lines) + "\n")
    return result
