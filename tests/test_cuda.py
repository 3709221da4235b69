"""The CUDA paths: KV-cache decoding, exact resume with the GPU's own random stream, mixed
precision (bf16, and fp16 through the loss scaler), and DDP over nccl. Every test here needs
a CUDA GPU and skips, saying so, where none is visible; scripts/gpu_check.sh runs them on a
GPU machine. There the rest of the suite runs on the GPU too (device=auto picks it)."""
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import one_torchrun_process_matches_plain_training, tiny_config
from model.infer.generate import generate
from model.nn.config import named
from model.nn.gpt import GPT
from model.train.runlog import read_metrics
from model.train.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU; none is visible here")
ROOT = Path(__file__).resolve().parents[1]


def checkpoint(folder: Path) -> dict:
    return torch.load(folder / "ckpt.pt", weights_only=True, map_location="cpu")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ["gpt2", "modern"])
@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0, seed=5),
                                      dict(temperature=0.8, top_k=10, top_p=0.9, seed=9)])
def test_kv_cache_matches_full_recomputation_on_cuda(arch, sampling):
    torch.manual_seed(0)
    model = GPT(named("nano-cpu", arch, block_size=64)).cuda().eval()
    prompt = torch.randint(0, 65, (2, 7), device="cuda")
    cached = generate(model, prompt, 57, use_cache=True, **sampling)
    full = generate(model, prompt, 57, use_cache=False, **sampling)
    assert cached.shape == (2, 64) and cached.device.type == "cuda"
    assert torch.equal(cached, full)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_resume_on_cuda_is_bitwise_identical(corpus, tmp_path, dtype):
    """Dropout draws from the GPU's generator, so its state must travel in the checkpoint;
    a second uninterrupted run tells a kernel that is not deterministic from a resume bug."""
    common = dict(max_iters=8, eval_interval=4, dropout=0.1, dtype=dtype, device="cuda")
    train(tiny_config(corpus, tmp_path / "full", keep_checkpoints=True, **common))
    train(tiny_config(corpus, tmp_path / "again", **common))
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(tmp_path / "full" / "ckpt_000004.pt", part / "ckpt.pt")
    train(tiny_config(corpus, part, init_from="resume", **common))
    full, again, resumed = (checkpoint(tmp_path / d) for d in ("full", "again", "part"))
    assert "cuda_rng" in full and full["dtype"] == dtype
    deterministic = same_weights(full["model"], again["model"])
    exact = same_weights(full["model"], resumed["model"])
    assert deterministic and exact, (f"two uninterrupted runs equal: {deterministic}; "
                                     f"the resumed run equals them: {exact}")
    assert full.get("scaler") == resumed.get("scaler")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_training_on_cuda_learns(corpus, tmp_path, dtype):
    summary = train(tiny_config(corpus, tmp_path / "r", max_iters=30, eval_interval=15,
                                dtype=dtype, device="cuda"))
    vals = [r["val_loss"] for r in read_metrics(tmp_path / "r") if "val_loss" in r]
    assert summary["dtype"] == dtype
    assert all(map(math.isfinite, vals)) and vals[-1] < vals[0] - 0.5
    state = checkpoint(tmp_path / "r")
    if dtype == "float16":  # the scaler ran: its scale is saved and still a usable number
        assert 0 < state["scaler"]["scale"] < float("inf")
    else:
        assert "scaler" not in state


def test_ddp_one_nccl_process_matches_plain_training(corpus, tmp_path):
    """torchrun with one process joins an nccl group and wraps the model in DDP: the path a
    multi-GPU run takes, on one GPU. Its weights match a plain run's to float32 rounding."""
    one_torchrun_process_matches_plain_training(corpus, tmp_path, "cuda", "nccl")


def test_running_out_of_gpu_memory_is_one_line(corpus, tmp_path):
    """A real CUDA allocation failure: 400,000 windows of 512 tokens are tens of GB a tensor."""
    done = subprocess.run(
        [sys.executable, "-m", "model.cli", "train", f"--dataset={corpus}", "--device=cuda",
         f"--out_dir={tmp_path / 'o'}", "--n_layer=1", "--n_head=1", "--n_embd=64",
         "--block_size=512", "--batch_size=400000", "--max_iters=1", "--dtype=float32"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr[-2000:]
    assert err[0].startswith("error: out of memory: ") and "did not fit" in err[0]
