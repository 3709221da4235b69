"""The emergence study: the transition detector, the plan, and a smoke run."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from model.studies.emergence.transition import crossing, transition

ROOT = Path(__file__).resolve().parents[1]


def sigmoid_curve(steps: np.ndarray, at: float, width: float, top: float = 4.43,
                  bottom: float = 0.1) -> np.ndarray:
    return bottom + (top - bottom) / (1 + np.exp((steps - at) / width))


def test_crossing_interpolates_between_evaluations():
    assert crossing(np.array([0, 100, 200]), np.array([4.0, 3.0, 1.0]), 2.0) == 150
    assert crossing(np.array([0, 100]), np.array([4.0, 3.0]), 1.0) is None


def test_an_abrupt_fall_after_a_plateau_is_a_phase_change():
    steps = np.arange(0, 3001, 50)
    t = transition(steps, sigmoid_curve(steps, at=1500, width=60), start=100)
    assert t["phase_change"] and t["formed"]
    assert t["plateau"] == pytest.approx(4.43, abs=0.01) and t["floor"] < 0.15
    assert t["step"] == pytest.approx(1500, abs=30)  # half the plateau, near the midpoint
    # 10% -> 90% of a logistic takes 2·ln(9)·width steps
    assert t["fall_steps"] == pytest.approx(2 * math.log(9) * 60, rel=0.2)
    assert t["plateau_steps"] == pytest.approx(1500 - 100 - math.log(9) * 60, rel=0.05)


def test_a_slow_fall_from_the_start_is_no_phase_change():
    steps = np.arange(0, 3001, 50)
    t = transition(steps, 4.43 * np.exp(-steps / 400), start=100)
    assert t["formed"] and not t["phase_change"]


def test_a_flat_curve_never_transitions():
    steps = np.arange(0, 2001, 100)
    rng = np.random.default_rng(0)
    t = transition(steps, 4.43 + 0.01 * rng.standard_normal(len(steps)), start=100)
    assert t["step"] is None and not t["formed"] and not t["phase_change"]
    assert t["fall_steps"] is None and t["plateau_steps"] is None


def test_light_readings_between_evaluations_sharpen_the_transition():
    """Copy-probe readings every 25 steps between evaluations every 100 (other records mixed
    in, out of order): the transition and the fall's width are read from all of them, closer
    to the curve's own than from the evaluations alone."""
    from model.studies.emergence.transition import copy_transition, readings

    steps = np.arange(0, 3001, 25)
    rows = [{"step": int(s), "copy_loss": float(v)} | ({"val_loss": 1.5} if s % 100 == 0 else {})
            for s, v in zip(steps, sigmoid_curve(steps, at=1830, width=30))]
    rows = rows[::-1] + [{"step": 50, "train_loss": 2.0}]
    assert [r["step"] for r in readings(rows)] == list(steps)
    dense = copy_transition(readings(rows), start=100)
    coarse = copy_transition(readings([r for r in rows if "val_loss" in r]), start=100)
    width = 2 * math.log(9) * 30  # 10% -> 90% of a logistic
    assert dense["step"] == pytest.approx(1830, abs=3)
    assert dense["fall_steps"] == pytest.approx(width, rel=0.1)
    assert abs(coarse["fall_steps"] - width) > 3 * abs(dense["fall_steps"] - width)


def test_a_study_from_before_light_readings_reads_as_it_did():
    """A committed pilot's metrics (evaluations only): its readings are its evaluations and the
    report's transition is the one its study recorded."""
    from model.studies.emergence.emergence_report import load

    folder = ROOT / "docs/emergence/pilots/p22-syn-bf16"
    _, (run,) = load(folder)
    assert run["probes"] == run["evals"] and [e["step"] for e in run["evals"]][-2:] == [2900, 3000]
    saved = json.loads((folder / "2x64-s1338" / "summary.json").read_text())["transition"]
    assert run["transition"] == saved


def test_a_light_reading_is_the_copy_probe_and_prefix_matching_of_a_full_one(corpus):
    import torch

    from model.data.tokenizer import CharTokenizer
    from model.nn.config import named
    from model.nn.gpt import GPT
    from model.studies.common.task_scoring import Options
    from model.studies.emergence.probes import Probes

    text = (corpus / "work2.txt").read_text()
    tok = CharTokenizer.fit(text)
    torch.manual_seed(0)
    model = GPT(named("2x32", "modern", block_size=64, vocab_size=tok.vocab_size))
    probes = Probes(text, tok, fewshot_steps=set(), opts=Options(items=4), icl_windows=8)
    full, light = probes(model, 10), probes(model, 10, full=False)
    assert light == {k: full[k] for k in light}
    assert {"copy_loss", "prefix_matching"} <= set(light)
    assert set(full) - set(light) == {"text_first", "text_second", "text_copy_gain",
                                      "text_copy_gain_ci", "icl_score"}


