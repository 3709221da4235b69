"""Fits, plots and the markdown report of a finished (or partly finished) study."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...data.prepare import dataset_dir
from ...errors import UserError
from ...files import read_json
from ...train.runlog import fmt_time, read_metrics
from ..common.plan import StudyPlan
from ..common.runner import clock_time, runs_folder
from . import fit as F
from . import scaling_plots
from .ngram import baselines

PREDICTION_TOLERANCE = 0.03  # nats: the bar for predicting the largest size
# The frontier is fitted to each curve from this share of its compute on: earlier points carry
# the warmup transient and a learning rate far from decayed (a run of that compute would have
# reached a lower loss), which tilts alpha (dropping C < 2e11 alone moved it by 0.08).
FRONTIER_FROM = 0.5
# C counts 6N + 6·n_layer·n_ctx·d + 6·d·V per token (model/nn/gpt.py:flops_per_token): Kaplan's
# attention term; Chinchilla's full attention matrix moved the laptop frontier's alpha
# 0.260 -> 0.246 (issue #17), so the convention is named beside the fit.
FLOP_CONVENTION = ("C = tokens x (6N + 6·n_layer·n_ctx·d + 6·d·V): Kaplan et al.'s attention "
                   "term; Chinchilla's full-matrix count gives a slightly lower alpha")


def study_time(root: Path, runs: list[dict]) -> str:
    """The study's training time: the clock's (timing.json) where runs ran side by side,
    whose wall times then overlap; else the sum of the runs' wall times."""
    total = fmt_time(sum(r["wall_s"] for r in runs))
    jobs = max(r.get("jobs", 1) for r in runs)
    elapsed = clock_time(root) if jobs > 1 else None
    if elapsed is None:
        return total
    return f"{fmt_time(elapsed)} by the clock, up to {jobs} runs at a time ({total} summed)"


def load_runs(root: Path) -> list[dict]:
    folder = runs_folder(root)
    runs = [read_json(p) for p in sorted(folder.glob("*/summary.json"))]
    for run in runs:
        rows = read_metrics(folder / run["name"])
        # The last evaluation covers the whole split, the others eval_batches: it sits 0.008-0.015
        # nats below its curve, so the curve keeps to the evaluations on the same windows.
        run["curve"] = [(r["flops"], r["val_loss"]) for r in rows
                        if "val_loss" in r and r["flops"] and r["step"] < run["steps"]]
    return sorted(runs, key=lambda r: (r["n_nonemb"], r["tokens"], r["seed"]))


def runs_of_plan(root: Path, plan: StudyPlan) -> list[dict]:
    """The folder's finished runs of the plan's sizes, budgets and rates, of any seed (a second
    seed trained into the folder joins its ladder). Runs another plan left in the folder, such
    as the 4M-token ladder's before the default became 2M, are named and left out: fitted,
    they would stand in for this plan's."""
    runs = load_runs(root)
    seeds = {r["seed"] for r in runs}
    wanted = {replace(spec, seed=seed).name for spec in plan.runs() for seed in seeds}
    others = [r["name"] for r in runs if r["name"] not in wanted]
    if others:
        print(f"report: leaving out {len(others)} runs of another plan than {plan.name!r} "
              f"({', '.join(others[:3])}{' ...' if len(others) > 3 else ''})", flush=True)
    return [r for r in runs if r["name"] in wanted]


def ladder_runs(runs: list[dict]) -> list[dict]:
    """The runs at the largest token budget every size shares: the L(N) ladder's runs."""
    per_size = defaultdict(set)
    for r in runs:
        per_size[r["n_nonemb"]].add(r["tokens"])
    shared = set.intersection(*per_size.values())
    if not shared:
        raise UserError("no token budget is shared by every size, so there is no L(N) ladder; "
                        "give the plan a `tokens` budget besides its `flops` budgets")
    return [r for r in runs if r["tokens"] == max(shared)]


