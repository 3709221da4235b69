"""Issue 12: nothing a careless user or a crash does loses data or gives a silently wrong result."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from model.errors import UserError
from model.train.runlog import read_metrics
from model.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]

# A second process that takes out_dir's lock the way a training run does, says so, and waits.
HOLDER = """
import sys, time
from model.train.lock import owns_out_dir
class Cfg: out_dir = sys.argv[1]
@owns_out_dir
def hold(cfg):
    print("held", flush=True)
    time.sleep(120)
hold(Cfg())
"""


def hold_lock(out: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_run_in_one_out_dir_is_refused_until_the_first_dies(corpus, tmp_path):
    out = tmp_path / "run"
    child = hold_lock(out)
    try:
        for init_from in ("scratch", "auto"):
            busy = f"in use by another tinygpt run \\(pid {child.pid}\\)"
            with pytest.raises(UserError, match=busy):
                train(tiny_config(corpus, out, init_from=init_from))
        assert not (out / "metrics.jsonl").exists() and not (out / "ckpt.pt").exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # the lock file the killed holder left behind is stale: the next run takes it
    assert (out / "train.lock").exists()
    train(tiny_config(corpus, out))
    assert [r["step"] for r in read_metrics(out) if "val_loss" in r] == [0, 3, 6]
    assert not (out / "train.lock").exists()


def test_a_failed_run_releases_its_out_dir(corpus, tmp_path):
    with pytest.raises(UserError, match="there is no checkpoint"):
        train(tiny_config(corpus, tmp_path / "r", init_from="resume"))
    train(tiny_config(corpus, tmp_path / "r"))  # the same process, the same out_dir


def swap_a_for_x(corpus: Path) -> None:
    """Edit the corpus keeping its number of distinct characters (it has no 'x')."""
    for f in corpus.iterdir():
        assert "x" not in f.read_text()
        f.write_text(f.read_text().replace("a", "x"))


def test_resume_refuses_a_corpus_with_another_vocabulary_of_the_same_size(corpus, tmp_path):
    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=3))
    before = (out / "ckpt.pt").read_bytes()
    swap_a_for_x(corpus)
    with pytest.raises(UserError, match=r"another vocabulary .*hash \w+ there, \w+ here; "
                                        r"\['a'\] gone, \['x'\] new"):
        train(tiny_config(corpus, out, max_iters=6, init_from="resume"))
    assert (out / "ckpt.pt").read_bytes() == before  # its tokenizer is not overwritten


def test_sample_refuses_a_tokenizer_that_does_not_fit_the_model(corpus, tmp_path, capsys):
    import torch
    from model.cli import main

    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=2))
    state = torch.load(out / "ckpt.pt", weights_only=True)
    state["tokenizer"]["chars"] = state["tokenizer"]["chars"][1:]  # every id shifted by one
    torch.save(state, out / "ckpt.pt")
    assert main(["sample", f"--out_dir={out}", "--max_new_tokens=5"]) == 2
    err = capsys.readouterr().err
    assert "do not belong together" in err and len(err.strip().splitlines()) == 1


def test_fewshot_refuses_a_corpus_edited_since_training(corpus, tmp_path):
    from model.studies.common.task_scoring import Options
    from model.studies.fewshot.run import evaluate_checkpoint

    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=2))
    swap_a_for_x(corpus)
    with pytest.raises(UserError, match=r"the corpus .* has another vocabulary"):
        evaluate_checkpoint(out / "ckpt.pt", Options(items=2, windows=2, tasks=()))


def test_a_kill_while_metrics_are_rewritten_loses_no_record(corpus, tmp_path):
    """Resuming rewrites metrics.jsonl without the records after the checkpoint. A process
    killed in the middle of that write (here by the kernel, at a 100-byte file size limit)
    must leave the old file whole, for the next resume to redo the rewrite."""
    import json
    import resource

    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=6))
    before = (out / "metrics.jsonl").read_text()
    assert len(before) > 600
    # (Python ignores SIGXFSZ; the child restores the default action: death)
    rewrite = ("import signal; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
               f"from model.train.runlog import RunLog; RunLog({str(out)!r}, {{}}, resume_step=3); "
               "print('rewritten')")
    done = subprocess.run(
        [sys.executable, "-c", rewrite], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100)))
    assert done.returncode == -signal.SIGXFSZ and "rewritten" not in done.stdout
    assert (out / "metrics.jsonl").read_text() == before
    train(tiny_config(corpus, out, max_iters=6, init_from="resume"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [0, 3, 6]


def one_line_error(capsys, *argv) -> str:
    from model.cli import main

    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


TINY = ["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--batch_size=2",
        "--max_iters=2", "--eval_interval=1", "--eval_batches=1", "--dtype=float32"]


@pytest.mark.parametrize("arg,message", [
    ("--seed=-1", "seed must be from 0 to 2**63 - 1, got -1"),
    ("--seed=99999999999999999999999", "seed must be from 0 to 2**63 - 1"),
    ("--threads=100000", "threads=100000 is not possible here"),
])
def test_numbers_out_of_range_in_train(capsys, corpus, tmp_path, arg, message):
    err = one_line_error(capsys, "train", f"--dataset={corpus}", f"--out_dir={tmp_path / 'o'}",
                         *TINY, arg)
    assert message in err
    assert not (tmp_path / "o" / "ckpt.pt").exists()


@pytest.mark.parametrize("arg,message", [
    ("--seed=-1", "seed must be from 0 to 2**63 - 1, got -1"),
    ("--seed=99999999999999999999999", "seed must be from 0 to 2**63 - 1"),
    ("--temperature=1e-45", "temperature must be 0 (greedy) or more, and at least 1e-6"),
])
def test_numbers_out_of_range_in_sample(capsys, corpus, tmp_path, arg, message):
    train(tiny_config(corpus, tmp_path / "r", max_iters=2))
    assert message in one_line_error(capsys, "sample", f"--out_dir={tmp_path / 'r'}", arg)


@pytest.mark.parametrize("args,message", [
    (["--fixed_minutes=nan"], "fixed_minutes must be 0 or more, and finite, got nan"),
    (["--threads=100000"], "threads=100000 is not possible here"),
])
def test_numbers_out_of_range_in_bench(capsys, args, message):
    assert message in one_line_error(capsys, "bench", *args)


def test_bench_finds_its_default_recipe_from_any_folder(monkeypatch):
    """Issue 12 item 17 (the tests run in a temporary folder, not in the checkout)."""
    import model.cli.bench as bench
    from model.cli import main

    seen = {}
    monkeypatch.setattr(bench, "fixed_time_comparison", lambda m, recipe, *a: seen.update(r=recipe))
    assert main(["bench", "--fixed_minutes=1"]) == 0
    assert Path(seen["r"]).is_file() and Path(seen["r"]).name == "shakespeare_char.toml"


def damaged_study(tmp_path: Path) -> tuple[Path, str]:
    from model.studies.common.plan import load_plan

    root = tmp_path / "study"
    first = load_plan("quick").runs()[0].name
    (root / first).mkdir(parents=True)
    (root / first / "summary.json").write_text('{"val_loss": 1.2, ')  # torn
    (root / "plan.json").write_text("{}")
    return root, first


def test_a_damaged_summary_is_named_by_report_and_study(capsys, corpus, tmp_path):
    root, first = damaged_study(tmp_path)
    for argv in (["report", str(root)],
                 ["study", "--preset=quick", f"--dataset={corpus}", f"--out={root}"]):
        err = one_line_error(capsys, *argv)
        assert f"{first}/summary.json is damaged (not JSON" in err and "delete it" in err
    assert not (root / first / "ckpt.pt").exists()  # refused before any training


@pytest.mark.parametrize("damage,message", [
    (lambda s: s.pop("optimizer"), r"cannot be resumed \(no optimizer\)"),
    (lambda s: s["model"].pop("lm_head.weight", None) if "lm_head.weight" in s["model"]
     else s["model"].pop("wte.weight"), r"cannot be resumed \(weight \S+ missing"),
    (lambda s: s["model"].update(extra=s["model"]["wte.weight"]),
     r"cannot be resumed \(an unknown weight extra\)"),
])
def test_resume_names_what_a_checkpoint_lacks(corpus, tmp_path, damage, message):
    import torch

    out = tmp_path / "r"
    train(tiny_config(corpus, out, max_iters=3))
    state = torch.load(out / "ckpt.pt", weights_only=True)
    damage(state)
    torch.save(state, out / "ckpt.pt")
    with pytest.raises(UserError, match=message + ".*--init_from=scratch in a new --out_dir"):
        train(tiny_config(corpus, out, max_iters=6, init_from="resume"))


def test_random_bytes_as_a_checkpoint_say_what_the_file_is_not(capsys, corpus, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(os.urandom(5000))
    err = one_line_error(capsys, "sample", f"--out_dir={out}")
    assert "not a complete torch file" in err and "weights_only" not in err
    assert "the previous checkpoint" in err and "--init_from=scratch in a new --out_dir" in err
    err = one_line_error(capsys, "train", f"--dataset={corpus}", f"--out_dir={out}", *TINY,
                         "--init_from=resume")
    assert "not a complete torch file" in err


def test_weight_decay_must_be_finite(capsys, corpus, tmp_path):
    err = one_line_error(capsys, "train", f"--dataset={corpus}", f"--out_dir={tmp_path / 'o'}",
                         *TINY, "--weight_decay=inf")
    assert "weight_decay must be 0 or more, and finite, got inf" in err
    assert not (tmp_path / "o" / "ckpt.pt").exists()  # refused up front, not after training


def test_a_config_path_that_is_a_folder(capsys, tmp_path):
    (tmp_path / "recipes").mkdir()
    err = one_line_error(capsys, "train", str(tmp_path / "recipes"), *TINY)
    assert "is a folder, not a TOML file" in err and "not found" not in err


def test_sample_accepts_a_run_folder_as_ckpt(capsys, corpus, tmp_path):
    from model.cli import main

    train(tiny_config(corpus, tmp_path / "r", max_iters=2))
    capsys.readouterr()
    assert main(["sample", f"--ckpt={tmp_path / 'r'}", "--prompt=The", "--max_new_tokens=5"]) == 0
    assert capsys.readouterr().out.startswith("The")


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB file system (tmpfs), for faults a full or read-only disk causes."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode:
        pytest.skip("mounting a tmpfs needs root (or CAP_SYS_ADMIN); the fault is not faked")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_inside_torch_save_is_one_line(small_disk, corpus):
    (small_disk / "filler").write_bytes(b"x" * 150_000)  # leaves less than a checkpoint's size
    with pytest.raises(UserError, match="disk full while saving .*ckpt.pt; nothing was saved"):
        train(tiny_config(corpus, small_disk / "run"))
    assert list((small_disk / "run").iterdir()) == []  # no torn ckpt.pt.tmp filling the disk


def test_prepare_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk, corpus, tmp_path):
    from model.data.prepare import prepare

    big = tmp_path / "big.txt"
    big.write_text((corpus / "work0.txt").read_text() * 20)  # 2 x 190 KB of uint16 tokens
    with pytest.raises(UserError, match=r"cannot write the prepared data .* \(disk full\)"):
        prepare(str(big), "char", small_disk)
    assert list(small_disk.iterdir()) == []


def test_read_only_folders_name_the_path_and_the_cause(small_disk, corpus, capsys, monkeypatch):
    import torch
    from model.train import checkpoint

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(UserError, match=r"cannot write .*ckpt.pt \(Read-only file system\)"):
        checkpoint.save(small_disk / "ckpt.pt", {"model": {"w": torch.zeros(3)}})
    err = one_line_error(capsys, "train", f"--dataset={corpus}", f"--out_dir={small_disk}", *TINY)
    assert "Read-only file system" in err and str(small_disk) in err
    monkeypatch.setenv("TINYGPT_CACHE", str(small_disk / "cache"))
    err = one_line_error(capsys, "prepare", "--tokenizer=gpt2")
    assert "cannot make the download cache" in err and "TINYGPT_CACHE" in err


def test_home_on_dev_null_with_the_gpt2_tokenizer(capsys, monkeypatch):
    monkeypatch.delenv("TINYGPT_CACHE")
    monkeypatch.setenv("HOME", "/dev/null")
    err = one_line_error(capsys, "prepare", "--tokenizer=gpt2")
    assert "cannot make the download cache /dev/null/.cache/tinygpt" in err


PREPARE = ("import sys; from model.data.prepare import prepare; "
           "prepare(sys.argv[1], 'char', sys.argv[2])")


def test_two_processes_preparing_one_corpus_at_once(corpus, tmp_path):
    import json
    import shutil

    big = tmp_path / "big.txt"
    big.write_text((corpus / "work0.txt").read_text() * 100)
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(2):
        shutil.rmtree(data, ignore_errors=True)
        kids = [subprocess.Popen([sys.executable, "-c", PREPARE, str(big), str(data)], env=env,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        errors = [k.communicate()[1] for k in kids]
        assert [k.returncode for k in kids] == [0, 0], errors
        assert [p.name for p in data.iterdir()] == ["big-char"]  # no temporary folder left
        meta = json.loads((data / "big-char" / "meta.json").read_text())
        assert (data / "big-char" / "train.bin").stat().st_size == \
            2 * meta["counts"]["train"]["tokens"]


def test_a_corpus_too_rich_for_16_bit_tokens(capsys, tmp_path):
    rich = tmp_path / "rich.txt"
    rich.write_text("".join(chr(0x20000 + i) for i in range(70_000)) * 2)
    err = one_line_error(capsys, "prepare", f"--dataset={rich}", f"--data_root={tmp_path / 'd'}")
    assert "70,000 distinct characters, more than the 65,536" in err
    assert list((tmp_path / "d").glob("*")) == []


def test_a_killed_prepare_leaves_no_folder_for_good(corpus, tmp_path):
    from model.data.prepare import prepare

    data = tmp_path / "data"
    dead = data / "corpus-char.tmp-999999999-abc"  # a pid no process has
    live = data / f"corpus-char.tmp-{os.getpid()}-abc"
    for folder in (dead, live):
        folder.mkdir(parents=True)
    prepare(str(corpus), "char", data)
    assert not dead.exists() and live.exists()


@pytest.mark.skipif(torch.version.cuda is not None, reason="a CUDA build of torch maps more "
                    "than the 3 GB limit at import; test_cuda.py runs out of GPU memory instead")
@pytest.mark.parametrize("args", [["--n_embd=40000", "--n_head=1", "--n_layer=1"]])
def test_running_out_of_memory_is_one_line(corpus, tmp_path, args):
    """A real allocation failure: the child may use 3 GB of address space (ulimit -v)."""
    import resource

    limit = 3 << 30
    done = subprocess.run(
        [sys.executable, "-m", "model.cli", "train", f"--dataset={corpus}",
         f"--out_dir={tmp_path / 'o'}", "--block_size=16", "--max_iters=1", "--dtype=float32",
         "--threads=1", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr[-2000:]
    assert err[0].startswith("error: out of memory: 19.2 GB did not fit; lower --batch_size")


def test_fewshot_names_a_relative_dataset_from_the_checkpoint(corpus, tmp_path, monkeypatch,
                                                              capsys):
    from model.cli import main

    monkeypatch.chdir(corpus.parent)
    train(tiny_config("corpus", tmp_path / "r", max_iters=2))  # a relative --dataset
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fewshot = ["fewshot", str(tmp_path / "r"), "--tasks=none", "--items=2", "--windows=2",
               f"--out={tmp_path / 'fs'}"]
    err = one_line_error(capsys, *fewshot)
    assert "corpus corpus (the path" in err and "ckpt.pt was trained with)" in err
    assert "--dataset" in err
    assert main([*fewshot, f"--dataset={corpus}"]) == 0


def test_metrics_on_a_full_disk_name_the_file(small_disk):
    from model.train.runlog import RunLog

    log = RunLog(small_disk, {})
    with pytest.raises(OSError):  # fill the file system to the last byte
        with open(small_disk / "filler", "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
    with pytest.raises(UserError, match=r"cannot append to .*metrics.jsonl \(disk full\)"):
        log.log({"step": 1, "train_loss": 1.0, "note": "x" * 8192})


def test_other_write_errors_name_the_file(small_disk, corpus, tmp_path, capsys):
    train(tiny_config(corpus, tmp_path / "r", max_iters=2))
    (small_disk / "fs").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    err = one_line_error(capsys, "fewshot", str(tmp_path / "r"), "--tasks=none", "--items=2",
                         "--windows=2", f"--out={small_disk / 'fs'}")
    assert "results.json" in err and "Read-only file system" in err
