"""tinygpt instruct: the whole third act in order, each stage skipped once finished and resumed
if it was cut short: SFT of the policy and of every reward-model size, the labeller's rankings,
the reward models, PPO and PPO-ptx against the largest, the over-optimisation sweep (PPO with
no KL penalty against each reward model), DPO, best-of-n against each reward model, the final
comparison and its report."""
from __future__ import annotations

import time
from pathlib import Path

from ...errors import make_dir
from ...files import read_json, write_json
from .bon import run_bon
from .comparisons import run_comparisons
from .context import Context, save_settings
from .dpo import run_dpo
from .evaluate import run_evaluation
from .ppo import ppo_name, run_ppo
from .rm import run_rm
from .sft import run_sft


def timed(ctx: Context, stage: str, work) -> None:
    """Run one stage and note its wall time in this session in timings.json (a stage already
    finished keeps the time it took when it ran)."""
    path = ctx.root / "timings.json"
    timings = read_json(path) if path.exists() else {}
    t0 = time.perf_counter()
    work()
    if stage not in timings:
        timings[stage] = time.perf_counter() - t0
        write_json(path, timings)


def run_pipeline(ctx: Context) -> Path:
    from .instruct_report import write_report
    cfg, largest = ctx.cfg, ctx.cfg.sizes()[-1]
    make_dir(ctx.root, "out")
    save_settings(ctx)  # so that `tinygpt report` can redraw the folder's report
    sizes = list(dict.fromkeys([cfg.policy_size, *cfg.sizes()]))
    for size in sizes:
        timed(ctx, f"base-{size}", lambda: ctx.base(size))
    for size in sizes:
        timed(ctx, f"sft-{size}", lambda: run_sft(ctx, size))
    timed(ctx, "comparisons", lambda: run_comparisons(ctx))
    for size in cfg.sizes():
        timed(ctx, f"rm-{size}", lambda: run_rm(ctx, size))
    for variant in ("", "ptx"):
        timed(ctx, ppo_name(largest, variant), lambda: run_ppo(ctx, largest, variant))
    for size in cfg.sizes():
        timed(ctx, ppo_name(size, "sweep"), lambda: run_ppo(ctx, size, "sweep"))
    timed(ctx, "dpo", lambda: run_dpo(ctx))
    timed(ctx, "best-of-n", lambda: run_bon(ctx))
    timed(ctx, "evaluation", lambda: run_evaluation(ctx))
    return write_report(ctx)
