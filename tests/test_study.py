"""The scaling study: plans, the resumable runner (kill -9 included), the report."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from model.errors import UserError
from model.nn.gpt import flops_per_token, n_nonemb_formula
from model.studies.common.plan import config_hash, load_plan
from model.studies.scaling.ngram import ngram_loss

ROOT = Path(__file__).resolve().parents[1]


def test_presets_load_and_the_laptop_ladder_spans_two_decades():
    plan = load_plan("laptop")
    plan.vocab_size = 84
    sizes = [plan.model(s) for s in plan.lr]
    N = [n_nonemb_formula(m) for m in sizes]
    assert len(N) >= 7 and all(m.n_layer >= 2 for m in sizes)
    assert N[-1] / N[0] >= 100
    assert all(1.5 <= b / a <= 2.5 for a, b in zip(N, N[1:]))  # about 2x apart
    assert len({r.tokens for r in plan.runs()}) == 1           # one token budget for all
    for name in ("quick", "gpu"):
        load_plan(name)


def test_the_data_axis_preset_is_the_design_its_comment_states():
    """configs/study/data-axis.toml: >= 3 sizes x >= 3 FLOP budgets a factor >= 4 apart, each
    budget with >= 3 sizes for approach 2, plus a shared token budget for the L(N) section; the
    token table in its comment is what the plan trains."""
    from model.studies.common.plan import check_evaluations, read_plan

    plan = load_plan("data-axis")
    plan.vocab_size = 84  # the char vocabulary of the Shakespeare corpus
    check_evaluations(plan)
    assert list(plan.lr) == ["2x24", "2x32", "2x48", "3x56"]
    laptop = load_plan("laptop")
    assert all(plan.lr[s] == laptop.lr[s] for s in plan.lr)  # the laptop sweep's rates
    assert len(plan.flops) >= 3 and all(b / a >= 4 for a, b in zip(plan.flops, plan.flops[1:]))
    assert plan.tokens == [1_000_000] and len(plan.runs()) == 16
    # The comment's table: tokens (M) per size at each FLOP budget, then at 1M
    path, _ = read_plan("data-axis")
    table = {m[1]: [float(x) for x in m[2].split()] for m in
             re.finditer(r"^#\s+(\dx\d+)\s+([\d. ]+)$", path.read_text(), re.M)}
    assert set(table) == set(plan.lr)
    per_token = {s: flops_per_token(plan.model(s), n_nonemb_formula(plan.model(s)))
                 for s in plan.lr}
    for size, row in table.items():
        want = [int(c / per_token[size]) for c in plan.flops] + plan.tokens
        assert row == pytest.approx([t / 1e6 for t in want], abs=0.005)
        assert sorted(want) == plan.tokens_for(size)
    # analyse groups runs by their recorded FLOPs to 2 significant figures (a run trains whole
    # steps): each FLOP budget is one group of every size, and no 1M-token run joins one
    steps = plan.block_size * plan.batch_size
    groups = {}
    for spec in plan.runs():
        flops = spec.tokens // steps * steps * per_token[spec.size]
        groups.setdefault(float(f"{flops:.2g}"), []).append(spec.size)
    for c in plan.flops:
        assert groups.pop(c) == list(plan.lr)
    assert all(len(sizes) == 1 for sizes in groups.values())


def test_run_flops_follow_the_formula():
    from model.studies.common.runner import run_flops

    plan = load_plan("quick")
    plan.vocab_size = 84
    spec = plan.runs()[0]
    m = plan.model(spec.size)
    d, L, T, V = m.n_embd, m.n_layer, m.block_size, m.vocab_size
    assert run_flops(plan, spec) == spec.tokens * (6 * n_nonemb_formula(m) + 6 * L * T * d + 6 * d * V)
    assert flops_per_token(m, n_nonemb_formula(m)) > 6 * n_nonemb_formula(m)


def test_bad_plan_is_named(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('tokens = 1000\n[lr]\n"9x999" = 1e-3\n')
    with pytest.raises(UserError, match="unknown: \\['9x999'\\]"):
        load_plan(str(path))
    with pytest.raises(UserError, match="no study plan 'nope'"):
        load_plan("nope")


def test_a_plan_extends_another_and_says_only_what_differs(tmp_path):
    """laptop-seeds and laptop-4M are the laptop ladder with one key changed; a loop is named."""
    laptop, seeds, four = (load_plan(n) for n in ("laptop", "laptop-seeds", "laptop-4M"))
    assert seeds.seeds == [1337, 1338] and four.tokens == [4_000_000] != laptop.tokens
    assert seeds.lr == four.lr == laptop.lr and seeds.train == four.train == laptop.train
    base, child, loop = (tmp_path / f"{n}.toml" for n in ("base", "child", "loop"))
    base.write_text('tokens = 1000\n[train]\nbeta2 = 0.99\ncompile = true\n[lr]\n"2x24" = 1e-3\n')
    child.write_text(f'extends = "{base}"\n[train]\nbeta2 = 0.9\n')
    plan = load_plan(str(child))
    assert plan.name == "child" and plan.tokens == [1000]
    assert plan.train == {"beta2": 0.9, "compile": True}  # a table merged key by key
    loop.write_text(f'extends = "{loop}"\n')
    with pytest.raises(UserError, match="in a loop"):
        load_plan(str(loop))


def test_the_report_fits_only_the_runs_of_its_plan(tmp_path, capsys):
    """A folder that still holds the 4M ladder's runs when the 2M ladder trains into it: the
    report fits the plan's runs (any seed) and names the others it leaves out."""
    from model.studies.scaling.scaling_report import runs_of_plan

    plan = load_plan("laptop-seeds")
    plan.vocab_size = 84
    old = load_plan("laptop-4M").runs()
    for spec in plan.runs() + old:
        run = tmp_path / spec.name
        run.mkdir()
        (run / "summary.json").write_text(json.dumps(
            {"name": spec.name, "n_nonemb": 1, "tokens": spec.tokens, "seed": spec.seed,
             "steps": 2}))
        (run / "metrics.jsonl").write_text("")
    kept = runs_of_plan(tmp_path, plan)
    assert sorted(r["name"] for r in kept) == sorted(s.name for s in plan.runs())
    assert f"leaving out {len(old)} runs of another plan than 'laptop-seeds'" in capsys.readouterr().out


