"""The third act's report: the labeller's score from base to SFT to PPO (and DPO), what it cost
(KL from SFT, loss on the held-out plays), reward over-optimisation against reward-model size,
and the same prompts answered by each model. Read back from the pipeline's folder."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ...files import read_json, write_atomic
from ...train.runlog import fmt_time, read_metrics
from ..common.figures import save  # also selects the file-only Agg backend
from ..common.task_scoring import bootstrap_ci, mean_ci, wilson
from .context import Context
from .bon import best_of_n, bon_curve
from .gao import GaoFit, fit_gao, overoptimised, pushed_out
from .ppo import ppo_name
from .task import LINE_CHARS, WEIGHTS

SAMPLES = 6  # held-out prompts shown side by side


def per_prompt(values) -> np.ndarray:
    """A results.json entry as (prompts, answers a prompt): rows of answers, or one answer a
    prompt in results from before eval_samples."""
    a = np.asarray(values, dtype=float)
    return a.reshape(len(a), -1)


def fmt_ci(values) -> str:
    """The mean and its 95% interval over prompts, each prompt's answers averaged first (they
    share the prompt, so they are not independent draws)."""
    means = per_prompt(values).mean(1)
    lo, hi = mean_ci(means)
    return f"{means.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def paired(a, b) -> str:
    """mean(a - b) over the same prompts with its paired bootstrap 95% interval."""
    d = per_prompt(a).mean(1) - per_prompt(b).mean(1)
    lo, hi = bootstrap_ci(d)
    return f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"


def share_ci(scores, bar: float = 0.9) -> str:
    """The share of answers scoring ≥ bar with Wilson's 95% interval over prompts, each prompt
    counting its share of answers: a prompt's answers are one unit, so a count of answers
    would be too narrow, and a share in [0, 1] varies no more than one 0/1 answer does, so this
    is conservative (and, unlike a normal interval, not zero-width at 0 of n)."""
    met = (per_prompt(scores) >= bar).mean(1)
    lo, hi = wilson(float(met.sum()), len(met))
    return f"{met.mean():.3f} [{lo:.3f}, {hi:.3f}]"


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


# Where the fits read d = √KL and the gold score, and the form of Gao et al. each follows:
# best-of-n on the held-out prompts, and PPO's sweep, read at its evaluations on held-out prompts
# (the same prompts and sampling seed each time) or at every iteration's rollouts (fresh
# training prompts).
SOURCES = {"best-of-n": "bon", "PPO, held-out evaluations": "rl", "PPO, rollouts": "rl"}
SWEEP_KEYS = {"PPO, held-out evaluations": ("sqrt_kl", "score"),
              "PPO, rollouts": ("kl", "true_score")}


def bon_data(ctx: Context) -> dict | None:
    """bon.json of the folder; None in folders from before best-of-n."""
    path = ctx.root / "bon.json"
    return read_json(path, keys=("n", "gold", "proxy")) if path.exists() else None


def sources(ctx: Context) -> dict[str, str]:
    """The SOURCES this folder has points for."""
    has_bon = (ctx.root / "bon.json").exists()
    return {k: form for k, form in SOURCES.items() if has_bon or k != "best-of-n"}


def gao_points(ctx: Context, size: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(d = √KL, gold score) of one source against the reward model of size."""
    if source == "best-of-n":
        d, gold = bon_curve(bon_data(ctx), size)
        return d, gold.mean(0)
    kl_key, gold_key = SWEEP_KEYS[source]
    rows = [r for r in read_metrics(ctx.stage(ppo_name(size, "sweep"))) if gold_key in r]
    # max(·, 0): metrics written before k3 hold the plain log-ratio's KL, which can be below 0
    d = [r[kl_key] if kl_key == "sqrt_kl" else np.sqrt(max(r[kl_key], 0.0)) for r in rows]
    return np.asarray(d, dtype=float), np.array([r[gold_key] for r in rows], dtype=float)


def fit_or_none(d: np.ndarray, gold: np.ndarray, form: str) -> GaoFit | None:
    """Gao's form fitted to the points; None when they are too few to fit."""
    try:
        return fit_gao(d, gold, form)
    except ValueError:
        return None


Fits = dict[str, dict[str, GaoFit | None]]  # source -> reward-model size -> fit


