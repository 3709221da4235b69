"""The emergence study over seeds: survival curves, the exact test, the slope of exact match
against N, and verdicts worded no stronger than their data, on inputs with known answers."""
import math

import numpy as np
import pytest

from model.studies.emergence import seeds, verdicts
from model.studies.emergence.transition import transition


def run(depth: int, width: int, seed: int, at: float | None, last: int = 300,
        smear: bool = False, natural: bool = False, em: float | None = None) -> dict:
    """A finished run whose copy loss transitioned at step `at` (None: never), evaluated at
    steps 0, 100, ..., last (no light readings between); with exact match `em` at pair_recall
    k=4 on its last evaluation."""
    evals = [{"step": s, "copy_loss": 4.4, "prefix_matching": 0.03, "text_copy_gain": 0.0}
             for s in range(0, last + 1, 100)]
    if em is not None:
        evals[-1]["fewshot"] = {"pair_recall": {"k": {"4": {"exact_match": em,
                                                             "exact_ci": [em, em]}}}}
    return {"n_layer": depth, "n_embd": width, "smear": smear, "natural": natural, "seed": seed,
            "n_nonemb": 12 * depth * width ** 2, "evals": evals, "probes": evals,
            "transition": {"step": at, "floor": 4.4 if at is None else 0.3, "plateau": 4.4,
                           "phase_change": False}}


def test_survival_counts_a_seed_that_never_transitioned_as_not_transitioned_until_its_end():
    runs = [run(2, 64, s, at) for s, at in ((1, 100.0), (2, 200.0), (3, None))]
    got = seeds.transitioned_by(runs, [50, 100, 150, 250, 300, 350])
    assert got[:5] == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert math.isnan(got[5])  # past seed 3's last evaluation its fate is unknown
    assert list(seeds.curve_steps(runs)) == [0, 100, 200, 300]
    # a seed that transitioned keeps counting past its own last evaluation
    assert seeds.transitioned_by([run(2, 64, 1, 100.0, last=200)], [400])[0] == 1


def test_runs_group_by_model_across_seeds():
    runs = [run(2, 64, 1, None), run(2, 64, 2, None), run(2, 64, 1, None, smear=True),
            run(2, 64, 1, None, natural=True), run(1, 64, 1, None)]
    assert [len(v) for v in seeds.by_model(runs).values()] == [2, 1, 1, 1]
    assert len(seeds.plain(runs)) == 3


def test_fisher_exact_test_of_the_depth_threshold_has_its_hand_computed_p():
    deep = [run(2, 16, 1, 100.0), run(2, 32, 1, 100.0)] + [run(d, 16, 1, None) for d in (2, 3, 3)]
    shallow = [run(1, w, 1, None) for w in (16, 32, 64)]
    test = seeds.depth_test(deep + shallow + [run(1, 16, 1, 100.0, smear=True)])
    assert test["deep"] == (2, 5) and test["shallow"] == (0, 3)
    # P(both transitions among the five deep runs) = C(5,2) / C(8,2) under the null
    assert test["p"] == pytest.approx(10 / 28)
    reversed_ = seeds.depth_test([run(2, 16, 1, None), run(1, 16, 1, 100.0)])
    assert reversed_["p"] == pytest.approx(1.0)  # one-sided: fewer deep transitions is no evidence
    assert seeds.depth_test(deep) is None
    line = verdicts.depth_threshold(deep + shallow)
    assert "**undetermined**" in line and "2/5" in line and "0/3" in line and "p = 0.36" in line


def test_slope_of_exact_match_against_n_over_seeds():
    n = [1e4, 1e5, 1e6]
    # 0.2 per decade, the seeds spread symmetrically about the line: the slope is exact
    points = [(x, 0.1 + 0.2 * i + d, (0.0, 1.0)) for i, x in enumerate(n) for d in (-0.02, 0, 0.02)]
    fit = seeds.em_slope([(x, e, (e - 0.01, e + 0.01)) for x, e, _ in points])
    assert fit["slope"] == pytest.approx(0.2) and fit["points"] == 9
    assert 0 < fit["ci"][0] < 0.2 < fit["ci"][1] and fit["verdict"] == "grows"
    noisy = [(x, e + (0.5 if i % 2 else -0.5) * (x == 1e6), ci) for i, (x, e, ci) in
             enumerate(points)]
    assert seeds.em_slope(noisy)["verdict"] == "undetermined"  # the interval spans 0
    assert seeds.em_slope(points[:6]) is None  # two sizes: nothing left to judge the line by


def test_a_share_clears_a_bar_only_when_its_interval_does():
    assert seeds.clears(0, 0, 0.8) == "not measured"
    assert seeds.clears(3, 3, 0.8) == "undetermined"  # Wilson 0.44-1.00 spans 0.8
    assert seeds.clears(20, 20, 0.8) == "holds"
    assert seeds.clears(1, 5, 0.8) == "does not hold"
    assert seeds.share(2, 3) == "2/3 runs (95% Wilson 0.21-0.94)"


def test_verdicts_with_no_runs_behind_them_say_not_measured():
    two = [run(2, 64, 1, None)]
    assert "**not measured**" in verdicts.stay_at_chance(two, 4.43)
    assert "**not measured**" in verdicts.phase_changes([run(1, 64, 1, None)])
    assert "**not measured**" in verdicts.transfer(two)
    assert "**not measured**" in verdicts.depth_threshold(two)
    assert "**not measured**" in verdicts.transition_rate([], 300)
    assert "**not measured**" in verdicts.em_vs_n(two, {"fewshot_tasks": ["pair_recall"]})