@pytest.mark.parametrize("line,message", [
    ('tokens = "many"', "tokens must be a list of token counts"),
    ("tokens = 0", "tokens must be a list of token counts"),
    ("evals = 0", "evals must be a whole number, at least 1"),
    ("seeds = 1", "seeds must be a list of whole numbers"),
    ('arch = "llama"', "arch must be one of gpt2, modern"),
    ("train = 5", "train must be a table"),
    ("[sweep]\nfactorz = [1]", "sweep must be a table of tokens"),
    ("[sweep]\nfactors = []", "sweep must be a table of tokens"),
    ('[lr]\n"2x24" = "fast"', "lr must be a table of sizes and positive learning rates"),
])
def test_plan_values_are_checked_before_any_training(tmp_path, line, message):
    path = tmp_path / "p.toml"
    base = {"tokens": "tokens = 1000", "evals": "evals = 5", "seeds": "seeds = [1]"}
    base.pop(line.split(" ")[0], None)
    lr = "" if "[lr]" in line else '[lr]\n"2x24" = 1e-3\n'
    path.write_text("\n".join(base.values()) + "\n" + line + "\n" + lr)
    with pytest.raises(UserError, match=re.escape(message)):
        load_plan(str(path))


def test_a_study_needs_three_sizes_before_it_trains(tmp_path):
    from model.studies.common.runner import run_study

    path = tmp_path / "p.toml"
    path.write_text('tokens = 1000\n[lr]\n"2x24" = 1e-3\n"2x32" = 1e-3\n')
    with pytest.raises(UserError, match="at least 3 sizes; plan 'p' has 2"):
        run_study(load_plan(str(path)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_report_on_a_damaged_plan_json(tmp_path):
    from model.studies.scaling.scaling_report import write_report

    (tmp_path / "plan.json").write_text('{"name": ')
    with pytest.raises(UserError, match="plan.json is damaged.*--preset"):
        write_report(tmp_path)


def test_ngram_baseline_on_a_known_sequence():
    # 0 1 0 1 ...: a bigram model knows the next symbol; add-1 smoothing over 2 symbols
    seq = np.array([0, 1] * 50, dtype=np.uint16)
    unigram = ngram_loss(seq, seq, 1, 2)
    bigram = ngram_loss(seq, seq, 2, 2)
    assert unigram == pytest.approx(np.log(2), abs=1e-3)
    assert bigram == pytest.approx(-np.log(50 / 51), abs=2e-3)


def short_quick_plan(folder: Path) -> Path:
    """The quick preset cut to its 4 smallest sizes at 120k tokens: what the kill test needs
    (runs side by side, checkpoints to resume from, a fit and its report) at 0.3 of its time."""
    text = (ROOT / "configs" / "study" / "quick.toml").read_text()
    assert "tokens = 300_000\n" in text and '"4x72" = ' in text
    lines = [line for line in text.replace("tokens = 300_000", "tokens = 120_000").splitlines()
             if not line.startswith('"4x72"')]
    path = folder / "short-quick.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def study(out, env):
    plan = short_quick_plan(out.parent)
    return subprocess.Popen([sys.executable, "-m", "model.cli", "study", f"--preset={plan}",
                             f"--out={out}", "--threads=1", "--jobs=2"], cwd=out.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def mid_run_checkpoint(out: Path) -> bool:
    """True once a run has finished and another logged an evaluation past step 0
    (the trainer writes the checkpoint before that log line)."""
    if not list(out.glob("*/summary.json")):
        return False
    for metrics in out.glob("*/metrics.jsonl"):
        if (metrics.parent / "summary.json").exists():
            continue
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line still being written
                continue
            if "val_loss" in row and row["step"] > 0:
                return True
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended; its parent just has not waited
        return f.read().split(") ")[-1][0] != "Z"


@pytest.mark.long
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; workers die with "
                    "their parent by prctl, which only Linux has")
def test_quick_study_survives_kill_9_of_its_parent_and_reports(tmp_path):
    """Two runs at a time, each its own process: kill -9 of the study alone (not its process
    group) must take the runs with it, and the next study resumes the broken run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "study"
    first = study(out, env)
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None and not mid_run_checkpoint(out):
        time.sleep(0.2)
    assert first.poll() is None, "the study ended before it could be killed:\n" + first.stdout.read()
    workers = [int(p.read_text()) for p in out.glob("*/train.lock") if p.read_text().strip()]
    workers = [w for w in workers if alive(w) and w != first.pid]
    assert workers, "no run of the study's own was running"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(map(alive, workers)):
        time.sleep(0.1)
    assert not any(map(alive, workers)), "a run outlived its study"
    finished = {p.parent.name for p in out.glob("*/summary.json")}
    assert finished, "the study was killed before any run finished"
    second = study(out, env)
    log, _ = second.communicate(timeout=600)
    assert second.returncode == 0, log
    assert all(f"{name}: finished earlier, skipped" in log for name in finished)
    starts = [line for p in out.glob("*/train.log") for line in p.read_text().splitlines()
              if line.startswith("tinygpt:")]
    assert any("starting at step 0/" not in line for line in starts), \
        "the interrupted run did not resume from its checkpoint"
    report = (out / "report.md").read_text()
    assert "## Findings" in report and "alpha" in report
    assert "| dtype |" in report  # the preset names float32:
    assert "Precision: float32 at every size (named by the config)." in report
    assert re.search(r"Training wall time, all runs: \d+:\d\d by the clock, up to 2 runs at a "
                     r"time \(\d+:\d\d summed\)", report)
    for stem in ("loss_vs_n", "curves_vs_flops", "residuals"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.svg").exists()
    assert len(list(out.glob("*/summary.json"))) == 4  # every size of the short plan


@pytest.mark.parametrize("jobs,threads,device,runs,expected", [
    (0, 0, "cpu", 8, (4, 1)),     # one run a core, one thread each
    (0, 2, "cpu", 8, (2, 2)),     # --threads=2 leaves room for two runs
    (0, 0, "cpu", 1, (1, 0)),     # a lone run keeps torch's threads
    (0, 0, "cuda", 8, (1, 0)),    # one GPU, one run
    (3, 0, "cpu", 8, (3, 1)),
    (1, 0, "cpu", 8, (1, 0)),
])
def test_runs_share_the_cores(monkeypatch, jobs, threads, device, runs, expected):
    from model.studies.common.runner import share_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert share_cores(jobs, threads, device, runs) == expected


@pytest.mark.parametrize("key, train, chosen, wrong, message", [
    ("dtype", '"float32"', '"bfloat16"', '"fp8"', "a table of sizes and dtypes"),
    ("compile", "true", "false", '"no"', "a table of sizes and true or false")])
def test_a_plan_sets_a_training_key_per_size(tmp_path, key, train, chosen, wrong, message):
    """[dtype] and [compile] give a size its own value over [train]'s."""
    path = tmp_path / "p.toml"
    path.write_text(f'tokens = 1000\n[train]\n{key} = {train}\n[{key}]\n"2x32" = {chosen}\n'
                    '[lr]\n"2x24" = 1e-3\n"2x32" = 1e-3\n"2x48" = 1e-3\n')
    plan = load_plan(str(path))
    values = {s.size: getattr(plan.train_config(s, tmp_path / s.name), key) for s in plan.runs()}
    default, own = (tomllib.loads(f"v = {v}")["v"] for v in (train, chosen))
    assert values == {"2x24": default, "2x32": own, "2x48": default}
    path.write_text(path.read_text().replace(f'"2x32" = {chosen}', f'"4x72" = {chosen}'))
    with pytest.raises(UserError, match=f"\\[{key}\\] names '4x72', which is not under \\[lr\\]"):
        load_plan(str(path))
    path.write_text(path.read_text().replace(f'"4x72" = {chosen}', f'"2x32" = {wrong}'))
    with pytest.raises(UserError, match=f"{key} must be {message}"):
        load_plan(str(path))


def test_a_run_that_fails_in_its_process_is_one_error_naming_it(corpus, tmp_path):
    from model.studies.common.pool import run_parallel
    from model.train.train_config import TrainConfig

    good = dict(dataset=str(corpus), out_dir=str(tmp_path / "a"), run_name="a", size="2x24",
                max_iters=2, eval_interval=2, eval_batches=1, batch_size=2, block_size=16,
                threads=1, device="cpu")
    bad = {**good, "out_dir": str(tmp_path / "b"), "run_name": "b", "dataset": str(tmp_path / "nope")}
    ended = []
    with pytest.raises(UserError, match="^b: .*nope"):
        run_parallel([TrainConfig(**bad), TrainConfig(**good)], 2, lambda cfg: None,
                     lambda cfg, result: ended.append(cfg.run_name))
    assert "Traceback" not in (tmp_path / "b" / "train.log").read_text()


def synthetic_run(n, d, flops):
    loss = 1.7 + 400 / n ** 0.34 + 2000 / d ** 0.37
    return {"n_nonemb": n, "tokens": d, "flops": flops, "val_loss": loss, "seed": 0,
            "curve": [(flops / 2, loss + 0.1), (flops, loss)]}


def test_analysis_fits_chinchilla_and_isoflops_when_runs_give_several_d():
    from model.studies.scaling.scaling_report import analyse

    sizes = np.geomspace(1e5, 1e8, 8)
    runs = [synthetic_run(n, d, 6 * n * d) for n in sizes for d in (1e8, 4e8, 1.6e9)]
    # iso-FLOP budgets, rounded to a whole number of tokens as the runner does
    runs += [synthetic_run(n, int(c / (6 * n)), 6 * n * int(c / (6 * n)) * 1.0001)
             for c in (1e16, 1e17) for n in sizes]
    a = analyse(runs, n_boot=20)
    ch = a["chinchilla"]
    assert ch.alpha == pytest.approx(0.34, abs=0.02) and ch.beta == pytest.approx(0.37, abs=0.02)
    assert [round(c) for c, _, _ in a["isoflop"].optima] == [1e16, 1e17]
    n_opt = [n for _, n, _ in a["isoflop"].optima]
    assert n_opt[1] > n_opt[0]  # more compute, bigger optimal model


def test_the_data_axis_report_compares_exponents_and_draws_the_frontier(tmp_path):
    """A one-seed study of several budgets a size, as the data-axis preset trains: the other
    budgets are not seeds, approach 3's a and b and approach 2's a are printed with intervals,
    each interval checked against the published values, and the figure is drawn."""
    from model.studies.scaling import scaling_plots
    from model.studies.scaling.scaling_report import allocation_section, analyse, fit_table

    sizes = np.geomspace(1e5, 1e8, 5)
    runs = [synthetic_run(n, d, 6 * n * d) for n in sizes for d in (1e8, 1e9)]
    runs += [synthetic_run(n, int(c / (6 * n)), 6 * n * int(c / (6 * n))) for c in (1e16, 1e17)
             for n in sizes]
    rng = np.random.default_rng(0)
    for r in runs:  # seed-sized noise, so that the intervals are not points
        r["val_loss"] *= np.exp(0.003 * rng.standard_normal())
    a = analyse(runs, n_boot=20)
    assert a["noise"] is None  # one seed a size: no seed noise, whatever the budgets
    ch = a["chinchilla"]
    assert ch.a == pytest.approx(0.37 / 0.71, abs=0.03) and ch.a_ci[0] < ch.a < ch.a_ci[1]
    table = "\n".join(fit_table(a))
    assert f"| a in N_opt ∝ C^a (C = 6ND) | {ch.a:.3f} | [" in table
    assert "| Chinchilla approach 2 (2 isoFLOP parabolas with an interior minimum) |" in table
    text = "\n".join(allocation_section(a))
    verdict = next(line for line in text.splitlines() if line.startswith("- Approach 3's a"))
    inside = ch.a_ci[0] <= 0.46 <= ch.a_ci[1]
    assert "Hoffmann et al. 2022 approach 3 0.46" in verdict.split("excludes")[not inside]
    assert "Besiroglu et al.'s 0.35" in text and "non-embedding" in text
    drawn = scaling_plots.chinchilla(tmp_path, *a["chinchilla_points"], ch, "nats/char")
    assert [p.name for p in drawn] == ["chinchilla.png", "chinchilla.svg"]
    # a single isoFLOP budget: approach 2 undetermined, said so, no comparison made
    a = analyse([r for r in runs if r["flops"] < 5e16 or r["tokens"] in (1e8, 1e9)], n_boot=20)
    assert "| a in N_opt ∝ C^a | undetermined (fewer than 2 optima) |" in "\n".join(fit_table(a))
    assert "- Approach 2's a: no interval, so no comparison." in allocation_section(a)


def test_report_names_a_precision_switch_along_the_ladder():
    from model.studies.scaling.scaling_report import precision_finding

    runs = [{"name": f"{size}-4M-lr0.01-s{seed}", "dtype": dtype}
            for size, dtype in (("2x24", "float32"), ("4x104", "float32"), ("6x160", "bfloat16"))
            for seed in (1, 2)]
    line = precision_finding(runs)
    assert "**mixed** (float32 for 2x24, 4x104; bfloat16 for 6x160)" in line
    assert precision_finding(runs[:4]) == "- Precision: float32 at every size."


def test_seed_noise_pools_the_seeds_of_each_size():
    from model.studies.scaling.scaling_report import seed_noise

    runs = [{"n_nonemb": n, "val_loss": v} for n, v in ((1, 2.0), (1, 2.0 * np.exp(0.02)),
                                                      (2, 1.5), (2, 1.5 * np.exp(0.02)))]
    # two seeds per size: SD 0.02/sqrt(2) of one seed, of the mean of two half that variance
    noise = seed_noise(runs, np.array([1, 2]))
    assert (noise.sd, noise.se, noise.dof, noise.sizes) == (
        pytest.approx(0.02 / np.sqrt(2)), pytest.approx(0.01), 2, 2)
    assert seed_noise(runs[::2], np.array([1, 2])) is None


def test_seed_noise_is_named_sd_or_se_and_says_when_seeds_per_size_differ():
    from model.studies.scaling.scaling_report import noise_words, seed_noise

    runs = [{"n_nonemb": n, "val_loss": v} for n, v in ((1, 2.0), (1, 2.0 * np.exp(0.02)),
                                                      (2, 1.5))]
    noise = seed_noise(runs, np.array([1, 2]))  # the laptop preset's case: 1.5 seeds a size
    assert noise.se == pytest.approx(noise.sd / np.sqrt(1.5))
    words = noise_words(noise)
    assert f"SD between seeds {noise.sd:.4f}" in words and f"= {noise.se:.4f}" in words
    assert "an average" in words and "(1 degree of freedom)" in words
    both = seed_noise(runs + [{"n_nonemb": 2, "val_loss": 1.5}], np.array([1, 2]))
    assert "an average" not in noise_words(both)


def test_report_says_when_the_floor_is_not_bounded_away_from_zero():
    from model.studies.scaling.fit import PowerLawFit
    from model.studies.scaling.scaling_report import floor_cells

    boot = np.ones((40, 3))
    at_bound = PowerLawFit(0.0, 5.0, 0.3, (0.0, 0.2), (4, 6), (0.2, 0.4), 0.6, boot=boot)
    assert floor_cells(at_bound).startswith("0 (at bound) | ≤ 0.2 (one-sided 95%; 60.0% of")
    reaching = PowerLawFit(1.3, 5.0, 0.3, (0.0, 1.43), (4, 6), (0.2, 0.4), 0.029, boot=boot)
    assert "≤ 1.43, not bounded away from 0 (2.9% of refits at 0)" in floor_cells(reaching)
    assert floor_cells(PowerLawFit(1.3, 5.0, 0.3, (1.2, 1.4), (4, 6), (0.2, 0.4))) == (
        "1.3000 | [1.2, 1.4]")


@pytest.mark.long
def test_a_sweep_runs_side_by_side_and_picks_an_interior_rate(corpus, tmp_path):
    """tinygpt sweep: each size's grid of rates, two runs at a time, extended past an edge."""
    from model.studies.scaling.sweep import run_sweep

    path = tmp_path / "p.toml"
    path.write_text(f'dataset = "{corpus}"\ntokens = 8_000\nblock_size = 32\nbatch_size = 2\n'
                    '[train]\ndtype = "float32"\neval_batches = 2\n'
                    '[sweep]\ntokens = 2_000\nfactors = [0.01, 1.0]\nextend = 1\n'
                    '[lr]\n"2x24" = 1e-2\n"2x32" = 1e-2\n"2x48" = 1e-2\n')
    # at the study's budget, not the preset's [sweep] one: how a rate is re-checked
    result = run_sweep(load_plan(str(path)), tmp_path / "sweep", tokens=8_000, jobs=2, threads=1)
    assert result["tokens"] == 8_000
    assert set(result["sizes"]) == {"2x24", "2x32", "2x48"}
    for row in result["sizes"].values():  # 1e-4 is far too low: the grid grows past 1e-2
        assert len(row["val_loss"]) == 3 and row["best_lr"] > 1e-4
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    # each round trains every size's missing rates together, two at a time: the extensions too
    assert len(summaries) == 9 and {s["jobs"] for s in summaries} == {2}
    assert {s["tokens"] for s in summaries} == {8_000}
    # at the study's own budget the report sets the ladder at its rates beside the best ones
    report = (tmp_path / "sweep" / "sweep.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| 2x")][3:]
    assert len(rows) == 3 and all(float(r.split("|")[-2]) >= 0 for r in rows)  # given up ≥ 0
    assert "| at the best rates here | " in report and "(no interval: 3 sizes)" in report


def test_a_finished_run_of_another_recipe_is_named_when_skipped(tmp_path, capsys):
    from model.studies.common.runner import Ledger

    path = tmp_path / "p.toml"
    path.write_text('tokens = 1000\n[lr]\n"2x24" = 1e-3\n')
    plan = load_plan(str(path))
    spec = plan.runs()[0]
    cfg = plan.train_config(spec, tmp_path / spec.name)
    (tmp_path / spec.name).mkdir()
    summary = tmp_path / spec.name / "summary.json"
    ledger = Ledger(plan, [spec], tmp_path, jobs=1)
    summary.write_text(json.dumps({"val_loss": 2.0, "config_hash": config_hash(cfg)}))
    assert ledger.skipped(spec, cfg)["val_loss"] == 2.0
    assert capsys.readouterr().out.rstrip().endswith("finished earlier, skipped")
    summary.write_text(json.dumps({"val_loss": 2.0, "config_hash": "0123456789ab"}))
    ledger.skipped(spec, cfg)
    out = capsys.readouterr().out
    assert "config 0123456789ab, is not what the plan now gives" in out and spec.name in out


def test_the_report_reads_a_committed_copy_whose_runs_sit_under_runs(tmp_path):
    """docs/scaling/* keep each run's summary and metrics under runs/, beside the report."""
    from model.studies.scaling.scaling_report import load_runs

    for folder in (tmp_path / "flat", tmp_path / "committed" / "runs"):
        for i, size in enumerate(("2x24", "2x32", "2x48")):
            run = folder / f"{size}-s1"
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps(
                {"name": run.name, "n_nonemb": 1000 * (i + 1), "tokens": 100, "seed": 1,
                 "steps": 2}))
            (run / "metrics.jsonl").write_text(
                json.dumps({"step": 1, "flops": 5, "val_loss": 2.0 - i}) + "\n")
    runs = load_runs(tmp_path / "committed")
    assert len(runs) == 3 and runs == load_runs(tmp_path / "flat")
    assert runs[2]["curve"] == [(5, 0.0)]
