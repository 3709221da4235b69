"""The instruct pipeline over training seeds: the interval over seeds on synthetic scores with a
known mean (it covers at its nominal rate whether the seeds or the prompts carry the noise), and
the quick preset at two seeds end to end: the folder per seed, resuming, the pooled report."""
import json

import numpy as np
import pytest

from model.cli import main
from model.studies.instruct.seed_stats import seed_mean

TRUE_MEAN = 0.6


def synthetic_seeds(rng, seeds: int, seed_sd: float, prompt_sd: float, prompts: int = 64,
                    answers: int = 4) -> list[np.ndarray]:
    """Per-prompt means of a nested design: each seed shifts every score by its own effect,
    draws its own prompts (each with its own effect) and answers each prompt several times."""
    out = []
    for _ in range(seeds):
        shift = TRUE_MEAN + seed_sd * rng.standard_normal()
        prompt = prompt_sd * rng.standard_normal(prompts)
        noise = 0.1 * rng.standard_normal((prompts, answers))
        out.append((shift + prompt[:, None] + noise).mean(1))
    return out


@pytest.mark.parametrize("seed_sd, prompt_sd", [(0.05, 0.05), (0.0, 0.2)])
def test_the_interval_over_three_seeds_covers_at_its_nominal_rate(seed_sd, prompt_sd):
    """Three seeds: whether training noise dominates (a seed's effect SD 0.05 against its
    mean's prompt SE ~0.007) or there is none (prompts only), about 95% of intervals hold the
    true mean, and the between/within split reads which it was."""
    rng = np.random.default_rng(0)
    draws = [seed_mean(synthetic_seeds(rng, 3, seed_sd, prompt_sd)) for _ in range(2000)]
    coverage = np.mean([m.ci[0] <= TRUE_MEAN <= m.ci[1] for m in draws])
    assert 0.935 <= coverage <= 0.965, coverage
    between = np.median([m.between_sd for m in draws])
    within = np.median([m.within_se for m in draws])
    if seed_sd:
        assert between > 3 * within  # the seeds' spread is mostly training noise
    else:
        assert between == pytest.approx(within, rel=0.3)  # prompts only: SD ≈ SE


def test_a_mean_over_seeds_by_hand():
    m = seed_mean([np.array([0.5, 0.7]), np.array([0.6, 0.6]), np.array([0.8, 0.8])])
    assert m.values.tolist() == pytest.approx([0.6, 0.6, 0.8]) and m.mean == pytest.approx(2 / 3)
    half = 4.302653 * np.std([0.6, 0.6, 0.8], ddof=1) / np.sqrt(3)  # t(0.975, 2 df)
    assert m.ci == pytest.approx((2 / 3 - half, 2 / 3 + half), rel=1e-6)
    assert m.within_se == pytest.approx(np.sqrt(0.01 / 3))  # only the first seed's varies
    with pytest.raises(ValueError, match="2 seeds or more"):
        seed_mean([np.array([0.5])])
