"""Timing: device synchronisation, medians of measurements taken in turn, the measured
matmul peak that MFU is reported against, and the precision those peaks make fastest.

MFU against a hard-coded A100 number says nothing on a laptop. We time a large
matmul on the device in use, in the precision in use, and divide by that.
"""
from __future__ import annotations

import functools
import statistics
import time
from typing import Callable

import torch

from .device import cpu_has_bf16


def in_turn(measures: list[Callable[[], float]], rounds: int) -> list[list[float]]:
    """Each round's measurements (rounds, len(measures)), taken in turn, so that a slow spell
    of the machine (another process, frequency changes) hits every one alike."""
    return [[measure() for measure in measures] for _ in range(rounds)]


def medians(results: list[list[float]]) -> list[float]:
    """The median of each measurement over the rounds of in_turn's results."""
    return [statistics.median(column) for column in zip(*results)]


def medians_in_turn(measures: list[Callable[[], float]], rounds: int) -> list[float]:
    """The median of each measurement over rounds that take them in turn (in_turn)."""
    return medians(in_turn(measures, rounds))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


@functools.lru_cache(maxsize=None)
def peak_flops(device: str, dtype: torch.dtype, budget: float = 0.5) -> float:
    """Measured matmul FLOP/s on this device and dtype: the best n³ product over n = 256,
    512, ... up to 2048 (8192 on a GPU), each n timed for a tenth of the budget. Every run
    pays it before its first step: half a second reads the same peak as one second did
    (AMX: fp32 433-435 against 435-436 GFLOP/s, bf16 2,714-2,846 against 2,721-2,793; AVX2
    kernels: fp32 251 both) in 0.37 s instead of 0.60 s.

    n doubles only while the next product (8x the work) would still be quick: where a
    precision has no hardware units (bf16 on an AVX2-only CPU, about 1 GFLOP/s) one 2048³
    product takes over ten seconds, more than the runs this number serves."""
    # its own generator: drawing from the global one would shift a training run's dropout
    # masks by whether this process had measured the peak before (it is cached)
    gen = torch.Generator(device=device).manual_seed(0)
    best, n, largest = 0.0, 256, 8192 if device == "cuda" else 2048
    while n <= largest:
        seconds = fastest_matmul(device, dtype, n, budget / 10, gen)
        best = max(best, 2 * n ** 3 / seconds)
        if 8 * seconds > budget / 5:
            break
        n *= 2
    return best


def fastest_matmul(device: str, dtype: torch.dtype, n: int, seconds: float,
                   gen: torch.Generator) -> float:
    """The least time of one n³ product, repeated for `seconds` after a warm-up (library
    initialisation, kernel selection)."""
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    a @ b
    sync(device)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        a @ b
        sync(device)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def mfu_peak(device: str, dtype: torch.dtype) -> float:
    """The peak MFU is reported against: the run's own precision's, or float32's where that
    is faster, as it is for a precision the machine only emulates (bf16 without bf16 units:
    against its own crawl of a peak, MFU would read over 100%)."""
    return max(peak_flops(device, dtype), peak_flops(device, torch.float32))


def hardware_peaks(device: str, dtypes: list[torch.dtype]) -> tuple[dict[str, float], list[str]]:
    """The measured peaks of dtypes by short name ("fp32", "bf16"), and a description of each
    for people: a precision slower than float32 is named emulated (or, where the CPU has units
    for it, slower), with no MFU against it."""
    peaks, described = {}, []
    fp32 = peak_flops(device, torch.float32)
    for dtype in dtypes:
        name = SHORT[dtype]
        peak = peak_flops(device, dtype)
        if dtype != torch.float32 and peak < fp32:
            units = device == "cpu" and dtype == torch.bfloat16 and cpu_has_bf16()
            described.append(f"{name} slower than fp32 here ({peak / 1e9:,.0f} GFLOP/s, though "
                             f"the CPU has {name} units)" if units else
                             f"{name} emulated (no {name} units: {peak / 1e9:,.1f} GFLOP/s, "
                             f"slower than fp32)")
        else:
            peaks[name] = peak
            described.append(f"{name} {peak / 1e9:,.0f} GFLOP/s")
    return peaks, described


def fastest_matmul_dtype(device: str) -> torch.dtype:
    """bf16 where the device's bf16 matmuls are faster than fp32's, else fp32: the precision
    for work that tolerates bf16's rounding and needs only speed (Muon's orthogonalisation).
    On a CPU without bf16 units bf16 is emulated, several times slower than fp32; with units
    it is not always faster either (AVX-512 bf16 kernels on an Intel Xeon: 117 GFLOP/s
    against fp32's 205, one thread), so there the measured peaks decide (cached, about a
    second once per process)."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device != "cpu" or not cpu_has_bf16():
        return torch.float32
    faster = peak_flops("cpu", torch.bfloat16) > peak_flops("cpu", torch.float32)
    return torch.bfloat16 if faster else torch.float32


SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
