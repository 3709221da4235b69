"""Issue 28: the holes a second hostile-user audit found. Each test fails on the code before its
fix: real files, real processes, one line for the user, nothing lost."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from model.cli import main
from model.errors import UserError
from model.train.trainer import train
from test_reliability import small_disk  # noqa: F401 (a real full disk: a fixture)

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(capsys, *argv) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


def prepared_counts(capsys, *argv) -> tuple[int, int]:
    assert main(["prepare", *argv]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    train_tokens, val_tokens = (int(w.replace(",", "")) for w in line.split()
                                if w.replace(",", "").isdigit())
    return train_tokens, val_tokens


def test_prepared_held_out_text_never_reaches_train(capsys, corpus, monkeypatch):
    """Item 1: `prepare --dataset=.` from inside the corpus writes data/ into it; preparing again
    (here after an edit) must not read data/<name>/val.txt back in as a training document."""
    monkeypatch.chdir(corpus)
    first = prepared_counts(capsys, "--dataset=.")
    val = (next(Path("data").glob("*/val.txt"))).read_text()
    with open("work0.txt", "a") as f:  # an edit: the folder is prepared again
        f.write("More words.\n")
    again = prepared_counts(capsys, "--dataset=.")
    assert again == (first[0] + len("More words.\n"), first[1])
    folder = next(p for p in Path("data").iterdir() if (p / "train.bin").exists())
    train_tokens = np.fromfile(folder / "train.bin", dtype=np.uint16)
    assert len(train_tokens) == again[0] and len(val) > 1000
    # a folder of prepared data alone is no corpus: its val.txt is held-out text
    err = one_line_error(capsys, "prepare", "--dataset=data")
    assert "prepared" in err and "data" in err


def test_resume_refuses_another_corpus_with_the_same_characters(corpus, tmp_path):
    """Item 2: only a changed vocabulary was caught; another corpus of the same characters
    trained on silently and overwrote the checkpoint's recorded dataset."""
    import shutil

    out, other = tmp_path / "r", tmp_path / "other"
    train(tiny_config(corpus, out, max_iters=3))
    shutil.copytree(corpus, other)
    (other / "work0.txt").write_text((other / "work1.txt").read_text())
    before = (out / "ckpt.pt").read_bytes()
    with pytest.raises(UserError, match=rf"trained on {corpus}.*not {other}"):
        train(tiny_config(other, out, max_iters=6, init_from="resume"))
    assert (out / "ckpt.pt").read_bytes() == before
    train(tiny_config(corpus, out, max_iters=6, init_from="resume"))  # its own corpus resumes


def test_report_refuses_a_preset_other_than_the_studys_plan(capsys, tmp_path):
    """Item 3: `report RUNS --preset=OTHER` titled the report and its command after OTHER."""
    import dataclasses

    from model.files import write_json
    from model.studies.common.plan import load_plan

    root = tmp_path / "study"
    root.mkdir()
    write_json(root / "plan.json", dataclasses.asdict(load_plan("quick")))
    err = one_line_error(capsys, "report", str(root), "--preset=laptop")
    assert "'quick'" in err and "'laptop'" in err and not (root / "report.md").exists()


