"""`tinygpt fewshot`'s options: which checkpoints, how many items, which tasks, where.

Apart from run.py so that the tinygpt command reads them without importing the study (and
matplotlib with it, which would write its caches into the home folder for every command).
"""
from __future__ import annotations

import dataclasses

from ...args import positional
from ...errors import UserError, check_values
from ..common.tasks import TASKS


def parse_tasks(spec: str) -> tuple[str, ...]:
    if spec == "all":
        return tuple(TASKS)
    names = tuple(n for n in spec.split(",") if n and n != "none")
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise UserError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}, "
                        "or all, or none (instruments only)")
    return names


@dataclasses.dataclass
class FewshotArgs:
    checkpoints: tuple[str, ...] = positional()  # checkpoint files, or run folders (their ckpt.pt)
    items: int = 200            # prompts per task and k
    seed: int = 0               # draws the items, the controls and the probes
    out: str = "out/fewshot"    # folder for results, figures, report
    tasks: str = "all"          # comma-separated task names, all, or none (instruments only)
    every_checkpoint: bool = False  # the tasks on every checkpoint, not only on each run's last
    windows: int = 2000         # held-out windows for the ICL score
    batch_size: int = 64        # prompts per forward pass
    threads: int = 0            # CPU threads; 0 keeps torch's default
    device: str = "auto"        # "auto" | "cpu" | "cuda" (or cuda:N) | "mps"
    dataset: str = ""           # the corpus the checkpoints were trained on (default: the one named
                                # in each checkpoint)

    def validate(self) -> "FewshotArgs":
        check_values(vars(self), RULES)
        parse_tasks(self.tasks)
        return self


RULES = {
    # an interval needs a spread
    **{k: (lambda v: v >= 2, "at least 2") for k in ("items", "windows")},
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "threads": (lambda v: v >= 0, "0 or more"),
}


def parse_ks(spec: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in spec.split(","))
    except ValueError:
        ks = ()
    if not ks or min(ks) < 0:
        raise UserError(f"ks must be comma-separated numbers of demonstrations (0 or more), got "
                        f"{spec!r}")
    return ks


@dataclasses.dataclass
class LmEvalArgs:
    run: str = positional()      # the run folder (its ckpt.pt) or a checkpoint, of the gpt2 arch
    out: str = "out/lm-eval"     # a new folder: the export (model/), the task files (tasks/), the
                                 # comparison (cross_check.json)
    tasks: str = "all"           # comma-separated task names, or all
    ks: str = "0,1,2,4,8,16"     # demonstrations per prompt (comma-separated)
    items: int = 50              # prompts per task and k
    seed: int = 0                # draws the items (as tinygpt fewshot --seed)
    batch_size: int = 64         # prompts per forward pass, in both scorers
    threads: int = 0             # CPU threads; 0 keeps torch's default
    dataset: str = ""            # the corpus the run was trained on (default: the one it names)

    def validate(self) -> "LmEvalArgs":
        check_values(vars(self), {k: RULES[k] for k in ("items", "batch_size", "threads")})
        parse_tasks(self.tasks)
        parse_ks(self.ks)
        return self
