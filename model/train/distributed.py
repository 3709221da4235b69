"""Data-parallel training under torchrun: gloo on CPU, nccl on GPU."""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UserError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False  # in a process group (under torchrun, even with one process)
    backend: str = ""      # the group's: "nccl" on GPUs, "gloo" on CPUs

    @property
    def master(self) -> bool:
        return self.rank == 0


def init(device: str) -> Dist:
    """Join the process group torchrun describes in the environment, if any. One process
    under torchrun joins one too, as nanoGPT's does: the DDP and nccl paths then run on a
    machine with a single GPU."""
    if "RANK" not in os.environ:
        return Dist()
    # torchrun sets all of these; RANK alone (left over in a shell) fails deep inside torch
    missing = [v for v in ("WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise UserError(f"RANK is set but {', '.join(missing)} not: start a run on several "
                        "processes with torchrun, or unset RANK")
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    info = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                enabled=True, backend=backend)
    if device == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()


def total(value: float, info: Dist, device: str = "cpu") -> float:
    """The sum of value over the processes (in float64: it is a sum of sums)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item()


def shutdown(info: Dist) -> None:
    """gloo on this torch can abort at exit unless everything is torn down in
    order: meet at a barrier, let the caller's model and optimizer be freed,
    collect, then destroy the group."""
    if not info.enabled:
        return
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()