def test_emergence_presets_load_and_name_their_data_shape():
    from model.studies.common.plan import read_plan
    from model.studies.emergence.emergence_plan import load_emergence_plan

    plan = load_emergence_plan(*read_plan("emergence-quick"))
    assert plan.shape == "50% synthetic copy sequences + 50% natural text (50% of windows with " \
                         "a planted repeat)"
    names = [r.name for r in plan.runs()]
    assert names == ["1x16-s1337", "2x16-s1337", "1x16-smear-s1337", "2x16-natural-s1337"]
    assert plan.fewshot_steps() == {40}
    cfg = plan.train_config(plan.runs()[2], Path("x"))
    assert cfg.smear_keys and cfg.synthetic == 0.5 and cfg.n_head == 1
    control = plan.train_config(plan.runs()[3], Path("x"))
    assert control.synthetic == 0 and control.repeat_spans == 0 and not control.smear_keys


def test_a_curriculum_is_named_and_kept_from_natural_controls():
    from model.studies.common.plan import read_plan
    from model.studies.emergence.emergence_plan import load_emergence_plan

    path, raw = read_plan("emergence-quick")
    plan = load_emergence_plan(path, {**raw, "synthetic_until": 20})
    assert plan.shape.startswith("synthetic copy sequences only for the first 20 steps, then 50%")
    runs = plan.runs()
    assert plan.train_config(runs[1], Path("x")).synthetic_until == 20
    assert plan.train_config(runs[3], Path("x")).synthetic_until == 0  # the natural control
    assert plan.fingerprint() != load_emergence_plan(path, raw).fingerprint()


def test_plans_from_before_the_new_fields_keep_their_fingerprint():
    """A study folder's plan.json holds the fingerprint it was trained under: a field added
    since, at its default, must not change it, or the folder would no longer resume."""
    from model.studies.common.plan import read_plan
    from model.studies.emergence.emergence_plan import load_emergence_plan

    folder = ROOT / "docs/emergence/pilots/p17-s50-lr1e3-8k"
    saved = json.loads((folder / "plan.json").read_text())
    assert "synthetic_until" not in saved and "probe_every" not in saved
    plan = load_emergence_plan(*read_plan(str(folder / "plan.toml")))
    assert plan.fingerprint() == saved["fingerprint"]


def test_extra_seeds_join_a_trained_study_and_keep_its_fingerprint():
    """More seeds for the model a claim rests on, added after the study trained: the committed
    text ladder's folder must still resume (same fingerprint) and train only the new runs."""
    from model.studies.common.plan import read_plan
    from model.studies.emergence.emergence_plan import load_emergence_plan

    saved = json.loads((ROOT / "docs/emergence/text/plan.json").read_text())
    path, raw = read_plan("emergence-text")
    plan = load_emergence_plan(path, {**raw, "extra_seeds": [[2, 64, 1341], [2, 64, 1340]]})
    assert plan.fingerprint() == saved["fingerprint"]
    names = [r.name for r in plan.runs()]
    assert names[-2:] == ["2x64-s1341", "2x64-s1340"] and len(names) == len(set(names)) == 32
    assert [plan.seed_rank(s) for s in (1337, 1339, 1341, 1340)] == [0, 2, 3, 4]
    cfg = plan.train_config(plan.runs()[-1], Path("x"))
    assert cfg.seed == 1340 and cfg.synthetic == 0.5 and cfg.n_layer == 2 and cfg.n_embd == 64


@pytest.mark.parametrize("line,message", [
    ("extra_seeds = [[3, 16, 5]]", "extra_seeds \\[3, 16, 5\\] must name a model of the grid"),
    ("extra_seeds = [[2, 16, 1337]]", "and a seed not in seeds \\[1337\\]"),
    ("extra_seeds = [[2, 16]]", "extra_seeds must be a list of \\[depth, width, seed\\] triples"),
    ("extra_seeds = [[2, 16, 5], [2, 16, 5]]", "extra_seeds names one run twice"),
    ("steps = 45", "steps \\(45\\) must be a multiple of eval_every"),
    ("widths = []", "widths must be a non-empty list of widths"),
    ("synthetic = 2", "synthetic must be a fraction from 0 to 1"),
    ("fewshot_k = [3]", "fewshot_k must be a list drawn from"),
    ("colour = 1", "unknown key 'colour'"),
    ("head_dim = 5", "bad model shape"),
    ("probe_every = 7", "probe_every \\(7\\) must divide eval_every \\(20\\)"),
    ("probe_every = -5", "probe_every must be a whole number of steps, 0 or more"),
    ("synthetic_until = 40", "synthetic_until \\(40\\) must be below steps \\(40\\)"),
    ("synthetic_until = -1", "synthetic_until must be a whole number of steps, 0 or more"),
    ("synthetic_until = 2.5", "synthetic_until must be a whole number of steps, 0 or more"),
])
def test_bad_emergence_plans_are_named(tmp_path, line, message):
    from model.errors import UserError
    from model.studies.common.plan import read_plan
    from model.studies.emergence.emergence_plan import load_emergence_plan

    text = (ROOT / "configs/study/emergence-quick.toml").read_text()
    key = line.split(" =")[0]
    text = "\n".join(l for l in text.splitlines() if not l.startswith(key + " ="))
    path = tmp_path / "p.toml"
    path.write_text(line + "\n" + text)
    with pytest.raises(UserError, match=message):
        load_emergence_plan(*read_plan(str(path)))