def test_a_second_run_without_checkpoints_keeps_the_firsts_metrics(corpus, tmp_path):
    """Item 4: with --save_checkpoints=false nothing marked the out_dir as used, and a second
    run into it replaced the first's metrics.jsonl."""
    out = tmp_path / "r"
    train(tiny_config(corpus, out, save_checkpoints=False))
    before = (out / "metrics.jsonl").read_bytes()
    with pytest.raises(UserError, match=r"metrics.jsonl.*another --out_dir"):
        train(tiny_config(corpus, out, save_checkpoints=False, seed=8))
    assert (out / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize("preset", ["quick", "emergence-synthetic"])
@pytest.mark.parametrize("edit,message", [
    (("seeds = [1337]", "seeds = [true]"), "seeds must be a list of whole numbers"),
    (("seeds = [1337]", "seeds = [-1]"), "seeds must be a list of whole numbers"),
    (("seeds = [1337]", 'name = "../../escaped"\nseeds = [1337]'), "name must be a plain name"),
])
def test_plan_values_a_run_cannot_take_are_refused(tmp_path, preset, edit, message):
    """Item 5: seeds = [true] ran as -sTrue, and name = "../../escaped" wrote outside out/."""
    from model.studies.emergence.emergence_plan import load_emergence_plan
    from model.studies.common.plan import load_plan, read_plan

    text = (ROOT / "configs" / "study" / f"{preset}.toml").read_text()
    assert edit[0] in text
    plan = tmp_path / "plan.toml"
    plan.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(UserError, match=message):
        load_plan(str(plan)) if preset == "quick" else load_emergence_plan(*read_plan(str(plan)))


def test_a_truncated_token_file_is_refused(capsys, corpus, tmp_path):
    """Item 5: a train.bin cut short trained without complaint (on fewer windows)."""
    from model.data.prepare import prepare

    folder = prepare(str(corpus))
    data = (folder / "train.bin").read_bytes()
    (folder / "train.bin").write_bytes(data[:len(data) // 4 * 2])  # whole tokens
    err = one_line_error(capsys, "train", f"--dataset={corpus}", f"--out_dir={tmp_path / 'o'}",
                         "--n_layer=1", "--n_head=2", "--n_embd=16", "--max_iters=1")
    assert "train.bin" in err and "prepare" in err


def test_prepare_never_deletes_a_folder_it_did_not_write(capsys, corpus, tmp_path):
    """Item 5: an out_dir inside a data folder not yet prepared was deleted by prepare."""
    from model.data.prepare import dataset_dir

    inside = dataset_dir(str(corpus), "char") / "run"
    inside.mkdir(parents=True)
    (inside / "notes.txt").write_text("mine")
    err = one_line_error(capsys, "prepare", f"--dataset={corpus}")
    assert "not prepared data only (it holds run)" in err
    assert (inside / "notes.txt").read_text() == "mine"


def test_a_warmup_longer_than_the_run_is_said(capsys, corpus, tmp_path):
    """Item 6: --warmup_iters=1000000 held the rate near 0 for the whole run without a word."""
    train(tiny_config(corpus, tmp_path / "r", max_iters=4, warmup_iters=1000))
    err = capsys.readouterr().err
    assert "warning: warmup_iters=1000 is longer than the run (max_iters=4)" in err
    assert "rises only to 1.2e-05 of lr=0.003" in err and len(err.strip().splitlines()) == 1
    train(tiny_config(corpus, tmp_path / "ok", max_iters=4, warmup_iters=4))
    assert "warning" not in capsys.readouterr().err


TINY_PLAN = """
description = "three tiny sizes"
block_size = 16
batch_size = 2
tokens = 2_000
evals = 4
[train]
dtype = "float32"
eval_batches = 1
{extra}
[lr]
"2x24" = 1e-2
"2x32" = 1e-2
"2x48" = 1e-2
"""


@pytest.mark.parametrize("top,train_keys,message", [
    ("", "", None),
    ("evals = 1", "", "no evaluation before its last step"),
    ("", "eval_interval = 1000", "no evaluation before its last step"),
    ("", "max_iters = 5", "[train] max_iters is set by the plan"),
    ("", 'out_dir = "elsewhere"', "[train] out_dir is set by the plan"),  # item 14
])
def test_plans_the_study_cannot_finish_are_refused_before_training(capsys, corpus, tmp_path, top,
                                                                    train_keys, message):
    """Item 7: plans the checker accepted crashed after training every run, with no report
    (evals = 1, a long [train] eval_interval, [train] max_iters); item 14: [train] out_dir
    trained elsewhere, then failed writing summary.json."""
    text = TINY_PLAN.format(extra=train_keys).replace("evals = 4", top or "evals = 4")
    plan = tmp_path / "tiny.toml"
    plan.write_text(text)
    argv = ["study", f"--preset={plan}", f"--dataset={corpus}", f"--out={tmp_path / 'o'}",
            "--jobs=1"]
    if message is None:  # the plan as it is finishes, report included
        assert main(argv) == 0 and (tmp_path / "o" / "report.md").exists()
        capsys.readouterr()
        # a study folder from before the check: its runs evaluated only at their ends
        for metrics in tmp_path.glob("o/*/metrics.jsonl"):
            rows = [json.loads(line) for line in metrics.read_text().splitlines()]
            last = max(r["step"] for r in rows)
            metrics.write_text("".join(json.dumps(r) + "\n" for r in rows if "val_loss" not in r
                                       or r["step"] in (0, last)))
        assert "no learning curve" in one_line_error(capsys, "report", str(tmp_path / "o"))
        return
    assert message in one_line_error(capsys, *argv)
    assert not list(tmp_path.glob("o/*/ckpt.pt")) and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("line", [b"[1, 2]\n", b'{"step": 1, "val_loss": 2.0}\xff\n',
                                  b'{"step": "ten", "val_loss": 2.0}\n', b'"text"\n'])
def test_a_damaged_metrics_file_is_named_on_resume(corpus, tmp_path, line):
    """Item 8: metrics.jsonl with a line of the wrong type or a non-UTF-8 byte failed on resume
    with a traceback. A line torn by a kill (not JSON) is still dropped, as before."""
    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=3))
    damaged = line + (out / "metrics.jsonl").read_bytes() + b'{"step": 3, "val_lo'
    (out / "metrics.jsonl").write_bytes(damaged)
    with pytest.raises(UserError, match=r"metrics.jsonl is damaged \(line 1: .*\); "):
        train(tiny_config(corpus, out, max_iters=6, init_from="resume"))
    assert (out / "metrics.jsonl").read_bytes() == damaged


def state_readers(root: Path) -> dict:
    """Every JSON state file a command reads back, and a call that reads it."""
    from types import SimpleNamespace

    from model.studies.emergence.emergence_report import load as emergence_load
    from model.studies.common.task_scoring import Options
    from model.studies.fewshot.run import checkpoint_identity, previous_results
    from model.studies.instruct.bon import run_bon
    from model.studies.instruct.comparisons import run_comparisons
    from model.studies.instruct.context import Context
    from model.studies.instruct.evaluate import run_evaluation
    from model.studies.instruct.pipeline import timed
    from model.studies.scaling.scaling_report import write_report
    from model.studies.common.runner import clock_time

    ctx = SimpleNamespace(root=root, stage=lambda name: root / name)
    return {
        "plan.json": lambda: write_report(root),
        "timing.json": lambda: clock_time(root),
        "emergence/plan.json": lambda: emergence_load(root / "emergence"),
        "timings.json": lambda: timed(ctx, "sft", lambda: None),
        "comparisons.json": lambda: run_comparisons(ctx),
        "results.json": lambda: run_evaluation(ctx),
        "bon.json": lambda: run_bon(ctx),
        "sft-2x24/summary.json": lambda: Context.finished(ctx, "sft-2x24"),
        "fewshot/results.json": lambda: previous_results(root / "fewshot" / "results.json",
                                                         Options()),
        "run/summary.json": lambda: checkpoint_identity(root / "run" / "ckpt.pt", None,
                                                        {"step": 1}),
        "data/meta.json": lambda: __import__("model.data.prepare").data.prepare.Batches(root / "data", 8),
    }


@pytest.mark.parametrize("name", list(state_readers(Path("."))))
@pytest.mark.parametrize("damage", [b'{"elapsed_s": 1', b"\xff\xfe\x00garbled", b"[1, 2]"])
def test_every_damaged_state_file_is_named_and_kept(tmp_path, name, damage):
    """Item 8: damaged state files (a plan, summaries, timings, results: truncated, garbled,
    of the wrong type) failed with tracebacks; only a study's summary.json was guarded."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(damage)
    with pytest.raises(UserError, match=rf"^{path} is damaged \(.*\); "):
        state_readers(tmp_path)[name]()
    assert path.read_bytes() == damage


def test_a_summary_without_the_keys_the_report_reads_is_named(capsys, tmp_path):
    """Item 8: a summary.json that is JSON but lacks keys failed in the report with a KeyError."""
    run = tmp_path / "study" / "2x24-0.3M-lr0.013-s1337"
    run.mkdir(parents=True)
    (run / "summary.json").write_text('{"name": "2x24-0.3M-lr0.013-s1337", "val_loss": 1.2}')
    (tmp_path / "study" / "plan.json").write_text('{"name": "quick", "lr": {}}')
    err = one_line_error(capsys, "report", str(tmp_path / "study"))
    assert "summary.json is damaged (no 'steps')" in err


def test_disk_full_while_saving_a_figure_keeps_the_previous_one(small_disk):
    """Item 9: a report saving figures on a full disk failed with a traceback and left a 0-byte
    loss_vs_n.png."""
    import matplotlib.pyplot as plt

    from model.studies.common.figures import save

    fig = plt.figure()
    fig.gca().plot(range(100))
    save(fig, small_disk, "loss_vs_n")
    before = (small_disk / "loss_vs_n.png").read_bytes()
    st = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"x" * (st.f_bavail * st.f_frsize - 8192))
    fig = plt.figure(figsize=(12, 12))
    fig.gca().plot(range(10000), [i ** 0.5 for i in range(10000)])
    with pytest.raises(UserError, match=r"disk full while saving .*loss_vs_n.png; the previous "
                                        r"figure is intact\. Free some space and run the "
                                        r"command again"):
        save(fig, small_disk, "loss_vs_n")
    assert (small_disk / "loss_vs_n.png").read_bytes() == before
    assert not list(small_disk.glob("*.tmp"))


def test_fewshot_into_the_run_folder_it_evaluates_is_refused(capsys, corpus, tmp_path):
    """Item 10: `fewshot RUN --out=RUN` left out the only checkpoint (as the output folder),
    then failed with an IndexError in the few-shot figures."""
    run = tmp_path / "r"
    train(tiny_config(corpus, run, max_iters=2))
    err = one_line_error(capsys, "fewshot", str(run), f"--out={run}")
    assert f"--out={run} is the run folder" in err
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.pt", "metrics.jsonl"]
    out = tmp_path / "few"
    out.mkdir()
    assert "no checkpoint to evaluate" in one_line_error(capsys, "fewshot", str(out),
                                                         f"--out={out}")


def test_sft_refuses_a_base_model_too_short_for_its_prompts(corpus, tmp_path):
    """Item 11: a base study of block_size 32 failed after SFT had trained ("sequence of 103
    tokens exceeds block_size 32"); the lengths are known before."""
    from types import SimpleNamespace

    from model.studies.instruct.settings import InstructConfig
    from model.studies.instruct.sft import run_sft

    train(tiny_config(corpus, tmp_path / "base", max_iters=1))
    ctx = SimpleNamespace(cfg=InstructConfig(), finished=lambda name: None,
                          base=lambda size: tmp_path / "base" / "ckpt.pt",
                          stage=lambda name: tmp_path / "instruct" / name)
    with pytest.raises(UserError, match=r"block_size 32.*104 tokens.*block_size of at least 104"):
        run_sft(ctx, "2x24")
    assert not (tmp_path / "instruct").exists()


@pytest.mark.parametrize("text", [b"a", b"ab\n"])
def test_a_corpus_of_a_character_or_two_is_one_line(capsys, tmp_path, text):
    """Item 12: a one-character corpus gave an empty train.bin, then "cannot mmap an empty file"."""
    (tmp_path / "tiny.txt").write_bytes(text)
    err = one_line_error(capsys, "train", f"--dataset={tmp_path / 'tiny.txt'}",
                         f"--out_dir={tmp_path / 'o'}", "--n_layer=1", "--n_head=2",
                         "--n_embd=16", "--block_size=8")
    assert "fewer than one block" in err


@pytest.mark.parametrize("split,cut", [("val", 0), ("val", 1), ("train", 3)])
def test_an_empty_or_odd_sized_token_file_is_one_line(capsys, corpus, tmp_path, split, cut):
    """Item 12: an empty or odd-sized .bin failed inside numpy's memmap."""
    from model.data.prepare import prepare

    path = prepare(str(corpus)) / f"{split}.bin"
    path.write_bytes(path.read_bytes()[:cut])
    err = one_line_error(capsys, "train", f"--dataset={corpus}", f"--out_dir={tmp_path / 'o'}",
                         "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8")
    assert f"{split}.bin is damaged ({cut} bytes" in err


def test_rank_without_torchrun_is_one_line(corpus, tmp_path):
    """Item 13: RANK=0 in the environment without torchrun failed inside torch.distributed
    ("WORLD_SIZE expected, but not set")."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RANK": "0"}
    for var in ("WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        env.pop(var, None)
    done = subprocess.run([sys.executable, "-m", "model.cli", "train", f"--dataset={corpus}",
                           f"--out_dir={tmp_path / 'o'}", "--n_layer=1", "--n_head=2",
                           "--n_embd=16", "--block_size=8", "--max_iters=1"],
                          env=env, capture_output=True, text=True, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "RANK is set" in err and "WORLD_SIZE" in err and "torchrun" in err


def crafted(capsys, corpus, tmp_path, edit) -> Path:
    import torch

    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=1))
    state = torch.load(out / "ckpt.pt", weights_only=True)
    edit(state)
    torch.save(state, out / "ckpt.pt")
    capsys.readouterr()  # (training's own lines)
    return out


def test_a_checkpoint_asking_for_a_huge_model_is_refused_before_allocating(capsys, corpus,
                                                                           tmp_path):
    """Item 15: a config of n_embd 60000 over small weights, under a memory limit, was reported
    as "does not fit ... (tried to allocate 43200000" (cut): the shapes are checked first now."""
    import resource
    import subprocess
    import sys

    out = crafted(capsys, corpus, tmp_path, lambda s: s["model_config"].update(n_embd=60000))
    done = subprocess.run(
        [sys.executable, "-m", "model.cli", "sample", f"--out_dir={out}", "--max_new_tokens=2"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)))
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "weight" in err and "of another shape" in err and "allocate" not in err


def test_a_crafted_checkpoint_names_the_weight_that_does_not_fit(capsys, corpus, tmp_path):
    """Item 16: "does not fit ... (Error(s) in loading state_dict for GPT:)" named no weight."""
    import torch

    out = crafted(capsys, corpus, tmp_path, lambda s: s["model"].update(
        {k: torch.zeros(3, 3) for k in list(s["model"]) if k.endswith("mlp.fc.weight")}))
    err = one_line_error(capsys, "sample", f"--out_dir={out}", "--max_new_tokens=2")
    assert "mlp.fc.weight missing or of another shape" in err


def test_an_os_error_that_is_no_full_disk_does_not_say_free_some_space():
    """Item 17: "Is a directory; free some space" for a directory, a dangling link or a loop."""
    import errno

    from model.errors import one_line

    line = one_line(IsADirectoryError(errno.EISDIR, "Is a directory", "x/ckpt.pt"))
    assert line == "x/ckpt.pt: Is a directory; check the path and its permissions"
    full = one_line(OSError(errno.ENOSPC, "No space left on device", "x/ckpt.pt"))
    assert full.startswith("x/ckpt.pt: disk full; free some space")


def test_a_dangling_link_as_out_dir_is_named_as_one(capsys, corpus, tmp_path):
    """Item 17: a dangling symlink as out_dir said "(File exists)"."""
    (tmp_path / "o").symlink_to(tmp_path / "gone")
    err = one_line_error(capsys, "train", f"--dataset={corpus}", f"--out_dir={tmp_path / 'o'}",
                         "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8")
    assert f"{tmp_path / 'o'} is a link to {tmp_path / 'gone'}, which does not exist" in err


def test_a_deleted_corpus_is_not_called_another_or_older(capsys, corpus, tmp_path):
    """Item 17: a deleted corpus was reported as "prepared from another or an older ..."."""
    import shutil

    from model.data.prepare import prepare

    prepare(str(corpus))
    shutil.rmtree(corpus)
    err = one_line_error(capsys, "prepare", f"--dataset={corpus}")
    assert f"corpus {corpus} does not exist" in err


def test_train_type_errors_in_a_plan_name_the_file_and_table(tmp_path):
    """Item 17: `[train]` type errors named neither the file nor the table."""
    from model.studies.common.plan import load_plan

    plan = tmp_path / "tiny.toml"
    plan.write_text(TINY_PLAN.format(extra='warmup_iters = "ten"'))
    with pytest.raises(UserError, match=rf"\[train\] of {plan}: warmup_iters must be int"):
        load_plan(str(plan))


def test_resume_past_max_iters_is_refused(corpus, tmp_path):
    """Item 17: "starting at step 300/100" on resume with a smaller max_iters."""
    train(tiny_config(corpus, tmp_path / "r", max_iters=6))
    with pytest.raises(UserError, match=r"at step 6, past max_iters=3"):
        train(tiny_config(corpus, tmp_path / "r", max_iters=3, init_from="resume"))


def test_out_dir_help_promises_only_what_train_writes():
    """Item 17: the --out_dir help promised a summary.json train never writes."""
    from model.cli.usage import usage
    from model.train.train_config import TrainConfig

    line = next(li for li in usage("tinygpt train", "", TrainConfig).splitlines()
                if "out_dir" in li)
    assert "summary.json" not in line and "metrics.jsonl" in line


@pytest.mark.parametrize("inside", [False, True])
def test_a_fifo_as_corpus_is_refused_not_waited_on(tmp_path, inside):
    """Item 18: --dataset=<FIFO> blocked forever (a FIFO among a folder's .txt files too)."""
    import subprocess
    import sys

    if inside:
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "a.txt").write_text("some text\n" * 100)
        os.mkfifo(tmp_path / "c" / "pipe.txt")
        dataset, fifo = tmp_path / "c", tmp_path / "c" / "pipe.txt"
    else:
        os.mkfifo(tmp_path / "pipe")
        dataset = fifo = tmp_path / "pipe"
    done = subprocess.run([sys.executable, "-m", "model.cli", "prepare", f"--dataset={dataset}"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert f"{fifo} is not a regular file" in err


def test_sample_takes_threads(capsys, corpus, tmp_path):
    """Item 19: sample had no --threads (beside another job, 400 tokens took 10.0 s against 2.6 s
    at one thread)."""
    import torch

    train(tiny_config(corpus, tmp_path / "r", max_iters=1))
    before = torch.get_num_threads()
    try:
        assert main(["sample", f"--out_dir={tmp_path / 'r'}", "--max_new_tokens=3",
                     "--threads=1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    assert "threads=100000 is not possible here" in one_line_error(
        capsys, "sample", f"--out_dir={tmp_path / 'r'}", "--threads=100000")


def test_a_foreign_pickle_protocol_prints_no_warning_above_the_error(corpus, tmp_path):
    """Item 16: torch's pickle-protocol warning was printed above the one clear error."""
    import subprocess
    import sys

    import torch

    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=1))
    state = torch.load(out / "ckpt.pt", weights_only=True)
    torch.save(state, out / "ckpt.pt", pickle_protocol=4)
    # (a process of its own: pytest would catch the warning before it reached stderr)
    done = subprocess.run([sys.executable, "-m", "model.cli", "sample", f"--out_dir={out}"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "is not a tinygpt checkpoint" in err
