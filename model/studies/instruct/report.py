"""The third act's report: the labeller's score from base to SFT to PPO (and DPO), what it cost
(KL from SFT, loss on the held-out plays), reward over-optimisation against reward-model size,
and the same prompts answered by each model. Read back from the pipeline's folder."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ...files import machine, read_json, write_atomic
from ...train.runlog import fmt_time, read_metrics
from ..common.figures import save  # also selects the file-only Agg backend
from ..common.scoring import bootstrap_ci, mean_ci, wilson
from .context import Context
from .ppo import ppo_name
from .task import LINE_CHARS, WEIGHTS

SAMPLES = 6  # held-out prompts shown side by side


def fmt_ci(values) -> str:
    lo, hi = mean_ci(np.asarray(values))
    return f"{np.mean(values):.3f} [{lo:.3f}, {hi:.3f}]"


def paired(a, b) -> str:
    """mean(a - b) over the same prompts with its paired bootstrap 95% interval."""
    d = np.asarray(a) - np.asarray(b)
    lo, hi = bootstrap_ci(d)
    return f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"


def curves(ctx: Context) -> dict[str, list[dict]]:
    """The evaluations along the sweep's PPO run against each reward model."""
    return {size: [r for r in read_metrics(ctx.stage(ppo_name(size, "sweep"))) if "sqrt_kl" in r]
            for size in ctx.cfg.sizes()}


def peak(curve: list[dict]) -> tuple[dict, float]:
    """The evaluation where the labeller's score peaks, and how far the last one fell from it."""
    best = max(curve, key=lambda r: r["score"])
    return best, best["score"] - curve[-1]["score"]


def score_at(curve: list[dict], sqrt_kl: float) -> float | None:
    """The true score where the run first reaches this √KL, interpolated between the two
    evaluations around it; None if it never gets there."""
    for before, after in zip(curve, curve[1:]):
        if after["sqrt_kl"] >= sqrt_kl > before["sqrt_kl"]:
            t = (sqrt_kl - before["sqrt_kl"]) / (after["sqrt_kl"] - before["sqrt_kl"])
            return before["score"] + t * (after["score"] - before["score"])
    return None


def verdict(ctx: Context) -> str:
    """Whether larger reward models push the true score's peak further out (Gao et al.)."""
    found = curves(ctx)
    peaks = [peak(curve)[0]["sqrt_kl"] for curve in found.values()]
    accuracy = [ctx.finished(f"rm-{size}")["test_accuracy"] for size in found]
    further = all(a < b for a, b in zip(peaks, peaks[1:]))
    return (f"Larger reward models push the peak further out: **{'yes' if further else 'no'}** "
            f"here (peaks at √KL {', '.join(f'{p:.2f}' for p in peaks)} for "
            f"{', '.join(found)}; held-out pairwise accuracy "
            f"{', '.join(f'{a:.3f}' for a in accuracy)}). Gao et al.'s reward models grow more "
            "accurate with size; one seed of these does not have to, and a peak read from "
            "evaluations 10 iterations apart on 64 prompts is coarse.")


