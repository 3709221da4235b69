"""A study plan: which runs make up a ladder, read from configs/study/<preset>.toml.

A plan names the sizes with their learning rates, one data set and one token
(or FLOP) budget shared by every size, and the seeds. Each (size, budget,
seed) becomes a RunSpec, which turns into an ordinary TrainConfig: the study
trains with exactly the trainer a user runs by hand.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ...args import cast, check_keys
from ...errors import UserError, check_values, plain_name, positive, seeds, whole
from ...files import preset_file
from ...nn.config import ARCHS, SIZES, named
from ...nn.gpt import flops_per_token, n_nonemb_formula
from ...train.train_config import RULES as TRAIN_RULES
from ...train.train_config import TrainConfig, read_toml



@dataclass(frozen=True)
class RunSpec:
    size: str
    lr: float
    tokens: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.size}-{self.tokens / 1e6:g}M-lr{self.lr:.3g}-s{self.seed}"


@dataclass
class StudyPlan:
    name: str
    lr: dict[str, float]
    dataset: str = "shakespeare"
    tokenizer: str = "char"
    arch: str = "gpt2"
    block_size: int = 256
    batch_size: int = 4
    tokens: list[int] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [1337])
    evals: int = 20
    train: dict = field(default_factory=dict)
    dtype: dict[str, str] = field(default_factory=dict)  # per size, over [train]'s dtype
    compile: dict[str, bool] = field(default_factory=dict)  # per size, over [train]'s compile
    sweep: dict = field(default_factory=dict)
    description: str = ""
    vocab_size: int = 0  # set from the prepared data; FLOP budgets need it to count tokens

    def tokens_for(self, size: str) -> list[int]:
        """The token budgets of one size: the fixed ones, and one per FLOP budget."""
        per_token = flops_per_token(self.model(size), n_nonemb_formula(self.model(size)))
        return sorted({*self.tokens, *(int(c / per_token) for c in self.flops)})

    def model(self, size: str):
        return named(size, self.arch, block_size=self.block_size, vocab_size=self.vocab_size)

    def runs(self) -> list[RunSpec]:
        return [RunSpec(size, lr, tokens, seed) for size, lr in self.lr.items()
                for tokens in self.tokens_for(size) for seed in self.seeds]

    def train_config(self, spec: RunSpec, out_dir: Path, **extra) -> TrainConfig:
        steps = max(spec.tokens // (self.block_size * self.batch_size), 1)
        values = dict(
            out_dir=str(out_dir), dataset=self.dataset, tokenizer=self.tokenizer, size=spec.size,
            arch=self.arch, block_size=self.block_size, batch_size=self.batch_size,
            max_iters=steps, lr=spec.lr, seed=spec.seed, init_from="auto",
            eval_interval=max(steps // self.evals, 1), log_interval=max(steps // 10, 1),
            run_name=spec.name, wandb_group=f"study-{self.name}")
        values.update({k: cast(TrainConfig, k, v) for k, v in self.train.items()})
        for key in PER_SIZE:  # [dtype] and [compile]: a size's own value over [train]'s
            if spec.size in getattr(self, key):
                values[key] = getattr(self, key)[spec.size]
        values.update(extra)
        return TrainConfig(**values).validate()


# The training keys a plan sets for each run (StudyPlan.train_config), not [train]'s to change
PLAN_OWNED = ("out_dir", "dataset", "tokenizer", "size", "arch", "block_size", "batch_size",
              "max_iters", "lr", "seed", "init_from", "run_name", "data_root")


def check_evaluations(plan: StudyPlan) -> None:
    """UserError, before any training, for a plan whose runs would evaluate only at their first
    and last steps: the learning curves (and the compute frontier fitted to them) keep the
    evaluations in between, and the report would fail after the whole study had trained."""
    for spec in plan.runs():
        cfg = plan.train_config(spec, Path(spec.name))
        first = max(cfg.eval_interval, -(-cfg.eval_start // cfg.eval_interval) * cfg.eval_interval)
        if first >= cfg.max_iters:
            raise UserError(f"plan {plan.name!r}: run {spec.name} ({cfg.max_iters} steps, an "
                            f"evaluation every {cfg.eval_interval} from step {cfg.eval_start}) has "
                            "no evaluation before its last step, so no learning curve; raise "
                            "evals (at least 2) or tokens, or lower [train] eval_interval")


def config_hash(cfg: TrainConfig) -> str:
    """A short hash of everything that shapes a run's result (not where it is written)."""
    d = {k: v for k, v in vars(cfg).items() if k not in ("out_dir", "run_name", "wandb",
                                                         "wandb_group", "wandb_project", "threads")}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def read_plan(preset_or_path: str, _seen: tuple[Path, ...] = ()) -> tuple[Path, dict]:
    """The plan file of a preset name or path, and its parsed TOML. A file that says
    kind = "emergence" is an emergence plan (model/studies/emergence/emergence_plan.py).

    extends = "<preset>" starts from that plan: a key the file sets replaces the other's, a
    table ([train], [lr], ...) is merged key by key. So a variant (more seeds, another budget)
    says only what differs, and cannot drift from the plan it varies."""
    path = preset_file("study", preset_or_path, "study plan")
    raw = read_toml(str(path), "study plan")
    parent = raw.pop("extends", None)
    if parent is None:
        return path, raw
    if not isinstance(parent, str) or path.resolve() in _seen:
        raise UserError(f"{path}: extends must name another plan, and plans cannot extend "
                        f"each other in a loop (got {parent!r})")
    _, base = read_plan(parent, (*_seen, path.resolve()))
    for key, value in raw.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        base[key] = {**base[key], **value} if both_tables else value
    return path, base


