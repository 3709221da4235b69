"""Figures of the few-shot study (PNG and SVG side by side, via the study's save())."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..common.figures import save  # also selects the file-only Agg backend
from ..common.tasks import KS, TASKS
from .analysis import finals, gain_k, tracks

LABELS = {"exact_match": "exact match", "loglik_per_char": "log-likelihood per char (nats)"}
CI_KEY = {"exact_match": "exact_ci", "loglik_per_char": "loglik_ci"}


def task_grid(n: int):
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False,
                             layout="constrained")  # keeps supxlabel clear of the tick labels
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def title(ax, name: str) -> None:
    ax.set_title(name + (" (control)" if TASKS[name].control else ""), fontsize=10)


def vs_k(models: list[dict], names: list[str], metric: str, folder: Path) -> list[Path]:
    """GPT-3 Fig. 1.2: the metric against k, one line per model (colour by N); dashed: the
    shuffled-demonstration control."""
    fig, axes = task_grid(len(names))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(models)))
    for ax, name in zip(axes, names):
        for m, colour in zip(models, colours):
            for part, style in (("k", "-o"), ("shuffled", ":")):
                r = m["tasks"][name][part]
                ks = sorted(int(k) for k in r)
                ax.plot(ks, [r[str(k)][metric] for k in ks], style, color=colour, ms=3,
                        label=f"{m['n_nonemb']:,}" if part == "k" else None)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(KS, [str(k) for k in KS])
        title(ax, name)
    axes[0].set_ylabel(LABELS[metric])
    axes[0].legend(title="N (dotted: shuffled)", fontsize=7, title_fontsize=7)
    fig.supxlabel("demonstrations in context (k)")
    return save(fig, folder, f"fewshot_vs_k_{metric}")


def vs_scale(models: list[dict], names: list[str], metric: str, x: str, folder: Path) -> list[Path]:
    """The metric at k=0 and at the gain's k against N or val loss, with 95% intervals."""
    fig, axes = task_grid(len(names))
    xs = np.array([m[x] if m[x] is not None else np.nan for m in models], dtype=float)
    for ax, name in zip(axes, names):
        k_hi = gain_k(models, name)
        for k, colour in ((0, "C0"), (k_hi, "C1")):
            if k is None:
                continue
            rows = [m["tasks"][name]["k"][str(k)] for m in models]
            y = np.array([r[metric] for r in rows])
            err = np.abs(np.array([r[CI_KEY[metric]] for r in rows]).T - y)
            ax.errorbar(xs, y, yerr=err, fmt="-o", ms=3, color=colour, capsize=2, label=f"k={k}")
        if x == "n_nonemb":
            ax.set_xscale("log")
        title(ax, name)
    axes[0].set_ylabel(LABELS[metric])
    axes[0].legend(fontsize=7)
    fig.supxlabel("non-embedding parameters N" if x == "n_nonemb" else "validation loss (nats)")
    stem = "n" if x == "n_nonemb" else "val_loss"
    return save(fig, folder, f"fewshot_vs_{stem}_{metric}")


def instruments_vs_n(models: list[dict], folder: Path) -> list[Path]:
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    N = [m["n_nonemb"] for m in models]
    score = np.array([m["icl"]["score"] for m in models])
    err = np.abs(np.array([m["icl"]["ci"] for m in models]).T - score)
    a.errorbar(N, score, yerr=err, fmt="-o", ms=3, capsize=2)
    a.set(xscale="log", xlabel="N", ylabel="ICL score (nats; < 0 is in-context gain)")
    b.plot(N, [m["induction"]["best"] for m in models], "-o", ms=3, label="best head")
    b.axhline(models[0]["induction"]["chance"], color="grey", ls=":", label="chance")
    b.set(xscale="log", xlabel="N", ylabel="prefix-matching score")
    b.legend(fontsize=7)
    return save(fig, folder, "instruments_vs_n")


def loss_by_position(models: list[dict], folder: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(models)))
    for m, colour in zip(models, colours):
        curve = m["icl"]["loss_by_position"]
        ax.plot(np.arange(1, len(curve) + 1), curve, color=colour, lw=1, label=f"{m['n_nonemb']:,}")
    ax.set(xscale="log", xlabel="token position in context", ylabel="held-out loss (nats)")
    ax.legend(title="N", fontsize=7, title_fontsize=7)
    return save(fig, folder, "loss_by_position")


def icl_tracks(runs: dict[str, list[dict]], folder: Path) -> list[Path]:
    """ICL score, best prefix-matching score and copy gain against training step."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
    for run, ms in runs.items():
        steps = [m["step"] for m in ms]
        score = np.array([m["icl"]["score"] for m in ms])
        lo, hi = np.array([m["icl"]["ci"] for m in ms]).T
        axes[0].plot(steps, score, "-o", ms=3, label=run)
        axes[0].fill_between(steps, lo, hi, alpha=0.2, lw=0)
        axes[1].plot(steps, [m["induction"]["best"] for m in ms], "-o", ms=3)
        axes[2].plot(steps, [np.subtract(*m["induction"]["repeat_loss"]) for m in ms], "-o", ms=3)
    axes[1].axhline(ms[0]["induction"]["chance"], color="grey", ls=":")
    for ax, label in zip(axes, ("ICL score (nats)", "best prefix-matching score",
                                "copy gain: 1st − later repeat (nats)")):
        ax.set(xlabel="step", ylabel=label)
    axes[0].legend(fontsize=7)
    return save(fig, folder, "icl_tracks")


def write_figures(results: dict, folder: Path) -> list[Path]:
    models, names = finals(results["models"]), list(results["options"]["tasks"])
    paths = loss_by_position(models, folder) + instruments_vs_n(models, folder)
    for metric in LABELS if names else ():  # no tasks asked: instruments only
        paths += vs_k(models, names, metric, folder)
        paths += vs_scale(models, names, metric, "n_nonemb", folder)
        paths += vs_scale(models, names, metric, "val_loss", folder)
    runs = tracks(results["models"])
    return paths + (icl_tracks(runs, folder) if runs else [])