def gao_fits(ctx: Context) -> Fits:
    """Gao et al.'s form fitted to each source's points, per reward model."""
    return {source: {size: fit_or_none(*gao_points(ctx, size, source), form)
                     for size in ctx.cfg.sizes()} for source, form in sources(ctx).items()}


def interval(value: float, ci: tuple[float, float]) -> str:
    return f"{value:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def peak_cell(fit: GaoFit) -> str:
    if fit.beta <= 0:
        return "none (β ≤ 0: no maximum)"
    if not np.isfinite(fit.peak_ci).all():
        return f"{fit.peak:.2f}, unbounded (β not told from 0)"
    return f"{fit.peak:.2f} [{fit.peak_ci[0]:.2f}, {fit.peak_ci[1]:.2f}]"


def fit_table(fits: Fits) -> list[str]:
    """The fits' table, then whether larger reward models push the peak out, per source, read
    from the peaks' intervals."""
    lines = ["| points | reward model | points fitted | α [95% CI] | β [95% CI] | gold peaks, "
             "then falls (β > 0) | peak √KL d* [95% CI] |", "|---|---|---|---|---|---|---|"]
    verdicts = []
    for source, by_size in fits.items():
        for size, fit in by_size.items():
            if fit is None:
                lines.append(f"| {source} | {size} | too few to fit | | | | |")
                continue
            n = f"{fit.n}" if fit.seeds == 1 else f"{fit.n} ({fit.seeds} seeds)"
            lines.append(f"| {source} | {size} | {n} | {interval(fit.alpha, fit.alpha_ci)} | "
                         f"{interval(fit.beta, fit.beta_ci)} | {overoptimised(fit)} | "
                         f"{peak_cell(fit)} |")
        if all(by_size.values()):
            verdicts.append(f"**{pushed_out(list(by_size.values()))}** from {source}")
    return lines + ["", "Larger reward models push the peak out (Gao et al.): "
                    + ("; ".join(verdicts) or "undetermined (too few points)") + "."]


def gao_lines(ctx: Context) -> list[str]:
    """The fits' table, the verdicts, and the reward models' accuracy beside them."""
    accuracy = [ctx.finished(f"rm-{size}")["test_accuracy"] for size in ctx.cfg.sizes()]
    return fit_table(gao_fits(ctx)) + [
        "", f"Reward models {', '.join(ctx.cfg.sizes())}, held-out pairwise accuracy "
        f"{', '.join(f'{a:.3f}' for a in accuracy)}: Gao et al.'s grow more accurate with size; "
        "one seed of these need not."]


FORMS_TEXT = ("best-of-n's gold(d) = gold(0) + d·(α − β·d), the peak at d* = α/(2β), and RL's "
              "gold(d) = gold(0) + d·(α − β·log d), the peak at d* = exp(α/β − 1), d = √KL")


def bon_section(ctx: Context) -> list[str]:
    """What best-of-n is and its table; nothing in folders from before it."""
    data = bon_data(ctx)
    if data is None:
        return []
    return [f"Best-of-n beside PPO: the SFT policy answers each of the {len(data['gold'])} "
            f"held-out prompts {len(data['gold'][0])} times; best of n keeps the answer the "
            "reward model scores highest, and the labeller grades it (every n is estimated "
            "without bias from the same answers, over all their n-subsets). Its KL from SFT "
            "is log n − (n − 1)/n (Gao et al.).", "", *bon_lines(ctx, data), ""]


def bon_lines(ctx: Context, data: dict) -> list[str]:
    """Best-of-n's gold score at each n against each reward model, mean over the prompts with
    its 95% interval, and the proxy's score of the answers picked at the largest n."""
    sizes = ctx.cfg.sizes()
    gold = {size: bon_curve(data, size) for size in sizes}
    d = gold[sizes[0]][0]
    lines = ["| n | √KL d | " + " | ".join(f"gold, best of n by RM {s} [95% CI]" for s in sizes)
             + " |", "|---|---|" + "---|" * len(sizes)]
    for j, n in enumerate(data["n"]):
        cells = [fmt_ci(gold[s][1][:, j]) for s in sizes]
        lines.append(f"| {n} | {d[j]:.2f} | " + " | ".join(cells) + " |")
    top, proxy = data["n"][-1], {s: np.asarray(data["proxy"][s]) for s in sizes}
    picked = [best_of_n(proxy[s], proxy[s], top).mean() for s in sizes]
    return lines + [f"| proxy at n = {top} (normalised) | | "
                    + " | ".join(f"{p:+.2f}" for p in picked) + " |"]