def plot_scores(results: dict, folder: Path) -> None:
    labels = list(results["models"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, label in enumerate(labels):
        s = np.asarray(results["models"][label]["score"])
        lo, hi = mean_ci(s)
        ax.errorbar(i, s.mean(), yerr=[[s.mean() - lo], [hi - s.mean()]], fmt="o", capsize=4)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("labeller score, held-out prompts")
    ax.set_title(f"mean and 95% interval over {len(results['prompts'])} held-out prompts")
    ax.grid(alpha=0.3)
    save(fig, folder, "scores")


def plot_overoptimisation(ctx: Context, folder: Path) -> None:
    fig, (gold, proxy) = plt.subplots(1, 2, figsize=(10, 4))
    for size, curve in curves(ctx).items():
        x = [r["sqrt_kl"] for r in curve]
        n = ctx.finished(f"rm-{size}")["n_nonemb"]
        gold.plot(x, [r["score"] for r in curve], "o-", ms=3, label=f"RM {size} ({n / 1e3:.0f}k)")
        proxy.plot(x, [r["reward"] for r in curve], "o-", ms=3, label=f"RM {size}")
    gold.set_ylabel("labeller score (the true reward)")
    proxy.set_ylabel("reward model's score (the proxy, normalised)")
    for ax in (gold, proxy):
        ax.set_xlabel("√KL(policy ‖ SFT), nats^½")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"PPO (β = {ctx.cfg.sweep_beta:g}) against reward models of "
                 f"{len(ctx.cfg.sizes())} sizes, policy {ctx.cfg.policy_size}, held-out prompts")
    save(fig, folder, "overoptimisation")


def score_table(results: dict) -> list[str]:
    lines = ["| model | labeller score [95% CI] | score ≥ 0.9 [95% CI] | keyword | length | words "
             f"| variety | RM {results['reward_model']} score | KL from SFT (nats) | "
             "held-out loss |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, m in results["models"].items():
        met = int(np.sum(np.asarray(m["score"]) >= 0.9))
        lo, hi = wilson(met, len(m["score"]))
        cells = [fmt_ci(m["score"]), f"{met / len(m['score']):.3f} [{lo:.3f}, {hi:.3f}]"]
        cells += [f"{np.mean(m[p]):.2f}" for p in
                                        ("keyword", "length", "words", "variety")]
        cells += [f"{np.mean(m['reward']):+.2f}", f"{np.mean(m['kl']):.2f}",
                  f"{m['held_out_loss']:.4f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def differences(ctx: Context, results: dict) -> list[str]:
    m, largest = results["models"], ctx.cfg.sizes()[-1]
    ppo = f"PPO (RM {largest})"
    rows = [("SFT − base", "SFT", "base"), (f"{ppo} − SFT", ppo, "SFT"), ("DPO − SFT", "DPO", "SFT"),
            (f"PPO-ptx − {ppo}", f"PPO-ptx (RM {largest})", ppo)]
    rows += [(f"PPO sweep (RM {s}) − SFT", f"PPO sweep (RM {s})", "SFT") for s in ctx.cfg.sizes()]
    lines = ["| difference | labeller score, paired [95% CI] | keyword, paired |",
             "|---|---|---|"]
    for name, a, b in rows:
        lines.append(f"| {name} | {paired(m[a]['score'], m[b]['score'])} | "
                     f"{paired(m[a]['keyword'], m[b]['keyword'])} |")
    return lines


def overoptimisation_lines(ctx: Context) -> list[str]:
    lines = ["| reward model | non-embedding params | held-out pairwise accuracy | labeller score "
             "peaks at √KL | peak score | score at √KL 2 / 4 | last score | fall from peak | "
             "proxy at the end |", "|---|---|---|---|---|---|---|---|---|"]
    for size, curve in curves(ctx).items():
        rm = ctx.finished(f"rm-{size}")
        best, fall = peak(curve)
        at = " / ".join("—" if s is None else f"{s:.3f}" for s in
                        (score_at(curve, 2.0), score_at(curve, 4.0)))
        lines.append(f"| {size} | {rm['n_nonemb']:,} | {rm['test_accuracy']:.3f} | "
                     f"{best['sqrt_kl']:.2f} (step {best['step']}) | {best['score']:.3f} | {at} | "
                     f"{curve[-1]['score']:.3f} | {fall:.3f} | {curve[-1]['reward']:+.2f} |")
    return lines


def samples(results: dict) -> list[str]:
    labels = [l for l in results["models"] if l in ("base", "SFT", "DPO") or l.startswith("PPO ")]
    lines = []
    for i, p in enumerate(results["prompts"][:SAMPLES]):
        prompt = p["prompt"].strip().replace("\n", " ⏎ ")
        lines += [f"**Prompt {i + 1}** — `{prompt}` (the play's own line: "
                  f"*{p['demonstration']}*)", "", "| model | answer | score |", "|---|---|---|"]
        for label in labels:
            m = results["models"][label]
            text = m["texts"][i].rstrip("\n").replace("|", "\\|") or "(empty)"
            lines.append(f"| {label} | {text} | {m['score'][i]:.2f} |")
        lines.append("")
    return lines


def write_report(ctx: Context, command: str = "") -> Path:
    results = read_json(ctx.root / "results.json")
    timings = read_json(ctx.root / "timings.json")
    plot_scores(results, ctx.root)
    plot_overoptimisation(ctx, ctx.root)
    cfg = ctx.cfg
    fine_tuning = sum(t for stage, t in timings.items() if not stage.startswith("base-"))
    lines = [
        f"# The third act: SFT, reward models, PPO and DPO ({ctx.name} preset)", "",
        f"Command: `{command or f'tinygpt instruct --preset={ctx.name}'}`. Machine: {machine()}.",
        f"Policy {cfg.policy_size}, reward models {cfg.rm_sizes}; seed {cfg.seed}. "
        f"Pipeline from the trained base models: **{fmt_time(fine_tuning)}** "
        f"(per stage below; each time is that of the session that finished the stage).", "",
        "## The task and its labeller", "",
        "An instruction names a word and a speaker; the answer is one line ending in a newline. "
        "The labeller (model/studies/instruct/task.py) scores it from 0 to 1: "
        + ", ".join(f"{k} {w:g}" for k, w in WEIGHTS.items())
        + f" — keyword used once as a word (1; inside another word or repeated 0.5), a finished "
        f"line of {LINE_CHARS[0]}–{LINE_CHARS[1]} characters, the share of real words (words of "
        f"the training plays), distinct words over words. Prompts and demonstrations come from "
        f"the training plays; the {len(results['prompts'])} evaluation prompts from the "
        f"held-out plays. Every answer is sampled at temperature 1, one per prompt, one seed.", "",
        "## Scores, held-out prompts", "", *score_table(results), "",
        "![scores](scores.png)", "",
        "Paired differences (the same prompts; bootstrap over prompts):", "",
        *differences(ctx, results), "",
        "## Reward over-optimisation against reward-model size", "",
        f"The sweep: PPO ({cfg.ppo_iters} iterations of {cfg.ppo_batch} rollouts, β = "
        f"{cfg.sweep_beta:g}, lr {cfg.sweep_lr:g}; the main run uses β = {cfg.kl_beta:g}, lr "
        f"{cfg.ppo_lr:g}) against each reward model; every {cfg.ppo_eval_every} iterations the "
        f"same {cfg.ppo_eval_prompts} held-out prompts are answered (one seed) and scored by the "
        "labeller (the true reward) and by the reward model being optimised (the proxy). A mean "
        f"over {cfg.ppo_eval_prompts} prompts moves by about 0.03 from sampling alone.", "",
        *overoptimisation_lines(ctx), "", verdict(ctx), "",
        "![overoptimisation](overoptimisation.png)", "",
        "## Samples", "", *samples(results),
        "## Time per stage", "", "| stage | wall |", "|---|---|",
        *[f"| {stage} | {fmt_time(t)} |" for stage, t in timings.items()], "",
    ]
    path = ctx.root / "report.md"
    text = "\n".join(lines).encode()
    write_atomic(path, lambda f: f.write(text), "report")
    return path