def test_verdicts_over_seeds_give_fractions_and_name_each_model_once():
    formed = {(16, 1), (32, 2)}  # (width, seed) of the smeared runs that formed the circuit
    runs = [run(1, w, s, 150.0 if (w, s) in formed else None, smear=True)
            for w in (16, 32) for s in (1, 2)]
    for r in runs:
        r["evals"][-1]["prefix_matching"] = 0.9 if r["transition"]["step"] else 0.03
    line = verdicts.smeared_keys(runs)[0]
    assert "**holds** in 2/4 runs" in line
    assert line.count("1x16 smeared") == 1 and line.count("1x32 smeared") == 1
    rate = verdicts.transition_rate([run(2, 64, s, 100.0 if s < 3 else None) for s in (1, 2, 3)],
                                    300)
    assert "**undetermined**" in rate  # 2/3: Wilson 0.21-0.94 spans the 80% bar
    assert "2/3 runs" in rate and "2x64 2/3" in rate


def test_em_vs_n_verdict_over_seeds_reports_the_slope_and_says_undetermined():
    runs = [run(2, w, s, None, em=e) for w, es in ((16, (0.0, 0.3)), (32, (0.1, 0.0)),
                                                   (64, (0.0, 0.2))) for s, e in enumerate(es)]
    line = verdicts.em_vs_n(runs, {"fewshot_tasks": ["pair_recall"]})
    assert "pair_recall" in line and "6 runs" in line and "**undetermined**" in line


def test_natural_control_prints_its_copy_loss_as_it_went():
    r = run(2, 64, 1, None, natural=True)
    for e, loss in zip(r["evals"], (4.47, 5.14, 9.46, 9.42)):
        e["copy_loss"] = loss
    r["val_loss"] = 1.55
    line = verdicts.natural_control([r])[0]
    assert "4.47 at step 0 → 9.42 at step 300 (min 4.47, max 9.46)" in line


def test_transition_reports_the_step_the_floor_is_reached_and_the_end_of_the_fall():
    steps = np.arange(0, 3001, 100)
    losses = np.where(steps < 1800, 4.4, np.maximum(0.3, 4.4 - (steps - 1700) * 0.02))
    losses[-1] = 0.25  # the floor, long after the fall
    t = transition(steps, losses, start=100)
    assert t["floor_step"] == 3000 and t["floor"] == pytest.approx(0.25)
    assert t["end_of_fall"] - t["start_of_fall"] == pytest.approx(t["fall_steps"])
    assert t["end_of_fall"] < 2000 < t["floor_step"]


def test_the_phase_change_line_labels_transition_fall_width_and_floor_step_apart():
    r = run(2, 64, 1, 1831.7, last=3000)
    r["transition"].update(start_of_fall=1716.3, end_of_fall=1988.1, fall_steps=271.8,
                           plateau_steps=1616.3, floor=0.27, floor_step=2900.0,
                           phase_change=True)
    r["evals"][-1]["prefix_matching"] = 0.87
    line = verdicts.phase_changes([r, run(2, 32, 1, None, last=3000)])
    assert "**holds** in 1/2 runs" in line
    assert ("2x64 (1/1 seeds): transition at step 1,832; 10→90% fall 272 steps wide "
            "(2 copy-probe readings inside it) after a plateau of 1,616 steps; floor 0.27 nats, "
            "first reached at step 2,900") in line


def test_transfer_to_text_is_judged_by_the_gains_interval():
    """A run whose gain clears 1 nat/char only at its point, not over its 95% interval, does not
    count; a run from before intervals were recorded is judged at its point and says so."""
    def run(gain, ci=None):
        last = {"text_copy_gain": gain, **({"text_copy_gain_ci": ci} if ci else {})}
        return {"transition": {"step": 1200}, "evals": [last]}

    clear = verdicts.transfer([run(1.8, [1.7, 1.9]), run(1.5, [1.2, 1.8])])
    assert "**holds**" in clear and "+1.80 [+1.70, +1.90]" in clear
    shaky = verdicts.transfer([run(1.8, [1.7, 1.9]), run(1.1, [0.8, 1.4])])
    assert "**does not hold**" in shaky and "1/2" in shaky
    old = verdicts.transfer([run(1.3)])
    assert "**holds**" in old and "+1.30 (no interval)" in old


def test_learning_a_rule_from_demonstrations_is_judged_against_the_shuffled_control():
    """Demonstrations that make the answer likelier than no demonstrations but no likelier than
    the same demonstrations shuffled teach the format, not the rule: the verdict reads the gain
    over the shuffled control, in every seed of a model."""
    plan = {"fewshot_tasks": ["uppercase", "pair_recall"], "fewshot_k": [0, 4]}

    def seeded(seed: int, over_shuffled: float) -> dict:
        r = run(2, 64, seed, None)
        cell = lambda ll: {"loglik_per_char": ll, "exact_match": 0.0, "exact_ci": [0, 0.04]}
        r["evals"][-1]["fewshot"] = {"uppercase": {
            "k": {"0": cell(-3.0), "4": cell(-2.0)}, "shuffled": {"4": cell(-2.0 - over_shuffled)}}}
        return r

    assert verdicts.rule_gains(seeded(1, 0.3), "uppercase") == pytest.approx((0.3, 1.0))
    format_only = verdicts.rule_learning([seeded(1, 0.0), seeded(2, 0.02)], plan)
    assert "**does not hold**" in format_only and "+0.010" in format_only
    assert "**holds**" in verdicts.rule_learning([seeded(1, 0.3), seeded(2, 0.2)], plan)
    one_seed = verdicts.rule_learning([seeded(1, 0.3), seeded(2, 0.0)], plan)
    assert "**undetermined**" in one_seed and "2x64 uppercase (1/2 seeds)" in one_seed
    assert "**not measured**" in verdicts.rule_learning([run(2, 64, 1, None)], plan)
