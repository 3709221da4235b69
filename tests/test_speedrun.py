"""`tinygpt bench --speedrun` end to end on tiny recipes: two fresh processes, the second
stopped at the first whole-split evaluation that meets the first's final loss."""
import json
from pathlib import Path

import pytest

from model.cli import main
from model.train.runlog import read_metrics


def test_the_speedrun_stops_at_the_baseline_loss_and_writes_its_result(corpus, capfd):
    tiny = (f'dataset = "{corpus}"\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\n'
            'batch_size = 4\nwarmup_iters = 2\nlr = 3e-3\nlog_interval = 100\n')
    Path("base.toml").write_text(tiny + "max_iters = 10\neval_interval = 10\n")
    # the same model trained on a longer schedule: at step 10 its rate is still high
    Path("fast.toml").write_text(tiny + 'dtype = "float32"\nmax_iters = 40\neval_interval = 5\n')
    assert main(["bench", "--speedrun", "--baseline=base.toml", "--recipe=fast.toml",
                 "--out=sr", "--threads=1"]) == 0
    result = json.loads(Path("sr/result.json").read_text())
    base, fast = result["runs"]
    target = result["target_loss"]
    assert (base["steps"], base["val_loss"], base["ratio"]) == (10, target, 1.0)
    assert "--arch=gpt2 --dtype=float32 --compile=false" in base["command"]
    assert "--eval_batches=0" in fast["command"]  # every evaluation a whole-split one
    evals = [r for r in read_metrics("sr/speedrun") if "val_loss" in r]
    assert fast["reached"] and evals[-1]["step"] == fast["steps"] < 40
    assert evals[-1]["val_loss"] == fast["val_loss"] <= target
    assert all(r["val_loss"] > target for r in evals[:-1])  # the first that meets it
    assert fast["ratio"] == pytest.approx(fast["wall_s"] / base["wall_s"])
    assert all(0 < run["loop_s"] < run["wall_s"] for run in (base, fast))
    assert result["compile_cache"] == "cold"
    text = capfd.readouterr().out
    assert "s to target" in text and "of the baseline's time" in text and "sr/result.json" in text


def test_a_missed_target_is_reported_as_such(capsys):
    from model.cli.speedrun import print_table

    run = dict(recipe="baseline", steps=2000, val_loss=1.8866, wall_s=53.0, loop_s=49.0,
               reached=True, ratio=1.0)
    missed = dict(run, recipe="speedrun", steps=1000, val_loss=1.9, wall_s=30.0, loop_s=25.0,
                  reached=False, ratio=None)
    print_table(dict(machine="here", compile_cache="cold", target_loss=1.8866, goal_ratio=0.25,
                     runs=[run, missed]))
    rows = capsys.readouterr().out.splitlines()
    assert rows[-2].split() == ["speedrun", "1000", "1.9000", "not", "reached", "5.0", "-"]
    assert rows[-1].startswith("  speedrun: missed the target in its 1000 steps")


@pytest.mark.parametrize("ratio, verdict", [(0.2542, "0.254 of the baseline's time, 3.93x as fast "
                                             "(goal: 0.25 or less: missed)"),
                                            (0.25, "(goal: 0.25 or less: met)")])
def test_the_goal_is_judged_unrounded(capsys, ratio, verdict):
    from model.cli.speedrun import print_table

    run = dict(recipe="baseline", steps=2000, val_loss=1.8866, wall_s=50.0, loop_s=47.0,
               reached=True, ratio=1.0)
    fast = dict(run, recipe="speedrun", steps=130, wall_s=50.0 * ratio, ratio=ratio)
    print_table(dict(machine="here", compile_cache="cold", target_loss=1.8866, goal_ratio=0.25,
                     runs=[run, fast]))
    assert verdict in capsys.readouterr().out.splitlines()[-1]
