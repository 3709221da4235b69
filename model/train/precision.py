"""The precision a fresh run trains in, chosen for the machine at hand.

Presets and recipes name no precision: "auto" means the fastest one that costs no measurable
loss. On a GPU that is bf16 (fp16 where bf16 is missing). On a CPU it depends on the
machine's units and on the model's shape: a CPU without bf16 units (AVX2 only) only emulates
bf16, several times slower than fp32, so it trains in fp32 without asking; a CPU with them
(AVX-512 bf16, AMX) is faster in bf16 for wide layers and slower for tiny ones, so a short
probe times both on the run's own shape and thread count. The probe's answer is cached per
machine and shape (probes.json in the download cache), and every run records the choice and
why it was made. A study decides once for all its runs (study_precision): a probe per size
would split its ladder between the two precisions.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

import torch

from ..data.fetch import cache_dir
from ..data.prepare import Batches, prepare
from ..errors import UserError
from ..files import cpu_name, read_json, write_json
from ..nn.gpt import GPT, flops_per_token
from .device import pick_device, pick_dtype, set_threads
from .optim import fused_adamw
from .runtime import Runtime
from .step import Batch, StepTimer, interleaved, micro_batches
from .train_config import TrainConfig


class Choice(NamedTuple):
    dtype: torch.dtype
    why: str  # for the run's start line, its summary and a study's report


def faster_cpu_dtype(model: torch.nn.Module, cfg: TrainConfig, micro: list[Batch],
                     rounds: int = 5, margin: float = 1.2) -> tuple[torch.dtype, float]:
    """bfloat16 if the training step runs `margin` times faster in it than in float32, and
    bf16's speed over fp32's.

    The steps alternate between the two precisions, so a slow spell of the machine hits
    both, and the median decides. bf16 must win clearly, because it also costs loss: in the
    laptop study it made 4x72 both no faster and 0.015 nats worse when a shorter probe
    picked it. The steps train copies of the model, which is left as it was given; they run
    eager, as compiling both copies would cost more than the probe.
    """
    eager = dataclasses.replace(cfg, compile=False)
    timers = [StepTimer(copy.deepcopy(model), eager, Runtime("cpu", dtype), micro,
                        fused_adamw("cpu"), warmup=1)
              for dtype in (torch.float32, torch.bfloat16)]
    fp32, bf16 = interleaved(timers, 1, rounds)
    return (torch.bfloat16 if bf16 > margin * fp32 else torch.float32), bf16 / fp32


def machine_key() -> str:
    """What makes two CPUs time alike: the processor, the kernels torch may use on it (which
    ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA can lower), torch's version, the threads."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return (f"{cpu_name()} | {torch.backends.cpu.get_cpu_capability()} {isa} | "
            f"torch {torch.__version__} | {torch.get_num_threads()} threads")


def shape_key(model: torch.nn.Module, cfg: TrainConfig) -> str:
    """The model's architecture and the step's windows, hashed: what the probe's timing
    depends on besides the machine."""
    shape = {"model": dataclasses.asdict(model.cfg), "batch": cfg.batch_size,
             "block": cfg.block_size, "grad_accum": cfg.grad_accum}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def cached_probe(model: torch.nn.Module, cfg: TrainConfig, batches: Batches,
                 rule: str = "auto: a probe of this shape") -> Choice:
    """The probe's answer for this machine and shape, timed now or read from the cache, its
    why led by `rule`. A cache that cannot be read is timed over; one that cannot be written
    costs only a probe."""
    key = f"{machine_key()} | {shape_key(model, cfg)}"
    try:
        path = cache_dir() / "probes.json"
    except UserError:  # no cache folder can be made: probe every time
        path = None
    try:
        cache = json.loads(path.read_text()) if path else {}
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):  # none yet, or damaged: it is only a cache
        cache = {}
    seen = cache.get(key)
    if isinstance(seen, dict) and seen.get("dtype") in ("float32", "bfloat16") \
            and isinstance(seen.get("speedup"), (int, float)):
        return Choice(getattr(torch, seen["dtype"]), probed(rule, seen["speedup"], "cached"))
    with torch.random.fork_rng():  # the probe's dropout must not move the run's RNG
        dtype, speedup = faster_cpu_dtype(model, cfg, micro_batches(batches, cfg, 0))
    cache[key] = {"dtype": str(dtype).removeprefix("torch."), "speedup": round(speedup, 3)}
    if path is not None:
        with contextlib.suppress(UserError):  # a read-only or full cache: the run goes on
            write_json(path, cache)
    return Choice(dtype, probed(rule, speedup, "timed now"))


