"""Means over training seeds with their intervals, for the seeded pipeline's report.

Each seed is a whole replicate: it retrains every stage and draws its own prompts (training and
held-out), so prompts are nested within seeds. A seed's value of a quantity (its mean over that
seed's prompts and their answers) differs from another seed's both by what training drew and by
which prompts were drawn, so the t interval of the seeds' mean, on seeds − 1 degrees of freedom,
counts both kinds of noise, and is exact when the seeds' values are Gaussian however the noise
splits between them (tests/test_instruct_seeds.py checks its coverage both ways). A two-level
bootstrap (seeds, then prompts within seeds) shrinks the seeds' part by (seeds − 1)/seeds,
has few distinct resamples of 3 seeds, and counts the prompts' part twice (the seeds' spread
already holds it): in a simulation of 3 seeds like tests/test_instruct_seeds.py's it covered
77% where training noise dominated and 97% where there was none.

Beside each interval: the SD of the seeds' values (between seeds) and the typical standard error of
one seed's mean over its prompts (within a seed), which say which noise the interval is made of.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SeedMean:
    values: np.ndarray     # one per seed: the seed's mean over its prompts
    within_se: float       # root mean square over seeds of the SE of a seed's mean over prompts

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def between_sd(self) -> float:
        """The SD of the seeds' values (ddof 1): training noise plus their prompts' noise."""
        return float(self.values.std(ddof=1))

    @property
    def ci(self) -> tuple[float, float]:
        """The 95% t interval of the mean over seeds, on seeds − 1 degrees of freedom."""
        half = stats.t.ppf(0.975, len(self.values) - 1) * self.between_sd / np.sqrt(
            len(self.values))
        return self.mean - half, self.mean + half


def seed_mean(per_prompt: list[np.ndarray]) -> SeedMean:
    """From each seed's per-prompt values (a prompt's answers already averaged): the seeds'
    means, and the within-seed standard error. A ValueError under 2 seeds (no spread to read)."""
    if len(per_prompt) < 2:
        raise ValueError(f"an interval over seeds needs 2 seeds or more; got {len(per_prompt)}")
    arrays = [np.asarray(p, dtype=float) for p in per_prompt]
    se2 = [a.var(ddof=1) / len(a) if len(a) > 1 else np.nan for a in arrays]
    return SeedMean(np.array([a.mean() for a in arrays]), float(np.sqrt(np.mean(se2))))
