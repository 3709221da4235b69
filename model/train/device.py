"""Device and precision: which device to run on, in which dtype, with how many CPU threads.

Timing (the matmul peak MFU is reported against, medians of alternating measurements)
lives in timing.py; autocast and the loss scaler, in runtime.py; the probe that times
both precisions on a CPU with bf16 units, in step.py.
"""
from __future__ import annotations

import functools
import os

import torch

from ..errors import UserError


def pick_device(name: str = "auto") -> str:
    """The device to run on: `name`, checked, or the best available for "auto"."""
    if name.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
        raise UserError(f"device={name!r} is not one of auto, cpu, cuda (or cuda:N), mps")
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is visible; use --device=cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device=mps but MPS is not available; use --device=cpu or auto")
    return name


@functools.cache  # asked on every Muon step; the answer cannot change within a process
def cpu_has_bf16() -> bool:
    """True where the CPU has native bf16 matmul (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fastest_matmul_dtype(device: str) -> torch.dtype:
    """bf16 where the device has units for it, else fp32: the precision for work that
    tolerates bf16's rounding and needs only speed (Muon's orthogonalisation). On a CPU
    without bf16 units, bf16 matmuls are emulated, several times slower than fp32's."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if device == "cpu" and cpu_has_bf16() else torch.float32


def pick_dtype(device: str, name: str = "auto") -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def set_threads(n: int) -> None:
    """torch's CPU threads; 0 keeps its default. Far more threads than cores cannot help, and
    OpenMP crashes outright (a segfault, no message) asked for 100,000 of them."""
    cores = os.cpu_count() or 1
    if not 0 <= n <= cores:
        raise UserError(f"threads={n} is not possible here: use 0 (torch's default) or at most "
                        f"{cores}, the CPU cores of this machine")
    if n > 0:
        torch.set_num_threads(n)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{device} ({torch.get_num_threads()} threads)"
