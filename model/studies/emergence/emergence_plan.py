"""An emergence plan: a grid of depths and widths (and smeared-key variants) trained on one
data shape, read from configs/study/<preset>.toml when that file says kind = "emergence".

Every run is an ordinary TrainConfig, evaluated by the study's probes at every evaluation.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...args import cast, check_keys
from ...data import shapes
from ...errors import (UserError, check_values, fraction, plain_name, positive, seeds, whole,
                       whole_or_zero)
from ...train.train_config import TrainConfig
from ..common.plan import check_plan_keys
from ..common.tasks import KS, TASKS


@dataclass(frozen=True)
class GridRun:
    n_layer: int
    n_embd: int
    smear: bool
    seed: int
    natural: bool = False  # a control trained on natural text only, whatever the plan's shape

    @property
    def name(self) -> str:
        tags = "-smear" * self.smear + "-natural" * self.natural
        return f"{self.n_layer}x{self.n_embd}{tags}-s{self.seed}"


@dataclass
class EmergencePlan:
    name: str
    kind: str = "emergence"
    description: str = ""
    dataset: str = "shakespeare"
    tokenizer: str = "char"
    arch: str = "modern"
    block_size: int = 128
    batch_size: int = 64
    steps: int = 2000
    eval_every: int = 100
    probe_every: int = 0          # steps between light readings (the copy probe and prefix
                                  # matching alone) between evaluations; 0: at evaluations only
    lr: float = 1e-3
    head_dim: int = 32            # heads = max(1, width // head_dim)
    depths: list[int] = field(default_factory=lambda: [1, 2])
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    smeared_depths: list[int] = field(default_factory=lambda: [1])
    natural_controls: list[list[int]] = field(default_factory=list)  # [depth, width] pairs
    leave_out: list[list[int]] = field(default_factory=list)  # [depth, width] not trained
    seeds: list[int] = field(default_factory=lambda: [1337])
    # [depth, width, seed]: more seeds for one model of the grid, where a claim rests on it;
    # left out of the fingerprint, so they can join a study already trained
    extra_seeds: list[list[int]] = field(default_factory=list)
    repeat_spans: float = 0.0     # the data shape (model/data/shapes.py)
    synthetic: float = 1.0
    unique_copies: float = 0.0
    synthetic_until: int = 0      # steps of synthetic copy sequences only, then the shares above
    fewshot_at: list[float] = field(default_factory=lambda: [0.5, 1.0])  # fractions of steps
    fewshot_items: int = 100
    fewshot_tasks: list[str] = field(default_factory=lambda: list(TASKS))
    fewshot_k: list[int] = field(default_factory=lambda: [0, 1, 4, 16])
    train: dict = field(default_factory=dict)

    @property
    def shape(self) -> str:
        return shapes.name(self.repeat_spans, self.synthetic, self.unique_copies,
                           self.synthetic_until)

    def runs(self) -> list[GridRun]:
        grid = [(d, w, False) for d in self.depths for w in self.widths
                if [d, w] not in self.leave_out]
        grid += [(d, w, True) for d in self.smeared_depths for w in self.widths]
        runs = [GridRun(d, w, s, seed) for seed in self.seeds for d, w, s in grid]
        runs += [GridRun(d, w, False, seed, natural=True) for seed in self.seeds
                 for d, w in self.natural_controls]
        return runs + [GridRun(d, w, False, seed) for d, w, seed in self.extra_seeds]

    def seed_rank(self, seed: int) -> int:
        """Where a seed comes in training order: the plan's seeds, then its extra seeds."""
        order = self.seeds + [s for *_, s in self.extra_seeds if s not in self.seeds]
        return order.index(seed)

    def fewshot_steps(self) -> set[int]:
        """Evaluation steps at which the few-shot tasks run (rounded to an evaluation)."""
        every = self.eval_every
        return {min(self.steps, round(f * self.steps / every) * every) for f in self.fewshot_at}

    def train_config(self, run: GridRun, out_dir: Path, **extra) -> TrainConfig:
        values = dict(
            out_dir=str(out_dir), dataset=self.dataset, tokenizer=self.tokenizer, arch=self.arch,
            n_layer=run.n_layer, n_embd=run.n_embd, n_head=max(1, run.n_embd // self.head_dim),
            smear_keys=run.smear, block_size=self.block_size, batch_size=self.batch_size,
            max_iters=self.steps, lr=self.lr, seed=run.seed, init_from="auto",
            eval_interval=self.eval_every, log_interval=max(self.eval_every // 5, 1),
            probe_interval=self.probe_every,
            repeat_spans=0.0 if run.natural else self.repeat_spans,
            synthetic=0.0 if run.natural else self.synthetic,
            unique_copies=0.0 if run.natural else self.unique_copies,
            synthetic_until=0 if run.natural else self.synthetic_until,
            run_name=run.name, wandb_group=f"emergence-{self.name}")
        values.update({k: cast(TrainConfig, k, v) for k, v in self.train.items()})
        values.update(extra)
        return TrainConfig(**values).validate()

    def fingerprint(self) -> str:
        """A short hash of everything that shapes the results (not the few-shot schedule's
        presentation): a changed plan does not silently reuse finished runs."""
        # a field added since, at its default, is left out: older studies keep their hash.
        # Extra seeds add runs without changing any other run's recipe (each run's own config
        # hash refuses a changed one), so they never change it
        d = {k: v for k, v in asdict(self).items()
             if k not in ("name", "description", "extra_seeds")
             and not (k in ("unique_copies", "synthetic_until", "probe_every") and v == 0)}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _wholes(v) -> bool:
    return isinstance(v, list) and all(map(whole, v))


VALUES = {
    **{k: (lambda v: isinstance(v, str), "a string")
       for k in ("kind", "description", "dataset", "tokenizer", "arch")},
    **{k: (whole, "a whole number, at least 1") for k in (
        "block_size", "batch_size", "steps", "eval_every", "head_dim", "fewshot_items")},
    "lr": (positive, "a positive number"),
    **{k: (whole_or_zero, "a whole number of steps, 0 or more")
       for k in ("probe_every", "synthetic_until")},
    **{k: (fraction, "a fraction from 0 to 1")
       for k in ("repeat_spans", "synthetic", "unique_copies")},
    "depths": (lambda v: _wholes(v) and v, "a non-empty list of layer counts"),
    "widths": (lambda v: _wholes(v) and v, "a non-empty list of widths"),
    "smeared_depths": (_wholes, "a list of layer counts"),
    "natural_controls": (lambda v: isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 2 and _wholes(p) for p in v),
        "a list of [depth, width] pairs"),
    "leave_out": (lambda v: isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 2 and _wholes(p) for p in v),
        "a list of [depth, width] pairs"),
    "seeds": (seeds, "a list of whole numbers from 0 to 2**63 - 1"),
    "extra_seeds": (lambda v: isinstance(v, list) and all(
        isinstance(t, list) and len(t) == 3 and _wholes(t[:2]) and seeds(t[2:]) for t in v),
        "a list of [depth, width, seed] triples"),
    "name": (plain_name, "a plain name (letters, digits, . _ + -), not a path"),
    "fewshot_at": (lambda v: isinstance(v, list) and all(map(fraction, v)),
                   "a list of fractions of the run"),
    "fewshot_tasks": (lambda v: isinstance(v, list)  # (not hashable: a dict lookup would fail)
                      and all(isinstance(x, str) and x in TASKS for x in v),
                      "a list of task names: " + ", ".join(TASKS)),
    "fewshot_k": (lambda v: isinstance(v, list) and all(type(x) is int and x in KS for x in v)
                  and v,
                  "a list drawn from " + ", ".join(map(str, KS))),
    "train": (lambda v: isinstance(v, dict), "a table of training keys"),
}


