"""Device and precision: which device to run on, in which dtype, with how many CPU threads.

Timing (the matmul peak MFU is reported against, medians of alternating measurements)
lives in timing.py.
"""
from __future__ import annotations

import contextlib
import os
import time

import torch

from .errors import UserError
from .timing import medians_in_turn


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


def cpu_has_bf16() -> bool:
    """True where the CPU has native bf16 matmul (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(device: str, name: str = "auto") -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def faster_cpu_dtype(model: torch.nn.Module, x: torch.Tensor, rounds: int = 5,
                     margin: float = 1.2) -> torch.dtype:
    """bfloat16 if it trains this model on this batch `margin` times faster than float32.

    On a CPU with bf16 units the answer depends on the shape: bf16 wins for wide
    layers, loses to fp32 for the tiny ones (autocast's casts cost more than the
    faster matmuls save). The passes alternate between the two precisions, so a
    slow spell of the machine hits both, and the median decides. bf16 must win
    clearly, because it also costs loss: in the laptop study it made 4x72 both no
    faster and 0.015 nats worse when a shorter probe picked it.
    """
    def seconds(dtype: torch.dtype) -> float:
        t0 = time.perf_counter()
        with autocast("cpu", dtype):
            _, loss = model(x, x)
        loss.backward()
        return time.perf_counter() - t0

    for dtype in (torch.float32, torch.bfloat16):  # warm-up: kernels and caches
        seconds(dtype)
    fp32, bf16 = medians_in_turn([lambda: seconds(torch.float32),
                                  lambda: seconds(torch.bfloat16)], rounds)
    model.zero_grad(set_to_none=True)
    return torch.bfloat16 if bf16 * margin < fp32 else torch.float32


def autocast(device: str, dtype: torch.dtype):
    """Mixed precision where it applies; a no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=dtype)


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