@pytest.mark.long
def test_quick_emergence_study_runs_resumes_and_reports(tmp_path, monkeypatch):
    from model.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "em"
    assert main(["emergence", "--preset=emergence-quick", f"--out={out}"]) == 0
    report = (out / "report.md").read_text()
    assert "Data shape: 50% synthetic copy sequences" in report
    for stem in ("phase_change", "transition_vs_width", "fewshot_vs_n", "survival", "em_seeds"):
        assert (out / f"{stem}.png").exists() and (out / f"{stem}.svg").exists()
        assert f"({stem}.png)\n\n*Data: 50% synthetic copy sequences" in report  # its caption
    assert "## Over seeds" in report and "pair_recall k=4 (chance 0.25)" in report
    assert "the copy probe and prefix matching every 10 steps" in report
    rows = [json.loads(l) for l in (out / "2x16-s1337" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "copy_loss" in r] == [0, 10, 20, 30, 40]  # probe_every
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == [0, 20, 40] and all("copy_loss" in r for r in evals)
    assert "fewshot" in evals[-1] and "pair_recall" in evals[-1]["fewshot"]
    recall = evals[-1]["fewshot"]["pair_recall"]["k"]
    assert recall["0"]["chance"] is None and 0.25 <= recall["4"]["chance"] <= 0.5  # about 1/k
    assert 0 <= recall["4"]["exact_from_chars"] <= 1  # beside exact_match in the compact table
    assert abs(evals[0]["copy_loss"] - math.log(84)) < 0.3  # an untrained model is at chance
    summary = json.loads((out / "2x16-s1337" / "summary.json").read_text())
    assert summary["transition"]["formed"] is False
    # run again: every run is finished, nothing retrains, the report is the same
    before = (out / "1x16-s1337" / "metrics.jsonl").read_text()
    assert main(["emergence", "--preset=emergence-quick", f"--out={out}"]) == 0
    assert (out / "1x16-s1337" / "metrics.jsonl").read_text() == before
    assert main(["report", str(out)]) == 0


def test_fewshot_points_split_by_the_copy_loss_at_each_evaluation():
    from model.studies.emergence.verdicts import fewshot, fewshot_points

    def run(scores):  # step -> (copy loss, pair_recall exact match at k=4)
        evals = [{"step": s, "copy_loss": c,
                  "fewshot": {"pair_recall": {"k": {"4": {"exact_match": v}}},
                              "addition": {"k": {"4": {"exact_match": 0.0}}}}}
                 for s, (c, v) in scores.items()]
        return {"transition": {"plateau": 4.4}, "evals": evals}

    late = run({1000: (4.3, 0.0), 2000: (3.0, 0.1), 3000: (0.3, 0.6)})  # 2000: mid-fall
    assert fewshot_points(late, "pair_recall", "4") == ([0.0], [0.6])
    never = run({1500: (4.4, 0.0), 3000: (4.2, 0.0)})
    assert fewshot_points(never, "pair_recall", "4") == ([0.0, 0.0], [])
    plan = {"fewshot_k": [0, 4]}
    assert "pair_recall at k=4 (0 in 3 evaluations" in fewshot([late, never], plan)
    lucky = run({3000: (4.4, 0.1)})  # a model without the circuit that scores breaks the claim
    assert "Emerged: none" in fewshot([late, never, lucky], plan)


@pytest.mark.parametrize("argv,message", [
    (["study", "--preset=emergence-quick"], "is an emergence plan: run it with tinygpt emergence"),
    (["emergence", "--preset=quick"], "is a scaling plan: run it with "
                                      "tinygpt study --preset=quick"),
])
def test_each_study_has_its_own_verb_and_a_plan_given_to_the_other_is_one_line(
        tmp_path, monkeypatch, capsys, argv, message):
    from model.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([*argv, f"--out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
