"""Bad input: one line naming the problem and the fix, exit status 2, nothing lost."""
import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from model.cli import main
from model.errors import UserError
from model.train import checkpoint
from model.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=32", "--batch_size=2",
        "--max_iters=2", "--eval_interval=1", "--eval_batches=1", "--dtype=float32"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.fixture
def trained(corpus, tmp_path):
    out = tmp_path / "trained"
    train(tiny_config(corpus, out, max_iters=2))
    return out


@pytest.mark.parametrize("args,message", [
    (["--bogus=1"], "unknown key 'bogus'"),
    (["--max_iters=ten"], "max_iters='ten' is not a valid int"),
    (["--dataset=/no/such/corpus.txt"], "corpus /no/such/corpus.txt does not exist"),
    (["configs/missing.toml"], "config file configs/missing.toml not found"),
    (["--max_iters"], "cannot read argument '--max_iters': it needs a value"),
    (["-max_iters=5"], "cannot read argument '-max_iters=5'"),
    (["--device=gpu"], "device must be one of 'auto', 'cpu'"),
    (["--probe_interval=-1"], "probe_interval must be 0 or more"),
    (["--synthetic_until=1.5"], "synthetic_until='1.5' is not a valid int"),
    (["--synthetic_until=2"], "synthetic_until (2) must be below max_iters (2)"),
])
def test_bad_train_arguments(capsys, args, message):
    code, err = run_cli(capsys, "train", *TINY, *args)
    assert code == 2 and message in err and err.startswith("error: ") and len(err.splitlines()) == 1


@pytest.mark.parametrize("content,message", [
    (b"", "the corpus is empty"),
    (b"   \n\n", "the corpus is empty"),
    (b"too short for one block\n", "fewer than one block"),
    ("caf\u00e9 au lait\n".encode("latin-1") * 100, "is not UTF-8 text (byte 0xe9 at offset 3)"),
])
def test_bad_corpus(capsys, tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    code, err = run_cli(capsys, "train", f"--dataset={path}", f"--out_dir={tmp_path / 'o'}", *TINY)
    assert code == 2 and message in err


def test_offline_request_for_an_online_source(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_cli(capsys, "prepare", "--dataset=hf:roneneldan/TinyStories")
    assert code == 2 and "HF_HUB_OFFLINE" in err and "shakespeare" in err


def test_missing_checkpoint(capsys, tmp_path):
    code, err = run_cli(capsys, "sample", f"--out_dir={tmp_path / 'none'}")
    assert code == 2 and "no checkpoint at" in err


@pytest.mark.parametrize("corrupt", [
    lambda p: p.write_bytes(b"this is not a checkpoint"),
    lambda p: p.write_bytes(p.read_bytes()[:1000]),          # truncated
    lambda p: torch.save({"weights": 1}, p),                  # someone else's file
])
def test_corrupt_checkpoint(capsys, trained, corrupt):
    corrupt(trained / "ckpt.pt")
    code, err = run_cli(capsys, "sample", f"--out_dir={trained}")
    assert code == 2 and "not a tinygpt checkpoint" in err


def test_incompatible_checkpoint(capsys, trained, corpus):
    state = torch.load(trained / "ckpt.pt", weights_only=True)
    state["model_config"]["n_layer"] = 3
    torch.save(state, trained / "ckpt.pt")
    code, err = run_cli(capsys, "sample", f"--out_dir={trained}")
    assert code == 2 and "does not fit" in err
    code, err = run_cli(capsys, "train", f"--dataset={corpus}", f"--out_dir={trained}",
                        "--init_from=resume", "--n_layer=2", "--n_head=2", "--n_embd=32",
                        "--block_size=32", "--dtype=float32")
    assert code == 2 and "holds a different model (n_layer 3 there, 2 here)" in err


def test_retraining_over_a_checkpoint_is_refused(capsys, trained, corpus):
    before = (trained / "ckpt.pt").read_bytes()
    code, err = run_cli(capsys, "train", f"--dataset={corpus}", f"--out_dir={trained}",
                        "--init_from=scratch", *TINY)
    assert code == 2 and "already exists" in err
    assert (trained / "ckpt.pt").read_bytes() == before


def test_prompt_problems(capsys, trained):
    code, err = run_cli(capsys, "sample", f"--out_dir={trained}", "--prompt=\u00e9t\u00e9")
    assert code == 2 and "characters the char vocabulary lacks" in err
    code, err = run_cli(capsys, "sample", f"--out_dir={trained}", "--prompt=" + "the " * 20)
    assert code == 2 and "the prompt is 80 tokens but the model's context is 32" in err
    code, _ = run_cli(capsys, "sample", f"--out_dir={trained}", "--prompt=" + "the " * 20,
                      "--crop", "--max_new_tokens=5")
    assert code == 0


def test_disk_full_keeps_the_previous_checkpoint(trained, monkeypatch):
    before = (trained / "ckpt.pt").read_bytes()

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(UserError, match="disk full while saving .* previous checkpoint is intact"):
        checkpoint.save(trained / "ckpt.pt", {"model": {}})
    assert (trained / "ckpt.pt").read_bytes() == before
    assert not (trained / "ckpt.pt.tmp").exists()


def test_process_exit_code_and_no_traceback():
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--no_such_key=1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: unknown key 'no_such_key'")


@pytest.mark.parametrize("args,message", [
    (["--device=gpu"], "device='gpu' is not one of"),  # not "corrupt checkpoint"
    (["--top_p=0"], "top_p must be above 0"),
    (["--max_new_tokens=-5"], "max_new_tokens must be at least 1"),
    (["--temperature=-1"], "temperature must be 0 (greedy) or more"),
    (["--top_k=-3"], "top_k must be 0 (off) or more"),
    (["--num_samples=0"], "num_samples must be at least 1"),
    (["--stop=\\x"], "cannot read the escapes"),
    (["--prompt=FILE:."], "is a folder"),
])
def test_bad_sample_arguments(capsys, trained, args, message):
    before = (trained / "ckpt.pt").read_bytes()
    code, err = run_cli(capsys, "sample", f"--out_dir={trained}", *args)
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert (trained / "ckpt.pt").read_bytes() == before


def test_stop_string_keeps_non_ascii_and_reads_escapes():
    from model.infer.sampler import unescape

    assert unescape("\\n\\nROMEO") == "\n\nROMEO"
    assert unescape("été →") == "été →"


def test_out_dir_that_is_a_file(capsys, corpus, tmp_path):
    (tmp_path / "taken").write_text("mine")
    code, err = run_cli(capsys, "train", f"--dataset={corpus}", f"--out_dir={tmp_path / 'taken'}",
                        *TINY)
    assert code == 2 and "cannot make the folder" in err and "--out_dir" in err
    assert (tmp_path / "taken").read_text() == "mine"


def test_unknown_command(capsys):
    code, err = run_cli(capsys, "trian")
    assert code == 2 and err.splitlines()[-1].startswith("error: unknown command 'trian'")

