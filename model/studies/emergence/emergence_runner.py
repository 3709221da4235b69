"""Train every run of an emergence plan, resumably, with the probes at every evaluation.

Each run lives in root/<run name>/ with its checkpoint, metrics.jsonl (the instrument
readings ride on the evaluation records; the light ones between evaluations, every
probe_every steps, are records of their own) and, once finished, summary.json. Run the same
command again after a kill: finished runs are skipped, the broken one resumes.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ...data.prepare import Batches, held_out_text, prepare
from ...errors import UserError, make_dir
from ...files import machine, read_json, write_json
from ...train.device import pick_device
from ...train.precision import study_precision
from ...train.runlog import fmt_time, read_metrics
from ...train.train_config import TrainConfig
from ...train.trainer import train
from ..common.pool import LOG, run_parallel
from ..common.runner import PRECISION, share_cores
from ..common.task_scoring import Options
from .emergence_plan import EmergencePlan
from .probes import Probes
from .transition import copy_transition, readings


def run_emergence(plan: EmergencePlan, root: Path, wandb: str = "disabled",
                  threads: int = 0, jobs: int = 1) -> list[dict]:
    """Train the runs of the plan not yet finished, `jobs` at a time (0: as many as suit
    this machine, share_cores); returns every run's summary."""
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
    runs, t0 = plan.runs(), time.perf_counter()
    todo = [r for r in runs if not (root / r.name / "summary.json").exists()]
    jobs, threads = share_cores(jobs, threads, pick_device(plan.train.get("device", "auto")),
                                len(todo))
    print(f"emergence study {plan.name}: {len(runs)} runs of {plan.steps} steps on "
          f"{plan.shape}" + (f", {jobs} at a time, each logging to its folder's {LOG}"
                             if jobs > 1 else ""), flush=True)
    number = {r.name: i for i, r in enumerate(runs, 1)}
    for run in runs:
        if run not in todo:
            print(f"[{number[run.name]}/{len(runs)}] {run.name}: finished earlier, skipped",
                  flush=True)
    configs = {r.name: plan.train_config(r, root / r.name, wandb=wandb, threads=threads)
               for r in todo}
    auto = study_precision([plan.train_config(r, root / r.name, threads=threads) for r in runs],
                           root / PRECISION) if todo else None
    of = {r.name: r for r in todo}

    def started(cfg: TrainConfig) -> None:
        print(f"[{number[cfg.run_name]}/{len(runs)}] {cfg.run_name}", flush=True)

    def finished(cfg: TrainConfig, result: dict) -> None:
        run, out = of[cfg.run_name], Path(cfg.out_dir)
        summary = {**result, **dataclasses.asdict(run), "name": run.name,
                   "transition": run_transition(out, cfg.warmup_iters), "machine": machine()}
        write_json(out / "summary.json", summary)
        t = summary["transition"]
        print(f"[{number[run.name]}/{len(runs)}] {run.name}: copy loss {t['plateau']:.2f} -> "
              f"{t['floor']:.2f}, transition "
              f"{'at step %d' % t['step'] if t['step'] is not None else 'none'} "
              f"({fmt_time(result['wall_s'])})", flush=True)

    # A seed at a time, so a study trained in parts has whole ladders to report; within it the
    # widest and deepest first: the last to finish is then a small run, not a big one alone
    order = sorted(todo, key=lambda r: (plan.seed_rank(r.seed), -r.n_layer * r.n_embd ** 2))
    if jobs == 1:
        for run in order:
            started(configs[run.name])
            finished(configs[run.name], train(configs[run.name], probes, auto))
    else:
        run_parallel([configs[r.name] for r in order], jobs, started, finished, probes, auto)
    print(f"{plan.name}: {len(runs)} runs done ({fmt_time(time.perf_counter() - t0)} in this "
          "session)", flush=True)
    return [read_json(root / r.name / "summary.json") for r in runs]


def run_transition(out: Path, warmup: int) -> dict:
    return copy_transition(readings(read_metrics(out)), start=warmup)


