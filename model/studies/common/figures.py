"""Figures: the file-only matplotlib backend and the one way a figure is saved (PNG and SVG
side by side), shared by the scaling, few-shot and emergence reports."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none assumed
import matplotlib.pyplot as plt  # noqa: E402

from ...files import write_atomic  # noqa: E402


def save(fig, folder: Path, stem: str) -> list[Path]:
    """The figure as folder/stem.png and .svg, each written atomically: a full disk leaves the
    previous figure (or none), never a torn or empty one, and says so in one line."""
    paths = [folder / f"{stem}.{ext}" for ext in ("png", "svg")]
    try:
        for path in paths:
            write_atomic(path, lambda f: _savefig(fig, f, path.suffix[1:]),
                         "figure", "run the command again")
    finally:
        plt.close(fig)
    return paths


def _savefig(fig, f, fmt: str) -> None:
    # An SVG carries the time it was drawn and element ids salted at random: both fixed, so
    # that `tinygpt report` redraws a committed figure byte for byte (a PNG has neither)
    extra = {"metadata": {"Date": None}} if fmt == "svg" else {}
    with plt.rc_context({"svg.hashsalt": "tinygpt"}):
        fig.savefig(f, format=fmt, dpi=130, bbox_inches="tight", **extra)