def load_emergence_plan(path: Path, raw: dict) -> EmergencePlan:
    """The plan in raw (the parsed TOML of path), every value checked before training."""
    check_plan_keys(path, raw, "emergence", VALUES, path.stem)
    if raw.get("kind") != "emergence":
        raise UserError(f'{path}: an emergence plan says kind = "emergence"')
    check_values(raw, VALUES, f"{path}: ")
    check_keys(raw.get("train", {}), f"[train] of {path}", TrainConfig)
    plan = EmergencePlan(**{"name": path.stem, **raw})
    if plan.steps % plan.eval_every:
        raise UserError(f"{path}: steps ({plan.steps}) must be a multiple of eval_every "
                        f"({plan.eval_every}), so that every run ends on an evaluation")
    if plan.probe_every and plan.eval_every % plan.probe_every:
        raise UserError(f"{path}: probe_every ({plan.probe_every}) must divide eval_every "
                        f"({plan.eval_every}), so that every reading falls on one even grid")
    if plan.synthetic_until >= plan.steps:
        raise UserError(f"{path}: synthetic_until ({plan.synthetic_until}) must be below steps "
                        f"({plan.steps}): the runs would never reach their data shape")
    grid = [[d, w] for d in plan.depths for w in plan.widths if [d, w] not in plan.leave_out]
    for d, w, seed in plan.extra_seeds:
        if [d, w] not in grid or seed in plan.seeds:
            raise UserError(f"{path}: extra_seeds [{d}, {w}, {seed}] must name a model of the "
                            f"grid (depths x widths) and a seed not in seeds {plan.seeds}")
    if len(set(r.name for r in plan.runs())) < len(plan.runs()):
        raise UserError(f"{path}: extra_seeds names one run twice")
    for run in plan.runs()[:1]:  # a bad shape (width vs head_dim, arch) fails here, not later
        plan.train_config(run, Path("out")).gpt_config(84)
    return plan