def ladder(runs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, mean L over seeds, SD of L over seeds) per size: the L(N) points."""
    by_n = defaultdict(list)
    for r in ladder_runs(runs):
        by_n[r["n_nonemb"]].append(r["val_loss"])
    N = np.array(sorted(by_n), dtype=float)
    return N, np.array([np.mean(by_n[n]) for n in N]), np.array([np.std(by_n[n]) for n in N])


@dataclass(frozen=True)
class SeedNoise:
    """The seed-to-seed noise of log L, as measured and as the L(N) fit uses it."""
    sd: float            # SD of log L between seeds of one size, pooled over sizes
    dof: int             # its degrees of freedom: seeds - 1, summed over those sizes
    sizes: int           # sizes with 2 or more seeds (those the SD is pooled over)
    seeds_per_size: float  # mean seeds a ladder point averages, over every size

    @property
    def se(self) -> float:
        """What the fit draws its noise from: the SE of a size's mean, SD/√(mean seeds a size),
        one figure for every point (with unequal seeds per size, too small for the sizes with
        fewer seeds than the mean and too large for those with more)."""
        return self.sd / float(np.sqrt(self.seeds_per_size))


def seed_noise(runs: list[dict], N: np.ndarray) -> SeedNoise | None:
    """The pooled SD of log L between seeds of one size; None with one seed per size (the fit
    then draws its noise from its own residuals)."""
    by_n = defaultdict(list)
    for r in runs:
        by_n[r["n_nonemb"]].append(np.log(r["val_loss"]))
    groups = [by_n[n] for n in N if len(by_n[n]) > 1]
    if not groups:
        return None
    dof = sum(len(g) - 1 for g in groups)
    pooled = sum(np.var(g, ddof=1) * (len(g) - 1) for g in groups) / dof
    return SeedNoise(float(np.sqrt(pooled)), dof, len(groups),
                     float(np.mean([len(by_n[n]) for n in N])))


def noise_words(noise: SeedNoise) -> str:
    """The seed noise named for what each figure is, in one sentence."""
    spread = ("" if noise.seeds_per_size == int(noise.seeds_per_size) else
              f" (an average: the SE of a one-seed size is the SD, {noise.sd:.4f}; of a two-seed "
              f"size SD/√2, {noise.sd / np.sqrt(2):.4f})")
    return (f"Seed noise in log L, measured: SD between seeds {noise.sd:.4f}, pooled over the "
            f"{noise.sizes} sizes with more than one seed ({noise.dof} degree"
            f"{'s' * (noise.dof != 1)} of freedom); the "
            f"fit's noise is the SE of a size's mean, SD/√{noise.seeds_per_size:g} = "
            f"{noise.se:.4f}, for {noise.seeds_per_size:g} seeds a size on average{spread}.")


def late_curves(runs: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each run's learning curve from FRONTIER_FROM of its compute on: the frontier's points."""
    out = []
    for r in runs:
        if r["curve"]:
            C, L = map(np.array, zip(*r["curve"]))
            keep = C >= FRONTIER_FROM * C.max()
            out.append((C[keep], L[keep]))
    return out


