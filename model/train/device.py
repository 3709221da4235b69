"""Device and precision: which device to run on, in which dtype, with how many CPU threads.

Timing (the matmul peak MFU is reported against, medians of alternating measurements, the
precision measured fastest for matmuls) lives in timing.py; autocast and the loss scaler, in
runtime.py; the probe that times both precisions on a CPU with bf16 units, in step.py.
"""
from __future__ import annotations

import ctypes
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


@functools.cache  # once a process: the setting holds for its life
def keep_freed_memory() -> bool:
    """Have the C library's malloc keep freed blocks of up to 32 MiB for the next tensor,
    rather than hand them back to the OS; True where it took (glibc), False elsewhere.

    glibc maps a large block fresh from the OS and unmaps it on free, and every 4 KiB page of
    a fresh mapping costs a page fault when first written: four whole-split evaluations of
    the speedrun's model took 3.5M faults, and 66k kept. The speedrun ran in 16.8 s against
    18.6 s on AVX2 kernels (the baseline's 66 s unchanged), the 6x160 laptop step 172 ms
    against 177 (docs/speedrun.md)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError, TypeError):  # not glibc: macOS, Windows
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    # Both, in this order: fixing either stops glibc adjusting the other, and a trim threshold
    # alone sent every large block to mmap (the evaluation then took 9.9 s, not 5.6 s). 32 MiB
    # is the most glibc accepts; free memory beyond 256 MiB at the heap's top still goes back.
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 256 << 20))


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{device} ({torch.get_num_threads()} threads)"
