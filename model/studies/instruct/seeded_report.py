"""The report of a pipeline over training seeds (seeded.py): every comparison of the one-seed
report pooled over the seeds, each with its 95% interval over seeds and prompts (seed_stats.py);
the alignment tax split into SFT's part and PPO's; the reward models' held-out accuracy; and Gao
et al.'s test, best-of-n beside PPO, each seed's run fitted alone and the fits pooled
(gao.over_seeds). Read back from the seeds' folders; a seed not yet evaluated is left out and
named, and at least two are needed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from ...errors import UserError
from ...files import read_json, write_atomic
from ...train.runlog import fmt_time
from ..common.figures import save
from .bon import best_of_n, bon_curve
from .context import Context, seed_contexts
from .gao import above_zero, over_seeds
from .instruct_report import (FORMS_TEXT, SOURCES, Fits, bon_data, curves, difference_pairs,
                              fit_or_none, fit_table, gao_points, gold_panel, per_prompt, sources,
                              measured_on, tax_steps)
from .seed_stats import SeedMean, seed_mean


@dataclass(frozen=True)
class Seed:
    ctx: Context    # the seed's one-seed pipeline
    results: dict   # its results.json


def finished_seeds(ctx: Context) -> list[Seed]:
    """The seeds whose pipeline has reached its final comparison; a UserError under 2."""
    done = [Seed(sub, read_json(sub.root / "results.json")) for sub in seed_contexts(ctx)
            if (sub.root / "results.json").exists()]
    if len(done) < 2:
        raise UserError(f"{ctx.root} has {len(done)} of {ctx.cfg.seeds} seeds finished; a report "
                        f"over seeds needs 2: run tinygpt instruct --preset={ctx.name} "
                        f"--out={ctx.root}")
    return done


def over(seeds: list[Seed], value: Callable[[Seed], np.ndarray | float]) -> SeedMean:
    """seed_mean of value(seed): a seed's per-prompt values, or one number a seed."""
    return seed_mean([np.atleast_1d(value(s)) for s in seeds])


def same(v: np.ndarray) -> np.ndarray:
    return v


def prompt_means(label: str, key: str = "score", of=same) -> Callable[[Seed], np.ndarray]:
    """A seed's per-prompt mean of of(answers' key) for one model: a prompt's answers are
    averaged first, as the one unit they are."""
    return lambda s: of(per_prompt(s.results["models"][label][key])).mean(1)


def cell(m: SeedMean, fmt: str = ".3f") -> str:
    """The mean over seeds and its 95% interval."""
    lo, hi = m.ci
    return f"{m.mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def each(m: SeedMean, fmt: str = ".3f") -> str:
    """Every seed's value, so a reader sees the spread the interval is made of."""
    return " / ".join(f"{v:{fmt}}" for v in m.values)


