"""The precision a run trains in and the peaks MFU is read against, on every CPU class: a
CPU without bf16 units trains in fp32 and orthogonalises Muon's updates in fp32; a probe's
answer is cached per machine and shape; no peak is zero and no MFU tops 100%."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.nn.config import named
from model.nn.gpt import GPT
from model.train import precision
from model.train.optim import Muon, orthogonalised
from model.train.train_config import TrainConfig
from model.train.precision import fresh_run_precision
from model.train.timing import hardware_peaks, mfu_peak, peak_flops

ROOT = Path(__file__).resolve().parents[1]


class Windows:
    """Batches' one method the probe reads: the windows of a step."""

    def train_batch(self, seed, step, shard, batch, repeat_spans, synthetic, unique_copies):
        x = torch.randint(0, 65, (batch, 32), generator=torch.Generator().manual_seed(step))
        return x, x


def model_and_config(**overrides):
    cfg = TrainConfig(**{"block_size": 32, "batch_size": 2, **overrides})
    return GPT(named("2x32", "modern", block_size=32)), cfg


def test_a_cpu_without_bf16_units_trains_in_fp32_without_a_probe(monkeypatch):
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: False)
    monkeypatch.setattr(precision, "faster_cpu_dtype", lambda *a, **k: pytest.fail("probed"))
    model, cfg = model_and_config()
    choice = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert choice.dtype == torch.float32 and "no bf16 units" in choice.why


def test_a_named_precision_is_kept(monkeypatch):
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: False)
    model, cfg = model_and_config(dtype="bfloat16")
    choice = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert choice == (torch.bfloat16, "named by the config")


def test_the_probe_is_cached_per_machine_and_shape(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: True)
    probes = []

    def probe(model, cfg, micro):
        probes.append(cfg.batch_size)
        return torch.bfloat16, 1.5

    monkeypatch.setattr(precision, "faster_cpu_dtype", probe)
    model, cfg = model_and_config()
    first = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    again = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert first.dtype == again.dtype == torch.bfloat16 and probes == [2]
    assert "timed now" in first.why and "cached" in again.why and "1.50x" in again.why
    # another shape is probed anew
    other, wider = model_and_config(batch_size=4)
    fresh_run_precision(wider, other, Windows(), "cpu", distributed=False)
    assert probes == [2, 4]
    # another thread count is another machine for the probe
    monkeypatch.setattr(precision, "machine_key", lambda: "another machine")
    fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert probes == [2, 4, 2]


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"k": "v"}', "\xff"])
def test_a_damaged_probe_cache_is_timed_over_and_rewritten(monkeypatch, tmp_path, damage):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision, "faster_cpu_dtype", lambda *a: (torch.float32, 0.8))
    (tmp_path / "probes.json").write_text(damage, errors="surrogateescape")
    model, cfg = model_and_config()
    choice = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert choice.dtype == torch.float32 and "0.80x" in choice.why
    saved = json.loads((tmp_path / "probes.json").read_text())
    assert [v["dtype"] for v in saved.values() if isinstance(v, dict) and "dtype" in v] \
        == ["float32"]


@pytest.mark.parametrize("shape", [(64, 32), (32, 96), (48, 48)])
def test_muon_in_bf16_is_torchs_muon_and_in_fp32_orthogonalises(monkeypatch, shape):
    torch.manual_seed(0)
    ours, theirs = (torch.nn.Parameter(torch.randn(*shape)) for _ in range(2))
    theirs.data.copy_(ours.data)
    monkeypatch.setattr("model.train.optim.fastest_matmul_dtype", lambda device: torch.bfloat16)
    mine, torchs = Muon([ours], lr=0.02, weight_decay=0.01), \
        torch.optim.Muon([theirs], lr=0.02, weight_decay=0.01)
    for _ in range(3):
        g = torch.randn(*shape)
        ours.grad, theirs.grad = g.clone(), g.clone()
        mine.step()
        torchs.step()
    assert torch.equal(ours, theirs)
    # in fp32: the singular values land near 1 (the quintic's band, roughly 0.5-1.5), and the
    # input is left as it was (fp32 to fp32 is no copy unless asked for)
    g = torch.randn(*shape)
    before = g.clone()
    s = torch.linalg.svdvals(orthogonalised(g, (3.4445, -4.7750, 2.0315), 5, 1e-7,
                                            torch.float32))
    assert torch.equal(g, before) and s.min() > 0.3 and s.max() < 1.6


def test_peaks_are_measured_quickly_and_mfu_reads_against_the_faster_one():
    peak_flops.cache_clear()
    fp32 = peak_flops("cpu", torch.float32)
    assert fp32 > 1e9
    assert mfu_peak("cpu", torch.bfloat16) >= fp32
    peaks, described = hardware_peaks("cpu", [torch.float32, torch.bfloat16])
    assert peaks["fp32"] == fp32 and described[0].startswith("fp32 ")


# Run in a fresh process: oneDNN and ATen read these variables once, at start.
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
UNDER_AVX2 = """
import time, torch
from model.train.device import fastest_matmul_dtype, pick_dtype
from model.train.timing import hardware_peaks, mfu_peak, peak_flops
t0 = time.perf_counter()
peaks, described = hardware_peaks("cpu", [torch.float32, torch.bfloat16])
print("seconds", time.perf_counter() - t0)
print("capability", torch.backends.cpu.get_cpu_capability())
print("auto", pick_dtype("cpu", "auto"), "muon", fastest_matmul_dtype("cpu"))
print("peaks", sorted(peaks), "|", "; ".join(described))
print("mfu_peak_is_fp32", mfu_peak("cpu", torch.bfloat16) == peak_flops("cpu", torch.float32))
"""


def test_limited_to_avx2_kernels_the_choice_is_fp32_and_bf16_reads_as_emulated():
    """ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY make any x86 CPU run AVX2's kernels, as an
    AVX2-only machine (the commonest class) does: bf16 has no units there."""
    if os.uname().machine not in ("x86_64", "AMD64"):
        pytest.skip("the AVX2 limit is an x86 one")
    out = subprocess.run([sys.executable, "-c", UNDER_AVX2], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, **AVX2}, check=True).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["capability"] == "AVX2"
    assert lines["auto"] == "torch.float32 muon torch.float32"
    assert lines["peaks"].startswith("['fp32'] |") and "bf16 emulated" in lines["peaks"]
    assert lines["mfu_peak_is_fp32"] == "True"
    assert float(lines["seconds"]) < 10  # a single 2048³ bf16 product alone takes ~10 s here
