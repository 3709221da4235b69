"""Run every run of a study plan, resumably, with overall progress and ETA.

Each run lives in root/<run name>/ with its checkpoint, metrics.jsonl and, once
finished, summary.json. Starting the study again skips finished runs and
resumes an interrupted one from its last checkpoint (kill -9 included: the
checkpoint and summary are written atomically).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ..data import Batches, prepare
from ..errors import UserError, make_dir
from ..files import machine, write_json
from ..gpt import flops_per_token, n_nonemb_formula
from ..runlog import fmt_time
from ..trainer import train
from .plan import RunSpec, StudyPlan, config_hash


def run_flops(plan: StudyPlan, spec: RunSpec) -> float:
    model = plan.model(spec.size)
    return spec.tokens * flops_per_token(model, n_nonemb_formula(model))


def ready(plan: StudyPlan) -> None:
    """Prepare the plan's data set and learn its vocabulary size (FLOP budgets need it)."""
    folder = prepare(plan.dataset, plan.tokenizer)
    plan.vocab_size = Batches(folder, plan.block_size).tokenizer.vocab_size


def run_study(plan: StudyPlan, root: Path, wandb: str = "disabled", threads: int = 0) -> list[dict]:
    """Train every run of the plan not yet finished; returns the summaries of all runs."""
    if len(plan.lr) < 3:  # refuse before training, not after, when the fit would
        raise UserError(f"a study fits L(N) over at least 3 sizes; plan {plan.name!r} has "
                        f"{len(plan.lr)} under [lr]")
    ready(plan)
    make_dir(root, "out")
    write_json(root / "plan.json", dataclasses.asdict(plan))  # lets `tinygpt report` redo it
    return run_specs(plan, plan.runs(), root, wandb, threads)


def run_specs(plan: StudyPlan, specs: list[RunSpec], root: Path, wandb: str = "disabled",
              threads: int = 0) -> list[dict]:
    """Train the given runs under root/, skipping finished ones and resuming a broken one."""
    make_dir(root, "out")
    total = sum(run_flops(plan, s) for s in specs)
    done_flops, rate, t0 = 0.0, 0.0, time.perf_counter()
    summaries = []
    for i, spec in enumerate(specs, 1):
        out = root / spec.name
        summary_path = out / "summary.json"
        flops = run_flops(plan, spec)
        if summary_path.exists():
            print(f"[{i}/{len(specs)}] {spec.name}: finished earlier, skipped", flush=True)
            summaries.append(json.loads(summary_path.read_text()))
            done_flops += flops
            continue
        # FLOP/s of the latest run: larger models run at higher MFU, so an average
        # over the small early runs would overstate the time left several-fold.
        eta = f", study ETA about {fmt_time((total - done_flops) / rate)}" if rate else ""
        print(f"[{i}/{len(specs)}] {spec.name} (lr {spec.lr:g}, {spec.tokens:,} tokens): "
              f"{100 * done_flops / total:.0f}% of the study's FLOPs done{eta}", flush=True)
        cfg = plan.train_config(spec, out, wandb=wandb, threads=threads)
        result = train(cfg)
        summary = {**result, "name": spec.name, "size": spec.size, "lr": spec.lr,
                   "seed": spec.seed, "config_hash": config_hash(cfg), "machine": machine()}
        write_json(summary_path, summary)
        print(f"[{i}/{len(specs)}] {spec.name}: val loss {result['val_loss']:.4f} "
              f"in {fmt_time(result['wall_s'])}", flush=True)
        summaries.append(summary)
        done_flops += flops
        rate = flops / max(result["wall_s"], 1e-9)
    print(f"{plan.name}: {len(specs)} runs done ({fmt_time(time.perf_counter() - t0)} "
          f"in this session)", flush=True)
    return summaries