def analyse(runs: list[dict], n_boot: int = 1000) -> dict:
    N, L, L_std = ladder(runs)
    noise = seed_noise(ladder_runs(runs), N)  # not all runs: a size's other budgets are not seeds
    out = {"N": N, "L": L, "L_std": L_std, "noise": noise,
           "falls_everywhere": bool(np.all(np.diff(L) < 0))}
    sigma = None if noise is None else noise.se
    out["fit"] = F.fit_power_law(N, L, n_boot=n_boot, noise=sigma)
    out["line"] = F.fit_loglog_line(N, L)
    if len(N) >= 4:
        out["held_out"] = F.leave_largest_out(N, L, n_boot=n_boot, noise=sigma)
    C = np.array([c for r in runs for c, _ in r["curve"]])
    Lc = np.array([l for r in runs for _, l in r["curve"]])
    out["frontier"] = F.frontier(C, Lc)
    try:
        out["frontier_fit"] = F.fit_frontier(late_curves(runs), n_boot=n_boot)
    except ValueError:
        out["frontier_fit"] = None
    budgets = defaultdict(set)
    for r in runs:
        budgets[r["n_nonemb"]].add(r["tokens"])
    if min(len(b) for b in budgets.values()) >= 2:  # several D per size: Chinchilla approach 3
        n, d, l = (np.array([r[k] for r in runs], dtype=float) for k in ("n_nonemb", "tokens",
                                                                          "val_loss"))
        out["chinchilla"] = F.fit_chinchilla(n, d, l, n_boot=min(n_boot, 400))
        out["chinchilla_points"] = (n, d, l)
        # A FLOP budget becomes a whole number of steps, so runs of one budget differ in
        # the last digits: group them by the budget to two significant figures.
        budgets_c = np.array([float(f"{r['flops']:.2g}") for r in runs])
        out["isoflop"] = F.fit_isoflop(n, budgets_c, l, n_boot=n_boot)
    return out


def ci(pair) -> str:
    return f"[{pair[0]:.4g}, {pair[1]:.4g}]"


def runs_table(runs: list[dict]) -> list[str]:
    # dtype shows where dtype=auto switched precision along the ladder: bf16 costs a little loss
    lines = ["| run | N_nonemb | N_total | tokens | FLOPs | lr | dtype | wall | val loss | config |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['n_nonemb']:,} | {r['n_total']:,} | {r['tokens']:,} | "
                     f"{r['flops']:.3g} | {r['lr']:.3g} | {r.get('dtype', '?')} | "
                     f"{fmt_time(r['wall_s'])} | "
                     f"{r['val_loss']:.4f} | `{r['config_hash']}` |")
    return lines


def held_out_finding(held: F.HeldOut, noise: SeedNoise | None) -> str:
    """The largest size predicted: the law's error and prediction interval, and the baselines'."""
    lo, hi = held.interval
    verdict = (f"**{'inside' if lo <= held.actual <= hi else 'outside'}** the law's 95% "
               f"prediction interval {ci(held.interval)}" if np.isfinite(lo) else
               "with no prediction interval (the law through 3 sizes leaves no residual to "
               "draw its noise from)")
    passing = [name for name, err in (("the law", held.error),
                                      ("the floor-free log-log line", held.loglog_error),
                                      ("a straight line through the 3 next-largest sizes",
                                       held.local_error)) if abs(err) <= PREDICTION_TOLERANCE]
    seeds = (noise_words(noise) if noise is not None else
             "Seed noise: not measured (one seed per size), "
             "so the interval's noise is the fit's residual SD.")
    return (f"- The largest size predicted from the others: {held.predicted:.4f} vs "
            f"{held.actual:.4f} measured, error {held.error:+.4f} nats, "
            f"{verdict}. Baselines: floor-free log-log line {held.loglog_error:+.4f}, "
            f"straight line in log N through the 3 next-largest sizes {held.local_error:+.4f}. "
            f"Within the {PREDICTION_TOLERANCE}-nat bar: {', '.join(passing) or 'none'}; a bar the baselines pass does not single out "
            f"the law. {seeds}")


def findings(a: dict) -> list[str]:
    fit = a["fit"]
    lines = [f"- Val loss falls with N at every step of the ladder: **{'yes' if a['falls_everywhere'] else 'no'}**."]
    if "held_out" in a:
        lines.append(held_out_finding(a["held_out"], a["noise"]))
    excl = fit.alpha_ci[0] > 0
    lines.append(f"- alpha = {fit.alpha:.3f}, 95% CI {ci(fit.alpha_ci)}: "
                 f"**{'excludes' if excl else 'does not exclude'} 0**.")
    return lines


