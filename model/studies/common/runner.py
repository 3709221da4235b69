"""Run every run of a study plan, resumably, with overall progress and ETA.

Each run lives in root/<run name>/ with its checkpoint, metrics.jsonl and, once
finished, summary.json (in a copy committed to docs/, root/runs/<run name>/, without the
checkpoint: runs_folder). Starting the study again skips finished runs and
resumes an interrupted one from its last checkpoint (kill -9 included: the
checkpoint and summary are written atomically).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from ...data.prepare import Batches, prepare
from ...errors import UserError, make_dir
from ...files import machine, read_json, write_json
from ...nn.gpt import flops_per_token, n_nonemb_formula
from ...train.device import pick_device
from ...train.precision import study_precision
from ...train.train_config import TrainConfig
from ...train.runlog import fmt_time
from ...train.trainer import train
from .plan import RunSpec, StudyPlan, check_evaluations, config_hash
from .pool import LOG, run_parallel

PRECISION = "precision.json"  # a study's one decision of what dtype=auto means for its runs


def run_flops(plan: StudyPlan, spec: RunSpec) -> float:
    model = plan.model(spec.size)
    return spec.tokens * flops_per_token(model, n_nonemb_formula(model))


def runs_folder(root: Path) -> Path:
    """The folder that holds a study's runs: root itself, or root/runs in a copy committed to
    docs/, which keeps the runs' summaries and metrics apart from the report and figures."""
    committed = root / "runs"
    return committed if committed.is_dir() else root


def clock_time(root: Path) -> float | None:
    """The study's elapsed time over its sessions, as timing.json keeps it; None before any."""
    timing = root / "timing.json"
    return read_json(timing, keys=("elapsed_s",))["elapsed_s"] if timing.exists() else None


def ready(plan: StudyPlan) -> None:
    """Prepare the plan's data set and learn its vocabulary size (FLOP budgets need it)."""
    folder = prepare(plan.dataset, plan.tokenizer)
    plan.vocab_size = Batches(folder, plan.block_size).tokenizer.vocab_size


def run_study(plan: StudyPlan, root: Path, wandb: str = "disabled", threads: int = 0,
              jobs: int = 1) -> list[dict]:
    """Train every run of the plan not yet finished; returns the summaries of all runs."""
    if len(plan.lr) < 3:  # refuse before training, not after, when the fit would
        raise UserError(f"a study fits L(N) over at least 3 sizes; plan {plan.name!r} has "
                        f"{len(plan.lr)} under [lr]")
    ready(plan)
    check_evaluations(plan)
    make_dir(root, "out")
    write_json(root / "plan.json", dataclasses.asdict(plan))  # lets `tinygpt report` redo it
    return run_specs(plan, plan.runs(), root, wandb, threads, jobs)


