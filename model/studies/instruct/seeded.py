"""tinygpt instruct over training seeds (seeds > 1): the whole pipeline once per seed, each in its
own folder, then one report that pools them.

    <out>/instruct.json        the settings, seeds included (for `tinygpt report <out>`)
    <out>/seed-<s>/            a one-seed pipeline folder: its stages, results, report
    <out>/report.md            the pooled report (seeded_report.py)

A seed retrains every stage from the same base models (SFT, the labeller's rankings, the reward
models, PPO, PPO-ptx, the sweep, DPO, best-of-n) and draws its own prompts, so the seeds are
independent replicates of everything after pretraining. Each seed's folder resumes as a one-seed
pipeline does, stage by stage, so a cut-short run continues where it stopped.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import make_dir
from .context import Context, save_settings, seed_contexts
from .pipeline import run_pipeline
from .seeded_report import write_seeded_report


def run_seeds(ctx: Context) -> Path:
    """Every seed's pipeline in turn (each resumed where it stopped), then the pooled report."""
    make_dir(ctx.root, "out")
    save_settings(ctx)  # so that `tinygpt report` redraws the pooled report
    subs = seed_contexts(ctx)
    for i, sub in enumerate(subs):
        print(f"instruct: seed {sub.cfg.seed} ({i + 1} of {len(subs)}) in {sub.root}", flush=True)
        run_pipeline(sub)
    return write_seeded_report(ctx)