def probed(rule: str, speedup: float, when: str) -> str:
    """The why of a probed choice: its rule, then its numbers in brackets (a report groups
    runs by the rule alone)."""
    return f"{rule} [bf16 at {speedup:.2f}x fp32's speed, {when}; needs 1.2x]"


def fresh_run_precision(cfg: TrainConfig, model: torch.nn.Module, batches: Batches,
                        device_type: str, distributed: bool, auto: Choice | None = None) -> Choice:
    """The precision a fresh run of cfg starts in, and why: cfg.dtype as named; for auto, what
    the run's study decided for all its runs (`auto`, from study_precision), or else the
    device's best, where on a CPU with bf16 units the cached probe decides (not under
    torchrun: each process would time for itself, maybe differently)."""
    dtype = pick_dtype(device_type, cfg.dtype)
    if cfg.dtype != "auto":
        return Choice(dtype, "named by the config")
    if auto is not None:
        return auto
    if device_type != "cpu":
        return Choice(dtype, f"auto: the fastest {device_type} precision")
    if dtype == torch.float32:
        return Choice(dtype, "auto: no bf16 units on this CPU, where bf16 is emulated")
    if distributed:
        return Choice(dtype, "auto: bf16 units on this CPU; no probe under torchrun")
    return cached_probe(model, cfg, batches)


def study_precision(configs: list[TrainConfig], saved: Path) -> Choice | None:
    """What dtype = "auto" means for every run of a study (configs: all its runs, finished or
    not), decided once and kept in `saved`; None where each run's own auto already gives every
    run one precision (a GPU's fast one; fp32 on a CPU without bf16 units) or no run says auto.

    On a CPU with bf16 units a probe per run would split a ladder, fp32 for the narrow sizes
    and bf16 for the wide ones, and a size near the margin flips with the machine's load: the
    fitted exponent would mix model size with precision. So the smallest model of the runs
    that say auto is probed, where bf16 gains least and costs most loss, at the runs' thread
    count, and its answer holds for all of them. A resumed study, in this session or another,
    reads the decision back rather than timing again (a busy machine might answer otherwise).
    """
    auto = [c for c in configs if c.dtype == "auto"]
    if not auto or pick_device(auto[0].device) != "cpu" or pick_dtype("cpu") != torch.bfloat16:
        return None
    if saved.exists():
        choice = read_decision(saved)
    else:
        cfg = min(auto, key=lambda c: flops_per_token(c.gpt_config(vocab_size=1)))
        batches = Batches(prepare(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)
        gcfg = cfg.gpt_config(batches.tokenizer.vocab_size)
        rule = f"auto for the whole study: a probe of its smallest size {gcfg.n_layer}x{gcfg.n_embd}"
        threads = torch.get_num_threads()
        set_threads(cfg.threads)
        try:
            choice = cached_probe(GPT(gcfg), cfg, batches, rule)
        finally:
            torch.set_num_threads(threads)
        write_json(saved, {"dtype": str(choice.dtype).removeprefix("torch."), "why": choice.why})
    print(f"every run that says dtype=auto trains in {str(choice.dtype).removeprefix('torch.')}"
          f" ({choice.why}; kept in {saved})", flush=True)
    return choice


def read_decision(path: Path) -> Choice:
    """A study's decision as study_precision wrote it, or a one-line UserError."""
    fix = ("delete it and the study decides again (runs it has trained keep their precision, "
           "so its ladder may then mix two)")
    saved = read_json(path, fix, keys=("dtype", "why"))
    if saved["dtype"] not in ("float32", "bfloat16") or not isinstance(saved["why"], str):
        raise UserError(f"{path} is damaged (dtype {saved['dtype']!r} is not float32 or "
                        f"bfloat16, or its why is not a text); {fix}")
    return Choice(getattr(torch, saved["dtype"]), saved["why"])
