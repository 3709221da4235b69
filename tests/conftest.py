"""Shared fixtures: a small synthetic corpus, and isolation from the user's
home folder (caches, wandb) for every test."""
import os
import random

# Tiny models and small fits run fastest on one thread, and two test processes
# (the DDP test) must not oversubscribe a 2-core machine: busy-waiting OpenMP
# and OpenBLAS threads slow everything down many times when cores are shared.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

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
    """One download cache for the whole session (the registry sdists are fetched once)."""
    return tmp_path_factory.mktemp("tinygpt-cache")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path, shared_cache):
    monkeypatch.setenv("TINYGPT_CACHE", str(shared_cache))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def corpus(tmp_path):
    """A folder of three small 'works': two for training, the last held out."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(3):
        (folder / f"work{i}.txt").write_text(make_text(400, seed=i))
    return folder


def tiny_config(corpus, out, **overrides):
    """A TrainConfig for a model small enough to train in a second."""
    from model.options import TrainConfig

    values = dict(out_dir=str(out), dataset=str(corpus), n_layer=2, n_head=2, n_embd=32,
                  block_size=32, batch_size=4, max_iters=6, warmup_iters=2, lr=3e-3,
                  eval_interval=3, eval_batches=2, log_interval=2, dtype="float32", threads=1,
                  seed=7)
    values.update(overrides)
    return TrainConfig(**values).validate()