def precision_finding(runs: list[dict]) -> str:
    """One line: the precision of every size, or which sizes ran in which."""
    # Measured on the laptop ladder, bf16 moved a size's loss by -0.009 to +0.015 nats, about
    # as much as a second seed or compiling does: a switch of precision along the ladder can
    # be a kink as large as the prediction error, so it must not pass unseen.
    sizes = defaultdict(dict)  # dtype -> sizes (run name up to its first '-'), in ladder order
    whys = defaultdict(dict)  # dtype -> how it was chosen (precision.py), each reason once
    for r in runs:
        sizes[r.get("dtype", "?")][r["name"].split("-")[0]] = None
        if "dtype_why" in r:  # (runs from before the choice was recorded have none)
            whys[r["dtype"]][r["dtype_why"]] = None
    if len(sizes) == 1:
        dtype = next(iter(sizes))
        told = list(whys[dtype])  # one reason, a study's decision for all its runs, in full;
        if len(told) > 1:  # several (a probe per size, in studies before that): their rules
            told = list(dict.fromkeys(w.split(" [")[0] for w in told))
        why = f" ({'; '.join(told)})" if told else ""
        return f"- Precision: {dtype} at every size{why}."
    parts = "; ".join(f"{d} for {', '.join(s)}" for d, s in sizes.items())
    return (f"- Precision: **mixed** ({parts}). bf16 can move a size's loss by about the seed "
            "noise, so the curve can kink where it switches (see the residuals). Each run's "
            "summary.json says why (dtype_why): a `dtype` under `[train]` or in a `[dtype]` "
            "table per size names one; `dtype = \"auto\"` takes one for the whole study, "
            "but chose per size in studies trained before that rule.")


def floor_cells(fit: F.PowerLawFit) -> str:
    """Estimate and 95% CI cells of a fitted floor, which the bound E' >= 0 can make one-sided."""
    if not len(fit.boot):
        return f"{fit.E:.4f} | {ci(fit.E_ci)}"
    share = f"{fit.E_at_bound:.1%} of refits at 0"
    if fit.E_on_bound:
        return f"0 (at bound) | ≤ {fit.E_ci[1]:.4g} (one-sided 95%; {share})"
    if fit.E_ci[0] == 0.0:
        return f"{fit.E:.4f} | ≤ {fit.E_ci[1]:.4g}, not bounded away from 0 ({share})"
    return f"{fit.E:.4f} | {ci(fit.E_ci)} ({share})"


def fit_table(a: dict) -> list[str]:
    fit = a["fit"]
    slope, _ = a["line"]
    lines = ["| law | parameter | estimate | 95% CI |", "|---|---|---:|---|",
             f"| L(N) = E' + A·N^-alpha | E' | {floor_cells(fit)} |",
             f"| | A | {fit.A:.4g} | {ci(fit.A_ci)} |",
             f"| | alpha | {fit.alpha:.4f} | {ci(fit.alpha_ci)} |",
             f"| floor-free log-log line (no floor; shown for contrast) | slope | {slope:.4f} | |"]
    ff = a.get("frontier_fit")
    if ff is not None:
        lines += [f"| frontier L(C) = E + A·C^-alpha | E | {floor_cells(ff)} |",
                  f"| | alpha | {ff.alpha:.4f} | {ci(ff.alpha_ci)} |"]
    iso = a.get("isoflop")
    if iso is not None:
        cells = " | ".join(exponent_cells(iso.a, iso.a_ci))
        lines.append(f"| Chinchilla approach 2 ({len(iso.optima)} isoFLOP parabolas with an "
                     f"interior minimum) | a in N_opt ∝ C^a | {cells} |")
    ch = a.get("chinchilla")
    if ch is not None:
        lines += [f"| Chinchilla approach 3 L(N, D) | {k} | {getattr(ch, k):.4g} | "
                  f"{ci(getattr(ch, k + '_ci'))} |" for k in ("E", "A", "B", "alpha", "beta")]
        lines += [f"| Chinchilla approach 3 L(N, D) | {k} in {opt}_opt ∝ C^{k} (C = 6ND) | "
                  f"{' | '.join(exponent_cells(getattr(ch, k), getattr(ch, k + '_ci')))} |"
                  for k, opt in (("a", "N"), ("b", "D"))]
    return lines