def plot_scores(results: dict, folder: Path) -> None:
    labels = list(results["models"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, label in enumerate(labels):
        s = per_prompt(results["models"][label]["score"]).mean(1)
        lo, hi = mean_ci(s)
        ax.errorbar(i, s.mean(), yerr=[[s.mean() - lo], [hi - s.mean()]], fmt="o", capsize=4)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("labeller score, held-out prompts")
    ax.set_title(f"mean and 95% interval over {len(results['prompts'])} held-out prompts")
    ax.grid(alpha=0.3)
    save(fig, folder, "scores")


FORM_CURVES = {"bon": "d(α − βd)", "rl": "d(α − β log d)"}


def gold_panel(ax, points: dict[str, tuple], fits: dict[str, GaoFit | None], title: str) -> None:
    """The gold score against d = √KL per reward model: the points (d, gold), with a shaded
    band where given as (d, gold, low, high), and the fitted form dashed."""
    for i, (size, series) in enumerate(points.items()):
        order = np.argsort(series[0])  # (a band is drawn along d)
        d, gold, *band = (np.asarray(x, dtype=float)[order] for x in series)
        ax.plot(d, gold, "o", ms=3, color=f"C{i}", label=f"RM {size}")
        if band:
            ax.fill_between(d, *band, color=f"C{i}", alpha=0.2, lw=0)
        if fits.get(size) is not None:
            grid = np.linspace(0, d.max(), 100)
            ax.plot(grid, fits[size].predict(grid), "--", lw=1, color=f"C{i}")
    form = next((f.form for f in fits.values() if f is not None), None)
    ax.set_title(title + (f"; dashed: Gao's {FORM_CURVES[form]}" if form else ""), fontsize=9)
    ax.set_ylabel("labeller score (the gold reward)")
    ax.set_xlabel("√KL(policy ‖ SFT), nats^½")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_overoptimisation(ctx: Context, folder: Path) -> None:
    """Best-of-n's gold score (where the folder has it), PPO's gold and proxy scores."""
    fits, sizes = gao_fits(ctx), ctx.cfg.sizes()
    has_bon = "best-of-n" in fits
    fig, axes = plt.subplots(1, 2 + has_bon, figsize=(5.5 * (2 + has_bon), 4))
    if has_bon:
        gold_panel(axes[0], {s: gao_points(ctx, s, "best-of-n") for s in sizes},
                   fits["best-of-n"], f"best-of-n, n = {ctx.cfg.bon_n}")
    gold, proxy = axes[-2:]
    ppo = curves(ctx)
    gold_panel(gold, {s: ([r["sqrt_kl"] for r in c], [r["score"] for r in c])
                      for s, c in ppo.items()}, fits["PPO, held-out evaluations"],
               f"PPO sweep (β = {ctx.cfg.sweep_beta:g}), held-out evaluations")
    for i, (size, curve) in enumerate(ppo.items()):
        proxy.plot([r["sqrt_kl"] for r in curve], [r["reward"] for r in curve], "o-", ms=3,
                   color=f"C{i}", label=f"RM {size}")
    proxy.set_ylabel("reward model's score (the proxy, normalised)")
    proxy.set_xlabel("√KL(policy ‖ SFT), nats^½")
    proxy.grid(alpha=0.3)
    proxy.legend(fontsize=8)
    fig.suptitle(f"Against reward models of {len(sizes)} sizes, policy {ctx.cfg.policy_size}, "
                 "held-out prompts")
    save(fig, folder, "overoptimisation")


# What results.json's "kl" is: files from before the k3 estimator carry no "kl_estimator".
KL_ESTIMATORS = {"k3": "Schulman's k3, ≥ 0 for every answer and unbiased",
                 "k1": "the log-ratio log π(y) − log π_SFT(y): unbiased, but an answer's can be "
                       "below 0 (files from before k3)"}


def score_table(results: dict) -> list[str]:
    lines = ["| model | labeller score, mean [95% CI] | share scoring ≥ 0.9 [95% CI] | "
             "keyword part, mean | keyword once, share | keyword at all, share | length part | "
             f"words part | variety part | RM {results['reward_model']} score, normalised mean | "
             "KL(π ‖ SFT), nats an answer | held-out loss |", "|---|---|---|---|---|---|---|---|"
             "---|---|---|---|"]
    for label, m in results["models"].items():
        keyword = np.asarray(m["keyword"])
        cells = [fmt_ci(m["score"]), share_ci(m["score"]),
                 f"{keyword.mean():.2f}", f"{np.mean(keyword == 1):.2f}",
                 f"{np.mean(keyword > 0):.2f}"]
        cells += [f"{np.mean(m[p]):.2f}" for p in ("length", "words", "variety")]
        cells += [f"{np.mean(m['reward']):+.2f}", f"{np.mean(m['kl']):.2f}",
                  f"{m['held_out_loss']:.4f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    estimator = KL_ESTIMATORS[results.get("kl_estimator", "k1")]
    answers = per_prompt(next(iter(results["models"].values()))["score"]).shape[1]
    each = "" if answers == 1 else (f", each prompt's {answers} answers averaged first (a "
                                    "prompt's share counting as its successes in Wilson's)")
    return lines + ["", f"Intervals over the {len(results['prompts'])} prompts{each}: the normal "
                    "approximation for the mean score, Wilson's for the share. The keyword part "
                    "is 1 for the keyword once as a word, ½ for it repeated or inside another "
                    "word, 0 without it; \"once\" counts the 1s, \"at all\" the 1s and ½s. KL: "
                    f"the mean over answers of {estimator}."]


def tax_steps(ctx: Context) -> list[tuple[str, str, str]]:
    """(stage, model before, model after) of each stage whose held-out loss rise is its tax."""
    largest = ctx.cfg.sizes()[-1]
    ppo = f"PPO (RM {largest})"
    return [("SFT: base → SFT", "base", "SFT"), (f"PPO: SFT → {ppo}", "SFT", ppo),
            ("DPO: SFT → DPO", "SFT", "DPO"),
            (f"ptx: {ppo} → PPO-ptx", ppo, f"PPO-ptx (RM {largest})")]


def tax_lines(ctx: Context, results: dict) -> list[str]:
    """The alignment tax, the rise in held-out loss, split into SFT's part and PPO's."""
    m = results["models"]
    total = m[f"PPO (RM {ctx.cfg.sizes()[-1]})"]["held_out_loss"] - m["base"]["held_out_loss"]
    lines = ["| stage | held-out loss before | after | rise (the stage's tax) | share of base → PPO's "
             "rise |", "|---|---|---|---|---|"]
    for name, a, b in tax_steps(ctx):
        before, after = m[a]["held_out_loss"], m[b]["held_out_loss"]
        share = f"{(after - before) / total:.0%}" if name[:4] in ("SFT:", "PPO:") else "—"
        lines.append(f"| {name} | {before:.4f} | {after:.4f} | {after - before:+.4f} | {share} |")
    return lines + ["", f"Held-out loss: the mean on the same {ctx.cfg.val_batches * 16} windows "
                    "of the held-out plays for every model; one trained model each, so no "
                    "interval over training seeds."]


def difference_pairs(ctx: Context) -> list[tuple[str, str, str]]:
    """(name, model, model it is compared with) of every difference the reports read."""
    largest = ctx.cfg.sizes()[-1]
    ppo = f"PPO (RM {largest})"
    return [("SFT − base", "SFT", "base"), (f"{ppo} − SFT", ppo, "SFT"),
            ("DPO − SFT", "DPO", "SFT"), (f"DPO − {ppo}", "DPO", ppo),
            (f"PPO-ptx − {ppo}", f"PPO-ptx (RM {largest})", ppo),
            *[(f"PPO sweep (RM {s}) − SFT", f"PPO sweep (RM {s})", "SFT")
              for s in ctx.cfg.sizes()]]


def differences(ctx: Context, results: dict) -> list[str]:
    m = results["models"]
    lines = ["| difference | labeller score, paired [95% CI] | keyword, paired |",
             "|---|---|---|"]
    for name, a, b in difference_pairs(ctx):
        lines.append(f"| {name} | {paired(m[a]['score'], m[b]['score'])} | "
                     f"{paired(m[a]['keyword'], m[b]['keyword'])} |")
    return lines


def overoptimisation_lines(ctx: Context) -> list[str]:
    lines = ["| reward model | non-embedding params | held-out pairwise accuracy | highest "
             "evaluation at √KL | its score | score at √KL 2 / 4 | last score | fall from the "
             "highest | proxy at the end |", "|---|---|---|---|---|---|---|---|---|"]
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
        for label in labels:  # (the first answer, where the models answered several)
            m = results["models"][label]
            text = m["texts"][i] if isinstance(m["texts"][i], str) else m["texts"][i][0]
            text = text.rstrip("\n").replace("|", "\\|") or "(empty)"
            lines.append(f"| {label} | {text} | {per_prompt(m['score'])[i, 0]:.2f} |")
        lines.append("")
    return lines


def measured_on(results: dict) -> str:
    """The machine the evaluation ran on, as results.json recorded it (older files did not)."""
    return results.get("machine", "not recorded")


def write_report(ctx: Context, command: str = "") -> Path:
    results = read_json(ctx.root / "results.json")
    timings = read_json(ctx.root / "timings.json")
    plot_scores(results, ctx.root)
    plot_overoptimisation(ctx, ctx.root)
    cfg = ctx.cfg
    # (the evaluations along PPO answer each prompt once: the SD is of single answers)
    sft_scores = per_prompt(results["models"]["SFT"]["score"])
    sft_se = np.std(sft_scores, ddof=1) / np.sqrt(cfg.ppo_eval_prompts)
    fine_tuning = sum(t for stage, t in timings.items() if not stage.startswith("base-"))
    lines = [
        f"# The third act: SFT, reward models, PPO and DPO ({ctx.name} preset)", "",
        f"Command: `{command or f'tinygpt instruct --preset={ctx.name}'}`. "
        f"Machine: {measured_on(results)}.",
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
        f"held-out plays. Every answer is sampled at temperature 1, "
        f"{sft_scores.shape[1]} per prompt, one training seed.", "",
        "## Scores, held-out prompts", "", *score_table(results), "",
        "![scores](scores.png)", "",
        "Paired differences (the same prompts; bootstrap over prompts):", "",
        *differences(ctx, results), "",
        "## The alignment tax, stage by stage", "", *tax_lines(ctx, results), "",
        "## Reward over-optimisation against reward-model size", "",
        f"The sweep: PPO ({cfg.ppo_iters} iterations of {cfg.ppo_batch} rollouts, β = "
        f"{cfg.sweep_beta:g}, lr {cfg.sweep_lr:g}; the main run uses β = {cfg.kl_beta:g}, lr "
        f"{cfg.ppo_lr:g}) against each reward model; every {cfg.ppo_eval_every} iterations the "
        f"same {cfg.ppo_eval_prompts} held-out prompts are answered (one seed) and scored by the "
        "labeller (the true reward) and by the reward model being optimised (the proxy). The "
        f"standard error of a mean over {cfg.ppo_eval_prompts} prompts, from the SD of SFT's "
        f"scores above: {sft_se:.3f}.", "",
        *overoptimisation_lines(ctx), "",
        *bon_section(ctx),
        f"Gao et al.'s forms fitted by ordinary least squares (model/studies/instruct/gao.py), "
        f"{FORMS_TEXT}; 95% intervals from the OLS standard errors with a t quantile on n − 3 "
        "degrees of freedom, the peak's by Fieller's method. Each verdict reads an interval: "
        "holds when it excludes the other answer, undetermined when it spans it. The held-out "
        "evaluations reuse the same prompts and seed, and best-of-n's points the same answers, "
        "so their errors are not independent; the rollouts are fresh training prompts at each "
        "iteration. PPO's KL as in the table above: "
        f"{KL_ESTIMATORS[results.get('kl_estimator', 'k1')].split(':')[0]}.", "",
        *gao_lines(ctx), "",
        "![overoptimisation](overoptimisation.png)", "",
        "## Samples", "", *samples(results),
        "## Time per stage", "", "| stage | wall |", "|---|---|",
        *[f"| {stage} | {fmt_time(t)} |" for stage, t in timings.items()], "",
    ]
    path = ctx.root / "report.md"
    text = "\n".join(lines).encode()
    write_atomic(path, lambda f: f.write(text), "report")
    return path
