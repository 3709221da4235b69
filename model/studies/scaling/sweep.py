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

import numpy as np

from ...files import read_json, write_json
from ..common.plan import RunSpec, StudyPlan
from ..common.runner import ready, run_specs
from .fit import fit_power_law
from .scaling_report import ci


def past_edge(results: dict[float, float], step: float) -> list[float]:
    """The next rate out when the best of `results` sits at an edge of its grid; none inside."""
    ordered = sorted(results)
    best = min(results, key=results.get)
    if best == ordered[0]:
        return [ordered[0] / step]
    return [ordered[-1] * step] if best == ordered[-1] else []


def sweep_sizes(plan: StudyPlan, root: Path, tokens: int, factors: list[float], extend: int,
                **kw) -> dict[str, dict[float, float]]:
    """{size: {lr: final val loss}}, each size's grid extended until its best is interior.
    A round trains every size's missing rates together, so the jobs stay busy across sizes
    (a size's three rates alone would leave one of two jobs idle half the time)."""
    step = factors[-1] / factors[-2] if len(factors) > 1 else 2.0
    results: dict[str, dict[float, float]] = {size: {} for size in plan.lr}
    todo = {size: [lr * f for f in factors] for size, lr in plan.lr.items()}
    for _ in range(extend + 1):
        specs = [RunSpec(size, lr, tokens, plan.seeds[0]) for size, lrs in todo.items()
                 for lr in lrs]
        if not specs:
            break
        for spec, summary in zip(specs, run_specs(plan, specs, root, **kw)):
            results[spec.size][spec.lr] = summary["val_loss"]
        todo = {size: past_edge(res, step) for size, res in results.items()}
    return results


def run_sweep(plan: StudyPlan, root: Path, tokens: int = 0, **kw) -> dict:
    """Sweep every size of the plan at its [sweep] tokens (or `tokens`, where given: e.g. the
    study's own budget, to check rates chosen at a smaller one); writes root/sweep.json and
    sweep.md and returns it."""
    ready(plan)
    cfg = {"tokens": 1_000_000, "factors": [0.5, 1.0, 2.0], "extend": 2, **plan.sweep,
           **({"tokens": tokens} if tokens else {})}
    swept = replace(plan, evals=5)  # a sweep only needs the final loss
    table = {}
    found = sweep_sizes(swept, root, cfg["tokens"], cfg["factors"], cfg["extend"], **kw)
    for size, res in found.items():
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
    if cfg["tokens"] in plan.tokens:
        lines += at_own_budget(plan, found, root, cfg["tokens"])
    (root / "sweep.md").write_text("\n".join(lines) + "\n")
    return result


def at_own_budget(plan: StudyPlan, found: dict[str, dict[float, float]], root: Path,
                  tokens: int) -> list[str]:
    """A sweep at the study's own budget holds the study's ladder (its first seed at the plan's
    rates): that ladder beside the one at the best rates found, the loss each size gives up,
    and L(N) fitted to both, as the scaling report fits one seed (residual-noise bootstrap)."""
    seed, sizes = plan.seeds[0], list(found)
    N = np.array([read_json(root / RunSpec(s, plan.lr[s], tokens, seed).name
                            / "summary.json")["n_nonemb"] for s in sizes], dtype=float)
    own = np.array([found[s][plan.lr[s]] for s in sizes])
    best = np.array([min(found[s].values()) for s in sizes])
    lines = ["", "## The study's ladder at its own rates and at the best found here", "",
             f"The runs at the plan's rates are the study's own (seed {seed}, the same budget "
             "and recipe).", "", "| size | plan's lr | val loss | best lr here | val loss | "
             "given up at the plan's lr |", "|---|---:|---:|---:|---:|---:|"]
    for s, a, b in zip(sizes, own, best):
        lines.append(f"| {s} | {plan.lr[s]:.3g} | {a:.4f} | "
                     f"{min(found[s], key=found[s].get):.3g} | {b:.4f} | {a - b:+.4f} |")
    lines += ["", "| ladder | alpha [95% CI] | E' [95% CI] |", "|---|---|---|"]
    for label, L in (("at the plan's rates", own), ("at the best rates here", best)):
        f = fit_power_law(N, L)
        # through 3 sizes the curve passes through every point: no noise to draw intervals from
        alpha, E = ((ci(f.alpha_ci), ci(f.E_ci)) if np.isfinite(f.alpha_ci).all()
                    else ("(no interval: 3 sizes)",) * 2)
        lines.append(f"| {label} | {f.alpha:.3f} {alpha} | {f.E:.3f} {E} |")
    return lines
