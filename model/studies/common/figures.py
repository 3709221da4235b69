"""Figures: the file-only matplotlib backend and the one way a figure is saved (PNG and SVG
side by side), shared by the scaling, few-shot and emergence reports."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none assumed
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, folder: Path, stem: str) -> list[Path]:
    paths = [folder / f"{stem}.{ext}" for ext in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return paths