def share_cores(jobs: int, threads: int, device: str, runs: int) -> tuple[int, int]:
    """(runs at once, threads each) for --jobs and --threads, 0 meaning "choose". On a CPU
    the default is one run per core, one thread each (pool.py says why); on a GPU, one run."""
    cores = os.cpu_count() or 1
    if jobs == 0:
        jobs = 1 if device != "cpu" else max(1, cores // threads) if threads else cores
    jobs = max(1, min(jobs, runs))
    if jobs > 1 and threads == 0:
        threads = max(1, cores // jobs)
    return jobs, threads


class Ledger:
    """The study folder's bookkeeping: each finished run's summary.json, the progress lines,
    and timing.json, the study's elapsed time summed over sessions (runs side by side
    overlap, so the sum of their wall times overstates it)."""

    def __init__(self, plan: StudyPlan, specs: list[RunSpec], root: Path, jobs: int):
        self.plan, self.root, self.jobs, self.n = plan, root, jobs, len(specs)
        self.index = {s.name: i for i, s in enumerate(specs, 1)}
        self.total = sum(run_flops(plan, s) for s in specs)
        self.done, self.rate = 0.0, 0.0
        self.t0 = time.perf_counter()
        self.before = clock_time(root) or 0.0

    def tag(self, spec: RunSpec) -> str:
        return f"[{self.index[spec.name]}/{self.n}] {spec.name}"

    def skipped(self, spec: RunSpec, cfg: TrainConfig) -> dict:
        summary = read_json(self.root / spec.name / "summary.json")
        old, new = summary.get("config_hash"), config_hash(cfg)
        note = "" if old in (None, new) else (
            f" (its recipe, config {old}, is not what the plan now gives, {new}: delete "
            f"{self.root / spec.name} to train it again)")
        print(f"{self.tag(spec)}: finished earlier, skipped{note}", flush=True)
        self.done += run_flops(self.plan, spec)
        return summary

    def started(self, spec: RunSpec) -> None:
        eta = f", study ETA about {fmt_time((self.total - self.done) / self.rate)}" \
            if self.rate else ""
        print(f"{self.tag(spec)} (lr {spec.lr:g}, {spec.tokens:,} tokens): "
              f"{100 * self.done / self.total:.0f}% of the study's FLOPs done{eta}", flush=True)

    def finished(self, spec: RunSpec, cfg: TrainConfig, result: dict) -> dict:
        summary = {"machine": machine(), **result, "name": spec.name, "size": spec.size,
                   "lr": spec.lr, "seed": spec.seed, "config_hash": config_hash(cfg),
                   "jobs": self.jobs}  # a worker's result names its own machine (its threads)
        write_json(self.root / spec.name / "summary.json", summary)
        flops = run_flops(self.plan, spec)
        self.done += flops
        # FLOP/s of the latest run, times the runs at once: larger models run at higher MFU,
        # so an average over the small early runs would overstate the time left several-fold.
        self.rate = flops / max(result["wall_s"], 1e-9) * self.jobs
        elapsed = time.perf_counter() - self.t0
        write_json(self.root / "timing.json", {"elapsed_s": self.before + elapsed})
        print(f"{self.tag(spec)}: val loss {result['val_loss']:.4f} in "
              f"{fmt_time(result['wall_s'])}", flush=True)
        return summary


def run_specs(plan: StudyPlan, specs: list[RunSpec], root: Path, wandb: str = "disabled",
              threads: int = 0, jobs: int = 1) -> list[dict]:
    """Train the given runs under root/, skipping finished ones and resuming a broken one;
    `jobs` of them at a time (0: as many as suit this machine, share_cores). Every run of the
    plan (given here or not) that says dtype=auto trains in one precision, decided once and
    kept in root/precision.json (study_precision)."""
    make_dir(root, "out")
    todo = [s for s in specs if not (root / s.name / "summary.json").exists()]
    device = pick_device(plan.train.get("device", "auto"))
    jobs, threads = share_cores(jobs, threads, device, len(todo))
    ledger = Ledger(plan, specs, root, jobs)
    summaries = {s.name: ledger.skipped(s, plan.train_config(s, root / s.name))
                 for s in specs if s not in todo}
    configs = {s.name: plan.train_config(s, root / s.name, wandb=wandb, threads=threads)
               for s in todo}
    auto = study_precision([plan.train_config(s, root / s.name, threads=threads)
                            for s in plan.runs()], root / PRECISION) if todo else None
    spec_of = {s.name: s for s in todo}
    if jobs == 1:
        for spec in todo:
            ledger.started(spec)
            result = train(configs[spec.name], auto=auto)
            summaries[spec.name] = ledger.finished(spec, configs[spec.name], result)
    else:
        print(f"{len(todo)} runs, {jobs} at a time with {threads} thread(s) each, the largest "
              f"first; each run's log is in its folder's {LOG}", flush=True)
        by_size = sorted(todo, key=lambda s: -run_flops(plan, s))  # the longest first: the
        # last to finish is then a small run, not the largest one alone on idle cores

        def finished(cfg: TrainConfig, result: dict) -> None:
            summaries[cfg.run_name] = ledger.finished(spec_of[cfg.run_name], cfg, result)

        run_parallel([configs[s.name] for s in by_size], jobs,
                     lambda cfg: ledger.started(spec_of[cfg.run_name]), finished, auto=auto)
    print(f"{plan.name}: {len(specs)} runs done ({fmt_time(time.perf_counter() - ledger.t0)} "
          f"in this session)", flush=True)
    return [summaries[s.name] for s in specs]
