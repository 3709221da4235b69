"""The study's figures (matplotlib, saved as PNG and SVG side by side)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..common.figures import save
from .fit import PUBLISHED_ALLOCATION, ChinchillaFit, PowerLawFit

BASELINE_STYLE = {"unigram": ":", "bigram": "--", "trigram": "-."}


def draw_baselines(ax, baselines: dict[str, float], unit: str) -> None:
    for name, value in baselines.items():
        ax.axhline(value, color="grey", lw=1, ls=BASELINE_STYLE.get(name, ":"))
        ax.annotate(f"{name} {value:.2f}", (1.0, value), xycoords=("axes fraction", "data"),
                    xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=8,
                    color="grey")


def loss_vs_n(folder: Path, N, L, fit: PowerLawFit, line: tuple[float, float],
              baselines: dict[str, float], unit: str, held_out=None,
              seeds: list[tuple[float, float]] = ()) -> list[Path]:
    """Final val loss against non-embedding parameters, the fit with its 95% band: each size's
    mean over seeds and, where a size has several, each seed's run (N, L) as well."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    grid = np.geomspace(min(N) / 1.5, max(N) * 1.5, 200)
    if len(fit.boot):
        lo, hi = fit.band(grid)
        ax.fill_between(grid, lo, hi, color="C0", alpha=0.2, lw=0, label="95% bootstrap band")
    ax.plot(grid, fit.predict(grid), "C0",
            label=f"L = {fit.E:.2f} + {fit.A:.3g}·N^-{fit.alpha:.3f}")
    slope, intercept = line
    ax.plot(grid, np.exp(intercept) * grid ** slope, "C2--", lw=1,
            label=f"floor-free log-log line (slope {slope:.3f})")
    several = len(seeds) > len(N)
    ax.plot(N, L, "ko", ms=5, label="mean over seeds (final val loss)" if several else
            "runs (final val loss)")
    if several:
        n_run, l_run = zip(*seeds)
        ax.plot(n_run, l_run, "o", mfc="none", mec="C1", ms=6, label="each seed's run")
    if held_out is not None:
        n_big, predicted = held_out
        ax.plot([n_big], [predicted], "rx", ms=9, mew=2,
                label="largest size predicted from the others")
    # Zoom on the runs: the bigram line is the reference worth seeing; the unigram
    # line would squash the curve into a sliver, so it is left out above the axis.
    top = max(max(L), baselines.get("bigram", max(L))) + 0.08
    draw_baselines(ax, {k: v for k, v in baselines.items() if v <= top}, unit)
    ax.set_ylim(min(L) - 0.08, top)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel(f"held-out loss ({unit})")
    ax.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 0.93))
    ax.grid(alpha=0.3, which="both")
    return save(fig, folder, "loss_vs_n")


def curves_vs_flops(folder: Path, curves: dict[str, tuple], frontier: tuple, frontier_fit,
                    baselines: dict[str, float], unit: str) -> list[Path]:
    """Each run's val loss against training FLOPs, with the compute-efficient frontier."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    cmap = plt.get_cmap("viridis")
    for i, (name, (C, L)) in enumerate(curves.items()):
        ax.plot(C, L, color=cmap(i / max(len(curves) - 1, 1)), lw=1.2, label=name)
    Cf, Lf = frontier
    ax.plot(Cf, Lf, "k:", lw=1, label="frontier (lowest loss at each FLOP count)")
    if frontier_fit is not None:
        grid = np.geomspace(Cf.min(), Cf.max(), 100)
        ax.plot(grid, frontier_fit.predict(grid), "r--", lw=1.2,
                label=f"L(C) = {frontier_fit.E:.2f} + {frontier_fit.A:.3g}·C^-{frontier_fit.alpha:.3f}")
    draw_baselines(ax, baselines, unit)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs so far: C = tokens seen × FLOPs a token (6N + attention + unembedding)")
    ax.set_ylabel(f"val loss ({unit})")
    top = max(baselines.get("unigram", 0), max(L[1] for _, L in curves.values() if len(L) > 1))
    ax.set_ylim(top=top + 0.1)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return save(fig, folder, "curves_vs_flops")


def residuals(folder: Path, N, L, fit: PowerLawFit) -> list[Path]:
    """How far each size sits from the fitted law, in percent."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    r = 100 * (np.asarray(L) / fit.predict(N) - 1)
    ax.axhline(0, color="grey", lw=1)
    ax.plot(N, r, "ko-", ms=5)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("loss / fit - 1 (%)")
    ax.grid(alpha=0.3, which="both")
    return save(fig, folder, "residuals")


def chinchilla(folder: Path, N, D, L, fit: ChinchillaFit, unit: str) -> list[Path]:
    """Approach 3 on its own runs: loss against D per size with the fitted L(N, D), and the
    compute-optimal size N_opt(C) it implies, with its band over the refits and the published
    slopes beside it (anchored at our curve's middle: their units differ, so only slopes
    compare)."""
    N, D, L = (np.asarray(x, dtype=float) for x in (N, D, L))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    sizes = np.unique(N)
    grid = np.geomspace(D.min() / 1.3, D.max() * 1.3, 200)
    for i, n in enumerate(sizes):
        color = plt.get_cmap("viridis")(i / max(len(sizes) - 1, 1))
        left.plot(D[N == n], L[N == n], "o", color=color, label=f"N = {n:,.0f}")
        left.plot(grid, fit.predict(n, grid), color=color, lw=1)
    left.set_xscale("log")
    left.set_xlabel("training tokens D (characters)")
    left.set_ylabel(f"final val loss ({unit})")
    left.set_title(f"approach 3: L = {fit.E:.2f} + {fit.A:.3g}/N^{fit.alpha:.3f} + "
                   f"{fit.B:.3g}/D^{fit.beta:.3f}", fontsize=9)
    left.legend(fontsize=8)
    C6 = 6 * N * D
    cgrid = np.geomspace(C6.min() / 2, C6.max() * 2, 100)
    if len(fit.boot):
        lo, hi = fit.optimal_n_band(cgrid)
        right.fill_between(cgrid, lo, hi, color="C0", alpha=0.2, lw=0, label="95% band (refits)")
    ours = fit.optimal_n(cgrid)
    right.plot(cgrid, ours, "C0", label=f"ours: N_opt ∝ C^{fit.a:.2f} [{fit.a_ci[0]:.2f}, "
               f"{fit.a_ci[1]:.2f}]")
    mid = len(cgrid) // 2
    for (name, (slope, _)), style in zip(list(PUBLISHED_ALLOCATION.items())[2:], ("--", ":")):
        right.plot(cgrid, ours[mid] * (cgrid / cgrid[mid]) ** slope, "k" + style, lw=1,
                   label=f"{name}: slope {slope:.2f}")
    right.plot(C6, N, ".", color="grey", label="our runs (C = 6ND, N)")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("compute C = 6·N·D (FLOPs)")
    right.set_ylabel("compute-optimal non-embedding parameters N_opt")
    right.set_title("published slopes through our curve's middle: slopes only (units differ)",
                    fontsize=9)
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    return save(fig, folder, "chinchilla")
