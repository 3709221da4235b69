"""Where and how a model trains: the device, the precision and the processes it trains with.

Training, the benchmark and the precision probe run the one step (step.py) over a Runtime:
it owns autocast, the copy of batches to the device, and, in float16, the gradient scaler.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .distributed import Dist


@dataclass
class Runtime:
    device: str = "cpu"                  # "cpu", "cuda", "cuda:N" or "mps"
    dtype: torch.dtype = torch.float32   # the autocast precision; the weights stay float32
    dist: Dist = Dist()
    # float16 gradients below about 6e-8 underflow to zero: the scaler multiplies the loss
    # before backward, divides the gradients back before the optimizer sees them, and skips
    # a step whose gradients overflowed. bfloat16 has float32's range and needs none.
    scaler: torch.amp.GradScaler | None = None
    why: str = ""                        # how the precision was chosen (precision.py)

    def __post_init__(self) -> None:
        if self.scaler is None and self.dtype == torch.float16:
            self.scaler = torch.amp.GradScaler(self.device_type)

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision where it applies; a no-op for float32."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A host tensor on the device. On CUDA it is copied from page-locked memory without
        waiting, so the copy overlaps the GPU's work on what was queued before it."""
        if self.device_type == "cuda" and t.device.type == "cpu":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)