def score_lines(seeds: list[Seed]) -> list[str]:
    """Every model's scores: the labeller's with intervals, its parts and the costs as means."""
    first = seeds[0].results
    lines = ["| model | labeller score, mean [95% CI] | each seed | share of answers scoring ≥ 0.9 "
             "[95% CI] | keyword part | keyword once, share of answers | keyword at all, share "
             "of answers | length part | words part | variety part | RM "
             f"{first['reward_model']} score, normalised | KL(π ‖ SFT), nats an answer | held-out "
             "loss |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label in first["models"]:
        score = over(seeds, prompt_means(label))
        means = [over(seeds, prompt_means(label, key, of)).mean for key, of in (
            ("keyword", same), ("keyword", lambda v: v == 1), ("keyword", lambda v: v > 0),
            ("length", same), ("words", same), ("variety", same))]
        extra = [over(seeds, prompt_means(label, k)).mean for k in ("reward", "kl")]
        loss = np.mean([s.results["models"][label]["held_out_loss"] for s in seeds])
        lines.append(f"| {label} | {cell(score)} | {each(score)} | "
                     f"{cell(over(seeds, prompt_means(label, of=lambda v: v >= 0.9)))} | "
                     + " | ".join(f"{m:.2f}" for m in means)
                     + f" | {extra[0]:+.2f} | {extra[1]:.2f} | {loss:.4f} |")
    return lines


def difference_lines(seeds: list[Seed]) -> list[str]:
    """Each paired difference over seeds, with the two noises its interval is made of."""
    lines = ["| difference | labeller score, mean [95% CI] | each seed | SD between seeds | SE "
             "within a seed (its prompts) | keyword part, mean [95% CI] |",
             "|---|---|---|---|---|---|"]
    for name, a, b in difference_pairs(seeds[0].ctx):
        diff = {key: over(seeds, lambda s, k=key: prompt_means(a, k)(s) - prompt_means(b, k)(s))
                for key in ("score", "keyword")}
        m = diff["score"]
        lines.append(f"| {name} | {cell(m, '+.3f')} | {each(m, '+.3f')} | {m.between_sd:.3f} | "
                     f"{m.within_se:.3f} | {cell(diff['keyword'], '+.3f')} |")
    return lines


def loss(label: str) -> Callable[[Seed], float]:
    """A seed's held-out loss of one model."""
    return lambda s: s.results["models"][label]["held_out_loss"]


def tax_lines(seeds: list[Seed]) -> list[str]:
    """The alignment tax over seeds: each stage's rise in held-out loss, SFT's part and PPO's."""
    ctx = seeds[0].ctx
    ppo = f"PPO (RM {ctx.cfg.sizes()[-1]})"
    steps = [*tax_steps(ctx), (f"total: base → {ppo}", "base", ppo)]
    rise = {name: over(seeds, lambda s, a=a, b=b: loss(b)(s) - loss(a)(s))
            for name, a, b in steps}
    lines = ["| stage | rise in held-out loss (its tax), mean [95% CI] | each seed | share of "
             "base → PPO's rise |", "|---|---|---|---|"]
    total = rise[steps[-1][0]].mean
    for name, m in rise.items():
        share = f"{m.mean / total:.0%}" if name[:4] in ("SFT:", "PPO:") else "—"
        lines.append(f"| {name} | {cell(m, '+.4f')} | {each(m, '+.4f')} | {share} |")
    return lines + ["", f"Held-out loss: the mean on the same {ctx.cfg.val_batches * 16} windows "
                    "of the held-out plays for every model and seed, from one base model: its "
                    "intervals are over the training seeds alone (no prompts enter it)."]


def rm_lines(seeds: list[Seed]) -> list[str]:
    """Each reward model's held-out accuracy over seeds, and whether it grows with size."""
    sizes = seeds[0].ctx.cfg.sizes()
    acc = {size: over(seeds, lambda s, z=size: s.ctx.finished(f"rm-{z}")["test_accuracy"])
           for size in sizes}
    lines = ["| reward model | non-embedding params | held-out pairwise accuracy, mean [95% CI] | "
             "each seed |", "|---|---|---|---|"]
    for size, m in acc.items():
        n = seeds[0].ctx.finished(f"rm-{size}")["n_nonemb"]
        lines.append(f"| {size} | {n:,} | {cell(m)} | {each(m)} |")
    gain = over(seeds, lambda s: (s.ctx.finished(f"rm-{sizes[-1]}")["test_accuracy"]
                                  - s.ctx.finished(f"rm-{sizes[0]}")["test_accuracy"]))
    return lines + ["", f"Accuracy on each seed's held-out ranked prompts (pairs the labeller ties "
                    f"left out). Largest − smallest: {cell(gain, '+.3f')}; larger reward models "
                    f"are more accurate (Gao et al.): **{above_zero(gain.ci)}**."]


def bon_bands(seeds: list[Seed], size: str) -> tuple[np.ndarray, list[SeedMean]]:
    """d at each n, and best-of-n's gold score against the reward model of size over seeds."""
    runs = [bon_curve(bon_data(s.ctx), size) for s in seeds]
    return runs[0][0], [seed_mean([gold[:, j] for _, gold in runs]) for j in range(len(runs[0][0]))]


def picked_proxy(seed: Seed, size: str, n: int) -> np.ndarray:
    """Per prompt, the proxy's own score of the answer it picks out of n (normalised)."""
    proxy = np.asarray(bon_data(seed.ctx)["proxy"][size])
    return best_of_n(proxy, proxy, n)


def bon_lines(seeds: list[Seed]) -> list[str]:
    """Best-of-n's gold score at each n against each reward model, over seeds."""
    sizes = seeds[0].ctx.cfg.sizes()
    bands = {size: bon_bands(seeds, size) for size in sizes}
    ns = bon_data(seeds[0].ctx)["n"]
    lines = ["| n | √KL d | " + " | ".join(f"gold, best of n by RM {s}, mean [95% CI]"
                                           for s in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for j, n in enumerate(ns):
        lines.append(f"| {n} | {bands[sizes[0]][0][j]:.2f} | "
                     + " | ".join(cell(bands[s][1][j]) for s in sizes) + " |")
    picked = [over(seeds, lambda s, z=size: picked_proxy(s, z, ns[-1])).mean for size in sizes]
    return lines + [f"| proxy at n = {ns[-1]} (normalised) | | "
                    + " | ".join(f"{p:+.2f}" for p in picked) + " |"]


def pooled_fits(seeds: list[Seed]) -> Fits:
    """Gao's form fitted to each seed's points, per source and reward model, pooled over the
    seeds; None where a seed's points are too few to fit."""
    fits: Fits = {}
    for source in [k for k in SOURCES if all(k in sources(s.ctx) for s in seeds)]:
        fits[source] = {}
        for size in seeds[0].ctx.cfg.sizes():
            each_seed = [fit_or_none(*gao_points(s.ctx, size, source), SOURCES[source])
                         for s in seeds]
            fits[source][size] = over_seeds(each_seed) if all(each_seed) else None
    return fits


def ppo_bands(seeds: list[Seed], size: str) -> tuple[np.ndarray, list[SeedMean]]:
    """The sweep's held-out evaluations against one reward model: the seeds' mean d at each,
    and the gold score over seeds."""
    runs = [curves(s.ctx)[size] for s in seeds]
    steps = range(min(map(len, runs)))
    return (np.array([np.mean([r[j]["sqrt_kl"] for r in runs]) for j in steps]),
            [seed_mean([[r[j]["score"]] for r in runs]) for j in steps])


def plot_gold(seeds: list[Seed], fits: Fits, folder: Path) -> None:
    """Gold against d with its 95% band over seeds: best-of-n beside PPO, fitted forms dashed."""
    sizes, cfg = seeds[0].ctx.cfg.sizes(), seeds[0].ctx.cfg
    panels = {"best-of-n": (bon_bands, f"best-of-n, n = {cfg.bon_n}"),
              "PPO, held-out evaluations": (ppo_bands, f"PPO sweep (β = {cfg.sweep_beta:g}), "
                                                       "held-out evaluations")}
    panels = {k: v for k, v in panels.items() if k in fits}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (source, (bands, title)) in zip(axes[0], panels.items()):
        points = {}
        for size in sizes:
            d, gold = bands(seeds, size)
            points[size] = (d, [m.mean for m in gold], [m.ci[0] for m in gold],
                            [m.ci[1] for m in gold])
        gold_panel(ax, points, fits[source], title)
    fig.suptitle(f"{len(seeds)} seeds: mean and 95% band over seeds; policy {cfg.policy_size}")
    save(fig, folder, "overoptimisation")


def plot_scores(seeds: list[Seed], folder: Path) -> None:
    """Every model's labeller score over seeds, each seed's mean beside it."""
    labels = list(seeds[0].results["models"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, label in enumerate(labels):
        m = over(seeds, prompt_means(label))
        ax.plot([i + 0.15] * len(m.values), m.values, ".", color="0.5")  # (beside the bar)
        ax.errorbar(i, m.mean, yerr=[[m.mean - m.ci[0]], [m.ci[1] - m.mean]], fmt="o", capsize=4)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("labeller score, held-out prompts")
    ax.set_title(f"mean and 95% interval over {len(seeds)} seeds (grey: each seed's mean)")
    ax.grid(alpha=0.3)
    save(fig, folder, "scores")


def timing_lines(seeds: list[Seed]) -> list[str]:
    """Each stage's wall time per seed, as each seed's timings.json kept it."""
    timings = [read_json(s.ctx.root / "timings.json") for s in seeds]
    lines = ["| stage | " + " | ".join(f"seed {s.ctx.cfg.seed}" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for stage in timings[0]:
        lines.append(f"| {stage} | " + " | ".join(fmt_time(t[stage]) if stage in t else "—"
                                                  for t in timings) + " |")
    totals = [sum(v for k, v in t.items() if not k.startswith("base-")) for t in timings]
    return lines + ["| all but the base models | " + " | ".join(map(fmt_time, totals)) + " |"]


def method_lines(ctx: Context, seeds: list[Seed]) -> list[str]:
    """How the seeds differ and how an interval over them is made."""
    first = seeds[0].results
    k, answers = len(seeds), per_prompt(first["models"]["SFT"]["score"]).shape[1]
    return [
        f"Each seed retrains every stage after pretraining (the base models are one run, seed "
        f"{ctx.cfg.base_seed}) and draws its own prompts: its training prompts, the "
        f"{len(first['prompts'])} held-out prompts every model answers ({answers} answers each, "
        "sampled at temperature 1; a difference pairs two models' answers to the same prompts) "
        "and the reward models' held-out ranked prompts. A number's value in one seed is its "
        "mean over that seed's prompts, a prompt's answers averaged first; its 95% interval is "
        f"the t interval of the {k} seeds' mean, on {k - 1} degree{'s' * (k > 2)} of freedom (± "
        f"{stats.t.ppf(0.975, k - 1):.2f} standard errors; model/studies/instruct/seed_stats.py). "
        "With prompts drawn within each seed, the seeds' spread holds both the training noise "
        "and the prompts' noise, so the interval is exact for Gaussian seed means however the "
        "two split. \"SD between seeds\" and \"SE within a seed\" (the standard error of one "
        "seed's mean over its prompts) say which it is: an SD well above the SE is training "
        "that varies."]


def gao_method(fits: Fits) -> list[str]:
    """How the fits are pooled over seeds and how a verdict is read."""
    return [
        f"Gao et al.'s forms, {FORMS_TEXT}, fitted by least squares to each seed's points on "
        "their own (" + "; ".join(fits) + "), then pooled over the seeds: α, β and the start are "
        "the seeds' means, their 95% intervals t intervals on seeds − 1 degrees of freedom from "
        "the spread over seeds, the peak's by Fieller's method on the same spread "
        "(model/studies/instruct/gao.py, over_seeds). A verdict holds when its interval excludes "
        "the other answer and is undetermined when it spans it; \"pushed out\" compares the "
        "peak intervals of every pair of sizes (disjoint 95% intervals: a cautious test).", ""]


def write_seeded_report(ctx: Context) -> Path:
    """report.md, scores and overoptimisation figures of the pipeline over seeds at ctx.root."""
    seeds = finished_seeds(ctx)
    cfg, fits = ctx.cfg, pooled_fits(seeds)
    plot_scores(seeds, ctx.root)
    plot_gold(seeds, fits, ctx.root)
    done = [s.ctx.cfg.seed for s in seeds]
    left = [seed for seed in cfg.seed_list() if seed not in done]
    links = ", ".join(f"[seed {s}](seed-{s}/report.md)" for s in done)
    bon = ["Best-of-n: the SFT policy answers each held-out prompt max(n) times, the reward "
           "model keeps the best of n, the labeller grades it; KL log n − (n − 1)/n.", "",
           *bon_lines(seeds), ""] if "best-of-n" in fits else []
    lines = [
        f"# The third act over {len(seeds)} training seeds ({ctx.name} preset)", "",
        f"Command: `tinygpt instruct --preset={ctx.name}`; `tinygpt report "
        f"{ctx.root}` redraws it. Machine: {measured_on(seeds[0].results)}.",
        f"Policy {cfg.policy_size}, reward models {cfg.rm_sizes}; seeds "
        f"{', '.join(map(str, done))}" + (f" (not finished, left out: "
                                          f"{', '.join(map(str, left))})" if left else "")
        + f". Each seed's own report: {links}.", "",
        "## How the intervals are made", "", *method_lines(ctx, seeds), "",
        "## Scores, held-out prompts", "", *score_lines(seeds), "",
        "Means over seeds of each seed's mean; the keyword part is 1 for the keyword once as a "
        "word, ½ for it repeated or inside another word, 0 without it (\"once\" counts the 1s, "
        "\"at all\" the 1s and ½s); KL by Schulman's k3, ≥ 0 for every answer.", "",
        "![scores](scores.png)", "",
        "## Differences, paired within each seed", "", *difference_lines(seeds), "",
        "## The alignment tax, stage by stage", "", *tax_lines(seeds), "",
        "## Reward models", "", *rm_lines(seeds), "",
        "## Reward over-optimisation: best-of-n beside PPO (Gao et al.)", "", *bon,
        *gao_method(fits), *fit_table(fits), "", "![overoptimisation](overoptimisation.png)", "",
        "## Time per stage and seed", "", *timing_lines(seeds), "",
    ]
    path = ctx.root / "report.md"
    text = "\n".join(lines).encode()
    write_atomic(path, lambda f: f.write(text), "report")
    return path