def exponent_cells(value: float, interval: F.CI) -> tuple[str, str]:
    """Estimate and 95% CI of an exponent as text, which too few optima leave undetermined."""
    if np.isnan(value):
        return "undetermined (fewer than 2 optima)", ""
    return f"{value:.3f}", ci(interval) if np.all(np.isfinite(interval)) else "none"


UNITS_NOTE = (
    "Units differ, so only the exponents compare, not where N_opt sits: N here counts "
    "non-embedding parameters and D characters, at 1e11-1e13 FLOPs; Hoffmann et al. count all "
    "parameters and BPE tokens, at 1e18-1e24. Counting non-embedding parameters at small scale "
    "biases a upward, towards Kaplan et al.'s 0.73 (Pearce & Song 2024).")


def contains(interval: F.CI, value: float) -> bool:
    return bool(interval[0] <= value <= interval[1])


def against_published(name: str, interval: F.CI, theirs: dict[str, float]) -> str:
    """One line: which published values an interval of ours contains, and which it excludes."""
    if not np.all(np.isfinite(interval)):
        return f"- {name}: no interval, so no comparison."
    inside = [f"{k} {v:.2f}" for k, v in theirs.items() if contains(interval, v)]
    outside = [f"{k} {v:.2f}" for k, v in theirs.items() if not contains(interval, v)]
    return (f"- {name} {ci(interval)}: contains {', '.join(inside) or 'none of theirs'}; "
            f"excludes {', '.join(outside) or 'none'}.")


def allocation_section(a: dict) -> list[str]:
    """Our compute-optimal exponents beside Hoffmann et al.'s and Besiroglu et al.'s, and
    which published values each of our 95% intervals contains: containing one is being
    consistent with it at that level, not equal to it; excluding one is differing from it."""
    ch, iso = a["chinchilla"], a["isoflop"]
    rows = [("ours, approach 3 (L(N, D) over every run)", f"{ch.a:.3f} {ci(ch.a_ci)}",
             f"{ch.b:.3f} {ci(ch.b_ci)}"),
            (f"ours, approach 2 ({len(iso.optima)} isoFLOP parabolas)",
             " ".join(exponent_cells(iso.a, iso.a_ci)).strip(), "")]
    pub = F.PUBLISHED_ALLOCATION
    rows += [(k, f"{x:.2f}", f"{y:.2f}") for k, (x, y) in pub.items()]
    lines = ["## Compute-optimal allocation", "",
             "| | a in N_opt ∝ C^a (95% CI) | b in D_opt ∝ C^b (95% CI) |", "|---|---|---|",
             *(f"| {n} | {x} | {y} |" for n, x, y in rows), "",
             against_published("Approach 3's a", ch.a_ci, {k: v[0] for k, v in pub.items()}),
             against_published("Approach 3's b", ch.b_ci, {k: v[1] for k, v in pub.items()}),
             against_published("Approach 2's a", iso.a_ci, {k: v[0] for k, v in pub.items()}),
             *(against_published(f"Approach 3's {k}", getattr(ch, k + "_ci"),
                                 {"Besiroglu et al.'s": v}) for k, v in F.BESIROGLU.items()),
             "- Containing a published value is consistency with it at 95%, not equality; "
             "an interval wide enough to contain every published value tells them apart from "
             "none. " + UNITS_NOTE, "",
             "![approach 3: loss against D per size, and the compute-optimal size](chinchilla.png)",
             "", "*Left: final val loss against training characters D per size, with approach "
             "3's fitted L(N, D). Right: the compute-optimal size N_opt(C) it implies (C = 6ND), "
             "with the 95% band of its bootstrap refits, and Hoffmann et al.'s and Besiroglu "
             "et al.'s slopes drawn through our curve's middle for slope comparison only: their N "
             "is all parameters and D BPE tokens, ours non-embedding parameters and "
             "characters.*", ""]
    return lines