# Each study's own verb, by the plan's kind (a scaling plan names none)
VERBS = {"scaling": "study", "emergence": "emergence"}


def check_plan_keys(path: Path, raw: dict, kind: str, valid: dict, name: str) -> None:
    """One line for a plan of the other study (naming the verb that runs it, with `name` as
    the preset to give it) or for a key the plan does not know (naming the valid ones)."""
    found = raw.get("kind", "scaling")
    if found != kind and found in VERBS:
        raise UserError(f"{path} is {'an' if found[0] in 'aeiou' else 'a'} {found} plan: run it "
                        f"with tinygpt {VERBS[found]} --preset={name}")
    unknown = set(raw) - set(valid)
    if unknown:
        raise UserError(f"unknown key {sorted(unknown)[0]!r} in {path}; valid: "
                        + ", ".join(sorted(valid)))


def load_plan(preset_or_path: str) -> StudyPlan:
    path, raw = read_plan(preset_or_path)
    check_plan_keys(path, raw, "scaling", PLAN_VALUES, preset_or_path)
    if isinstance(raw.get("tokens"), int):
        raw["tokens"] = [raw["tokens"]]
    check_values(raw, PLAN_VALUES, f"{path}: ")
    check_keys(raw.get("train", {}), f"[train] of {path}", TrainConfig)
    try:  # each value's type and range, named by file and table (not when a run is built)
        train = {k: cast(TrainConfig, k, v) for k, v in raw.get("train", {}).items()}
        check_values(train, TRAIN_RULES)
    except UserError as e:
        raise UserError(f"[train] of {path}: {e}") from None
    # [train] is applied over what the plan sets for each run: these would be silently
    # replaced (the budget, the seed) or break the study (its folders, its data)
    owned = [k for k in PLAN_OWNED if k in raw.get("train", {})]
    if owned:
        raise UserError(f"{path}: [train] {owned[0]} is set by the plan for each run (from "
                        "tokens, seeds, [lr], the study's folder and data); remove it")
    bad = [s for s in raw.get("lr", {}) if s not in SIZES]
    if bad or not raw.get("lr"):
        raise UserError(f"{path}: [lr] must map known sizes to learning rates; "
                        f"unknown: {bad}; known sizes: {', '.join(SIZES)}")
    for key in PER_SIZE:
        stray = [s for s in raw.get(key, {}) if s not in raw["lr"]]
        if stray:
            raise UserError(f"{path}: [{key}] names {stray[0]!r}, which is not under [lr]")
    if not raw.get("tokens") and not raw.get("flops"):
        raise UserError(f"{path}: give a token budget (tokens = ...) or FLOP budgets (flops = [...])")
    return StudyPlan(**{"name": path.stem, **raw})


# What each plan key holds, so that a mistake is named here and not by a traceback later.
PLAN_VALUES = {
    **{k: (lambda v: isinstance(v, str), "a string")
       for k in ("description", "dataset")},
    "tokenizer": (lambda v: v in ("char", "gpt2"), "char or gpt2"),
    "arch": (lambda v: isinstance(v, str) and v in ARCHS, "one of " + ", ".join(ARCHS)),
    **{k: (whole, "a whole number, at least 1") for k in ("block_size", "batch_size", "evals")},
    "tokens": (lambda v: isinstance(v, list) and all(map(whole, v)), "a list of token counts"),
    "flops": (lambda v: isinstance(v, list) and all(map(positive, v)), "a list of FLOP budgets"),
    "seeds": (seeds, "a list of whole numbers from 0 to 2**63 - 1"),
    "name": (plain_name, "a plain name (letters, digits, . _ + -), not a path"),
    "lr": (lambda v: isinstance(v, dict) and all(map(positive, v.values())),
           "a table of sizes and positive learning rates"),
    "train": (lambda v: isinstance(v, dict), "a table of training keys"),
    "dtype": (lambda v: isinstance(v, dict) and all(map(TRAIN_RULES["dtype"][0], v.values())),
              "a table of sizes and dtypes, each " + TRAIN_RULES["dtype"][1]),
    "compile": (lambda v: isinstance(v, dict) and all(isinstance(x, bool) for x in v.values()),
                "a table of sizes and true or false"),
    "sweep": (lambda v: isinstance(v, dict) and set(v) <= {"tokens", "factors", "extend"}
              and whole(v.get("tokens", 1)) and _sweep_factors(v.get("factors", [1]))
              and isinstance(v.get("extend", 0), int),
              "a table of tokens (a count), factors (a non-empty list) and extend (a count)"),
}


# The tables that set a training key per size, over [train]'s value
PER_SIZE = ("dtype", "compile")


def _sweep_factors(v) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(map(positive, v))
