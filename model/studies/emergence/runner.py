"""Train every run of an emergence plan, resumably, with the probes at every evaluation.

Each run lives in root/<run name>/ with its checkpoint, metrics.jsonl (the instrument
readings ride on the evaluation records) and, once finished, summary.json. Run the same
command again after a kill: finished runs are skipped, the broken one resumes.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ...data.prepare import Batches, held_out_text, prepare
from ...errors import UserError, make_dir
from ...files import machine, read_json, write_json
from ...train.runlog import fmt_time, read_metrics
from ...train.trainer import train
from ..common.scoring import Options
from .plan import EmergencePlan
from .probes import Probes
from .transition import transition


def run_emergence(plan: EmergencePlan, root: Path, wandb: str = "disabled",
                  threads: int = 0) -> list[dict]:
    """Train the runs of the plan not yet finished; returns every run's summary."""
    make_dir(root, "out")
    saved = root / "plan.json"
    if saved.exists() and read_json(saved, "delete it (the finished runs are kept) and run "
                                    "again").get("fingerprint") != plan.fingerprint():
        raise UserError(f"{root} holds an emergence study of another plan; use another --out "
                        "or remove that folder")
    write_json(saved, {**dataclasses.asdict(plan), "fingerprint": plan.fingerprint()})
    folder = prepare(plan.dataset, plan.tokenizer)
    tokenizer = Batches(folder, plan.block_size).tokenizer
    opts = Options(items=plan.fewshot_items, tasks=tuple(plan.fewshot_tasks),
                   ks=tuple(plan.fewshot_k))
    probes = Probes(held_out_text(folder), tokenizer, plan.fewshot_steps(), opts)
    runs, summaries, t0 = plan.runs(), [], time.perf_counter()
    print(f"emergence study {plan.name}: {len(runs)} runs of {plan.steps} steps on "
          f"{plan.shape}", flush=True)
    for i, run in enumerate(runs, 1):
        out = root / run.name
        if (out / "summary.json").exists():
            print(f"[{i}/{len(runs)}] {run.name}: finished earlier, skipped", flush=True)
            summaries.append(read_json(out / "summary.json"))
            continue
        print(f"[{i}/{len(runs)}] {run.name}", flush=True)
        cfg = plan.train_config(run, out, wandb=wandb, threads=threads)
        result = train(cfg, probes)
        summary = {**result, **dataclasses.asdict(run), "name": run.name,
                   "transition": run_transition(out, cfg.warmup_iters), "machine": machine()}
        write_json(out / "summary.json", summary)
        t = summary["transition"]
        print(f"[{i}/{len(runs)}] {run.name}: copy loss {t['plateau']:.2f} -> {t['floor']:.2f}, "
              f"transition {'at step %d' % t['step'] if t['step'] is not None else 'none'} "
              f"({fmt_time(result['wall_s'])})", flush=True)
        summaries.append(summary)
    print(f"{plan.name}: {len(runs)} runs done ({fmt_time(time.perf_counter() - t0)} in this "
          "session)", flush=True)
    return summaries


def evaluations(out: Path) -> list[dict]:
    """A run's evaluation records that carry the probes' readings, in step order."""
    return sorted((r for r in read_metrics(out) if "copy_loss" in r), key=lambda r: r["step"])


def run_transition(out: Path, warmup: int) -> dict:
    rows = evaluations(out)
    return transition([r["step"] for r in rows], [r["copy_loss"] for r in rows], start=warmup)