def method_notes(a: dict) -> list[str]:
    """How the intervals were made, so that a reader can judge them."""
    noise = ("the SE of a size's mean log L over its seeds, from the seed noise above"
             if a["noise"] is not None else
             "the fit's residual SD, itself drawn from its chi-square uncertainty")
    lines = [f"- L(N): least squares in log L (Huber delta {F.LN_DELTA}, above every residual; "
             "Hoffmann's 1e-3 would make it nearly least-absolute-deviation here), with E' >= 0 "
             "and alpha >= 0 as bounds. 95% CIs: percentiles of refits to the fitted curve times "
             f"log-normal noise whose SD is {noise} (parametric bootstrap; its coverage is tested "
             "on synthetic data in tests/test_fit.py)."]
    ff = a.get("frontier_fit")
    if ff is not None:
        skipped = f" ({ff.skipped} with too few distinct points skipped)" if ff.skipped else ""
        lines.append(f"- Frontier: the learning curves from {FRONTIER_FROM:.0%} of each run's "
                     "compute on, on the same evaluation windows (the final whole-split "
                     f"evaluation left out); 95% CIs resample whole runs{skipped}. "
                     f"{FLOP_CONVENTION}.")
    if "held_out" in a:
        lines.append("- The largest size's 95% prediction interval: percentiles of the "
                     "leave-largest-out refits' predictions, each times a draw of the same "
                     "log-normal noise (an interval for a new measurement of that size).")
    ch = a.get("chinchilla")
    if ch is not None:
        skipped = f" ({ch.skipped} degenerate resamples skipped)" if ch.skipped else ""
        lines.append(f"- Chinchilla approach 3: Huber delta 1e-3 as published, bootstrap over "
                     f"points{skipped}; a and b get their intervals from the same refits (their "
                     "ratio of alpha and beta per refit), not from alpha's and beta's own.")
    iso = a.get("isoflop")
    if iso is not None and not np.isnan(iso.a):
        drawn = (f"normal noise of the parabolas' pooled residual SD ({iso.noise:.4f} nats on "
                 f"{iso.df} degrees of freedom, chi-square drawn; it also holds the parabolas' "
                 f"misfit), {iso.skipped} resamples that lost a minimum skipped"
                 if iso.df > 0 else "none: every parabola passes through its 3 points")
        lines.append("- Chinchilla approach 2: runs grouped by FLOP budget (2 significant "
                     "figures), a parabola of L in log N per budget, a budget kept where its "
                     "vertex lies inside its sizes; a is the slope of log N_opt on log C. Its "
                     "95% CI: a parametric bootstrap, every kept parabola plus " + drawn + ". "
                     "A parabola's vertex is not the minimum of a loss asymmetric in log N, and "
                     "with the same sizes at every budget its offset changes with the budget: "
                     "on the data-axis design, simulated from a law like its guess, a read ~0.1 "
                     "low and its interval covered the true a 80-85% of the time "
                     "(configs/study/data-axis.toml).")
    return lines


def fewshot_section(root: Path) -> list[str]:
    """The few-shot study's findings, when `tinygpt fewshot` has written them under root/fewshot."""
    md = root / "fewshot" / "fewshot.md"
    if not md.exists() and runs_folder(root) != root:  # a committed copy: no checkpoints
        return ["## Few-shot and in-context learning", "",
                "Not measured for these runs: this copy keeps their summaries and metrics, not "
                "their checkpoints; `tinygpt fewshot <study>/*/ --out <study>/fewshot` measures "
                "them in the folder the study trained in.", ""]
    if not md.exists():
        return ["## Few-shot and in-context learning", "",
                f"Not measured yet: `tinygpt fewshot {root}/*/ --out {root}/fewshot`.", ""]
    body = md.read_text().split("\n", 1)[1]  # its own title is replaced by this section's
    return ["## Few-shot and in-context learning", "",
            "(from [fewshot/fewshot.md](fewshot/fewshot.md); figures in fewshot/)", body]


