"""Timing: device synchronisation, medians of measurements taken in turn, and the
measured matmul peak that MFU is reported against.

MFU against a hard-coded A100 number says nothing on a laptop. We time a large
matmul on the device in use, in the precision in use, and divide by that.
"""
from __future__ import annotations

import functools
import statistics
import time
from typing import Callable

import torch


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
def peak_flops(device: str, dtype: torch.dtype, n: int = 0, seconds: float = 0.5) -> float:
    """Measured matmul FLOP/s on this device and dtype (best of repeated n³ products)."""
    n = n or (8192 if device == "cuda" else 2048)
    # its own generator: drawing from the global one would shift a training run's dropout
    # masks by whether this process had measured the peak before (it is cached)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    a @ b  # warm-up: library initialisation and kernel selection
    sync(device)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        a @ b
        sync(device)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * n ** 3 / best
