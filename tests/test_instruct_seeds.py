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


@pytest.mark.long
def test_quick_pipeline_over_two_seeds_resumes_and_reports(tmp_path, capsys, monkeypatch):
    """Two seeds of the quick preset, each a whole pipeline in its own folder: cut short in the
    second seed's DPO, the pooled report refuses one seed; run again, the first seed and the
    second's finished stages are kept, and the pooled report reads both; `tinygpt report`
    redraws it as it was."""
    from model.studies.instruct import pipeline

    out, base = tmp_path / "seeded", tmp_path / "base"
    args = ["instruct", "--preset=quick", f"--out={out}", f"--base={base}", "--seeds=2",
            "--threads=1"]
    real_dpo = pipeline.run_dpo

    def crash_in_second_seed(ctx):
        if ctx.cfg.seed == 1338:
            raise KeyboardInterrupt
        return real_dpo(ctx)

    monkeypatch.setattr(pipeline, "run_dpo", crash_in_second_seed)
    assert main(args) == 130
    first, second = out / "seed-1337", out / "seed-1338"
    assert (first / "results.json").exists() and not (second / "results.json").exists()
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    assert "has 1 of 2 seeds finished; a report over seeds needs 2" in capsys.readouterr().err
    kept = {p: p.stat().st_mtime_ns for p in (first / "results.json",
                                             second / "sft-2x32" / "ckpt.pt")}

    monkeypatch.setattr(pipeline, "run_dpo", real_dpo)
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert json.loads((second / "instruct.json").read_text())["seed"] == 1338
    report = (out / "report.md").read_text()
    for part in ("# The third act over 2 training seeds", "| SFT − base | ",
                 "| SFT: base → SFT | ", "| best-of-n | 2x32 | 8 (2 seeds) |",
                 "| stage | seed 1337 | seed 1338 |", "[seed 1338](seed-1338/report.md)"):
        assert part in report, part
    assert (out / "overoptimisation.png").exists() and (second / "report.md").exists()
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == report


def test_a_stage_of_a_pipeline_over_seeds_is_one_line(capsys):
    assert main(["sft", "--preset=quick", "--seeds=3"]) == 2
    assert "add --seeds=1 --seed=S --out=out/instruct-quick/seed-S" in capsys.readouterr().err


def test_the_seeded_preset_is_the_laptop_one_at_three_seeds():
    """What its comment promises: the laptop settings (so its seed 1337 is `make instruct`'s
    run) at 3 seeds, 256 held-out prompts x 4 answers, 3 reward-model sizes, n up to 16."""
    from dataclasses import replace

    from model.studies.instruct.settings import load_instruct

    seeded, laptop = (load_instruct(name, {})[0] for name in ("laptop-seeds", "laptop"))
    assert seeded.seed_list() == [1337, 1338, 1339]
    assert (seeded.eval_prompts, seeded.eval_samples) == (256, 4)
    assert len(seeded.sizes()) == 3 and seeded.bon_ns() == [1, 2, 4, 8, 16]
    assert replace(seeded, seeds=1, description="") == replace(laptop, description="")


def test_the_laptop_pipeline_builds_on_the_4m_ladder_its_report_was_made_on():
    """docs/instruct was made on the 4M-token ladder's models; make study's ladder is 2M now, so
    the pipeline names the 4M plan and the folder `tinygpt study` gives that plan."""
    from model.studies.common.plan import load_plan
    from model.studies.instruct.settings import load_instruct

    cfg = load_instruct("laptop", {})[0]
    plan = load_plan(cfg.base_preset)
    assert plan.tokens == [4_000_000] and cfg.base == f"out/study-{plan.name}"
    assert all(size in plan.lr for size in cfg.sizes())