def write_report(root: Path, plan: StudyPlan | None = None, command: str = "") -> Path:
    """Fit, plot and write root/report.md; returns its path."""
    if plan is None:
        fix = f"name the study's plan instead: tinygpt report {root} --preset=<preset or plan.toml>"
        try:
            plan = StudyPlan(**read_json(root / "plan.json", fix))
        except TypeError as e:  # JSON, but not a plan's fields
            raise UserError(f"{root / 'plan.json'} is damaged ({str(e)[:80]}); {fix}") from None
    folder = dataset_dir(plan.dataset, plan.tokenizer)
    meta = json.loads((folder / "meta.json").read_text())
    plan.vocab_size = meta["tokenizer"]["vocab_size"]  # a FLOP budget's token count needs it
    runs = runs_of_plan(root, plan)
    if len({r["n_nonemb"] for r in runs}) < 3:
        raise UserError(f"{root} has {len(runs)} finished runs; a fit needs at least 3 sizes")
    if not any(r["curve"] for r in runs):  # (a plan from before study checked its evaluations)
        raise UserError(f"no run in {root} was evaluated before its last step, so there is no "
                        "learning curve to fit; rerun the study with evals = 2 or more")
    tr = np.fromfile(folder / "train.bin", dtype=np.uint16)
    va = np.fromfile(folder / "val.bin", dtype=np.uint16)
    base = baselines(tr, va, meta["tokenizer"]["vocab_size"])
    unit = "nats/char" if plan.tokenizer == "char" else "nats/token"
    a = analyse(runs)
    N, L = a["N"], a["L"]
    held = (N[-1], a["held_out"].predicted) if "held_out" in a else None
    seeds = [(r["n_nonemb"], r["val_loss"]) for r in ladder_runs(runs)]
    scaling_plots.loss_vs_n(root, N, L, a["fit"], a["line"], base, unit, held, seeds)
    curves = {r["name"]: tuple(map(np.array, zip(*r["curve"]))) for r in runs if r["curve"]}
    scaling_plots.curves_vs_flops(root, curves, a["frontier"], a["frontier_fit"], base, unit)
    scaling_plots.residuals(root, N, L, a["fit"])
    if "chinchilla" in a:
        scaling_plots.chinchilla(root, *a["chinchilla_points"], a["chinchilla"], unit)
    wall = study_time(root, runs)
    text = [f"# Scaling study `{plan.name}`", "", plan.description, "",
            f"- Data: `{plan.dataset}` ({plan.tokenizer} tokens), validation on held-out "
            f"{', '.join(meta['held_out'][:6])}{' ...' if len(meta['held_out']) > 6 else ''}",
            f"- Machine: {runs[0]['machine']}",
            f"- Command: `{command or 'tinygpt study --preset ' + plan.name}`",
            # no date written: the report is a function of the folder alone, so that
            # `tinygpt report` redraws a committed one byte for byte
            f"- Training wall time, all runs: {wall}", "", "## Findings", "", *findings(a),
            precision_finding(runs), "",
            "## Fits", "", *fit_table(a), "", *method_notes(a), "",
            "n-gram baselines on the same split (" + unit + "): "
            + ", ".join(f"{k} {v:.3f}" for k, v in base.items()), "",
            "![loss vs N](loss_vs_n.png)", "", "![learning curves](curves_vs_flops.png)", "",
            "![residuals](residuals.png)", "",
            *(allocation_section(a) if "chinchilla" in a else []),
            "## Runs", "", *runs_table(runs), "",
            *fewshot_section(root)]
    path = root / "report.md"
    path.write_text("\n".join(text))
    return path
