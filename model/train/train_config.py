"""The training configuration: one typed dataclass, TOML files, command-line overrides.

No exec: a config file is TOML, every key must be a field, every value is
checked against the field's type (model/args.py), and a mistake is one line naming the valid
keys. Model shape comes from a named size and architecture preset, with any
explicitly given field (n_layer, pos, ...) taking precedence; those fields are GPTConfig's own,
made options here, not written again. The comment on each field is its help in
`tinygpt train --help`.
"""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import Field, dataclass, field, fields, make_dataclass
from pathlib import Path

from ..args import parse, typed
from ..errors import UserError, check_values, one_of
from ..files import configs_dir
from ..nn.config import ARCHS, SIZES
from ..nn.gpt import GPTConfig


@dataclass
class ModelChoice:
    # model: a named size and arch preset; GPTConfig's fields after them, when set, override them
    size: str = ""                 # a named (n_layer, n_head, n_embd), e.g. 2x48, nano-cpu
    arch: str = "gpt2"             # "gpt2" (the plain block) | "modern" (the options below on)


# What a size or an arch preset sets: unset by default, so that the preset decides.
PRESET_FIELDS = {"n_layer", "n_head", "n_embd", *(k for arch in ARCHS.values() for k in arch)}


def model_fields() -> list[tuple[str, type, Field]]:
    """GPTConfig's fields as options, less vocab_size (the prepared data decides it): a field
    added to GPTConfig is an option of every verb that trains, with its comment there as its
    help (cli/usage.py reads it through the "described_in" mark)."""
    hints = typing.get_type_hints(GPTConfig)
    made = []
    for f in fields(GPTConfig):
        if f.name == "vocab_size":
            continue
        unset = f.name in PRESET_FIELDS
        made.append((f.name, hints[f.name] | None if unset else hints[f.name],
                     field(default=None if unset else f.default,
                           metadata={"described_in": GPTConfig})))
    return made


ModelOptions = make_dataclass("ModelOptions", model_fields(), bases=(ModelChoice,))


@dataclass
class TrainConfig(ModelOptions):
    # where the data comes from and the run goes
    out_dir: str = "out/default"   # the run's folder: ckpt.pt and metrics.jsonl
    dataset: str = "shakespeare"   # "shakespeare", a text file or folder, or "hf:<name>"
    tokenizer: str = "char"        # "char" | "gpt2"
    data_root: str = "data"        # where prepared token files are kept
    repeat_spans: float = 0.0      # fraction of training windows given a repeated span (bursty data)
    synthetic: float = 0.0         # fraction of training windows that are synthetic copy sequences
    unique_copies: float = 0.0     # fraction that are copy sequences of unique tokens (shapes.py)
    synthetic_until: int = 0       # steps before which every window is a synthetic copy sequence
                                   # (a curriculum: copying first, then the three shares); 0: off
    init_from: str = "scratch"     # "scratch" | "resume" (out_dir/ckpt.pt) | "auto" (either)
    # optimisation
    batch_size: int = 12           # sequences per micro-step (per process)
    grad_accum: int = 1            # micro-steps per optimizer step (per process)
    max_iters: int = 2000          # optimizer steps
    lr: float = 1e-3               # peak learning rate of AdamW
    optimizer: str = "adamw"       # "adamw" | "muon": Muon for the blocks' weight matrices,
                                   # AdamW (at lr) for embeddings, gains and biases
    muon_lr: float = 0.02          # Muon's peak rate; the schedule scales it as it scales lr
    min_lr_frac: float = 0.1       # final learning rate as a fraction of lr
    warmup_iters: int = 100        # steps of linear warm-up
    schedule: str = "cosine"       # "cosine" | "wsd" (constant, then linear cooldown)
    cooldown_frac: float = 0.2     # wsd: fraction of max_iters spent cooling down
    weight_decay: float = 0.1      # AdamW decay, on weight matrices only
    beta1: float = 0.9             # AdamW's first-moment decay
    beta2: float = 0.99            # AdamW's second-moment decay
    grad_clip: float = 1.0         # largest gradient norm; 0 disables clipping
    # evaluation, logging, checkpoints
    eval_interval: int = 250       # steps between evaluations (each also saves ckpt.pt)
    eval_start: int = 0            # no evaluation before this step but the last (0 evaluates the
                                   # untrained model too)
    eval_batches: int = 20         # validation batches per evaluation; 0: the whole held-out split
                                   # (the last evaluation always covers it)
    eval_pass: int = 0             # windows per forward pass of an evaluation; 0: batch_size.
                                   # The windows read are the same either way
    probe_interval: int = 0        # steps between a study's light probe readings, taken where
                                   # a step does not evaluate (no val loss, no checkpoint); 0: none
    target_loss: float = 0.0       # stop at the first evaluation at or below this loss (needs
                                   # eval_batches=0); 0 is off
    log_interval: int = 10         # steps between training-loss lines
    save_checkpoints: bool = True  # write ckpt.pt at every evaluation
    keep_checkpoints: bool = False  # also keep ckpt_<step>.pt at every eval (for study curves)
    wandb: str = "disabled"        # "disabled" | "offline" | "online"
    wandb_project: str = "tinygpt"  # the wandb project
    wandb_group: str = ""          # the wandb group (a study names its runs' group)
    run_name: str = ""             # the wandb run's name (default: wandb's)
    # system
    seed: int = 1337               # seeds the weights and the batches
    device: str = "auto"           # "auto" | "cpu" | "cuda" | "mps"
    dtype: str = "auto"            # "auto" | "float32" | "bfloat16" | "float16"
    compile: bool = False          # run the model through torch.compile
    threads: int = 0               # CPU threads; 0 keeps torch's default

    def gpt_config(self, vocab_size: int) -> GPTConfig:
        values = dict(ARCHS[self.arch])
        if self.size:
            values.update(zip(("n_layer", "n_head", "n_embd"), SIZES[self.size]))
        for f in fields(GPTConfig):
            mine = getattr(self, f.name, None)
            if mine is not None:
                values[f.name] = mine
        values["vocab_size"] = vocab_size
        try:
            return GPTConfig(**values)
        except ValueError as e:
            raise UserError(f"bad model shape: {e}") from None

    def validate(self) -> "TrainConfig":
        check_values(vars(self), RULES)
        # The model's shape is checked now, before any corpus is read or downloaded; the real
        # vocabulary size only comes with the prepared data and changes no shape rule.
        self.gpt_config(vocab_size=1)
        if self.target_loss and self.eval_batches:
            # a target met by a 20-batch estimate can be missed by the whole split it stands for
            raise UserError(f"target_loss={self.target_loss} is compared with whole-split losses; "
                            "set eval_batches=0 (every evaluation on the whole held-out split)")
        if self.synthetic + self.unique_copies > 1:
            raise UserError(f"synthetic ({self.synthetic}) + unique_copies ({self.unique_copies}) "
                            "is more than all of the training windows; their sum must be at most 1")
        if self.synthetic_until and self.synthetic_until >= self.max_iters:
            raise UserError(f"synthetic_until ({self.synthetic_until}) must be below max_iters "
                            f"({self.max_iters}): the run would never reach its data shape")
        return self

    def data_shape(self, step: int) -> tuple[float, float, float]:
        """(repeat_spans, synthetic, unique_copies) of step's training windows: synthetic copy
        sequences only before synthetic_until, the configured shares from it on. A function of
        the step alone, so a resumed run draws the windows it would have drawn."""
        if step < self.synthetic_until:
            return 0.0, 1.0, 0.0
        return self.repeat_spans, self.synthetic, self.unique_copies


def not_empty(v: str) -> bool:
    return bool(v.strip())


# Valid values: torch would reject some of them with a traceback (a negative lr) and silently
# accept others (a negative weight decay, a 0-layer model); a typo'd name would fail late.
RULES: dict[str, tuple] = {
    "tokenizer": one_of("char", "gpt2"),
    "init_from": one_of("scratch", "resume", "auto"),
    "arch": one_of(*ARCHS),
    "size": (lambda v: v == "" or v in SIZES, f"empty or a known size ({', '.join(SIZES)})"),
    "schedule": one_of("cosine", "wsd"),
    "wandb": one_of("disabled", "offline", "online"),
    "device": one_of("auto", "cpu", "cuda", "mps"),
    "dtype": one_of("auto", "float32", "bfloat16", "float16"),
    "optimizer": one_of("adamw", "muon"),
    **{k: (not_empty, "a path, not empty") for k in ("out_dir", "dataset", "data_root")},
    **{k: (lambda v: v >= 1, "at least 1") for k in (
        "batch_size", "grad_accum", "max_iters", "block_size", "eval_interval",
        "log_interval", "n_layer", "n_head", "n_embd")},
    **{k: (lambda v: v >= 0, "0 or more") for k in (
        "warmup_iters", "grad_clip", "threads", "eval_start", "eval_batches", "eval_pass",
        "probe_interval", "synthetic_until")},
    # infinite decay or cap makes the weights or logits NaN, which is then blamed on the lr
    **{k: (lambda v: 0 <= v < float("inf"), "0 or more, and finite") for k in (
        "weight_decay", "softcap", "target_loss")},
    **{k: (lambda v: 0 <= v <= 1, "a fraction from 0 to 1") for k in (
        "repeat_spans", "synthetic", "unique_copies", "min_lr_frac", "cooldown_frac")},
    **{k: (lambda v: 0 <= v < 1, "at least 0 and below 1") for k in ("dropout", "beta1", "beta2")},
    **{k: (lambda v: 0 < v < float("inf"), "a positive number") for k in ("lr", "muon_lr")},
    "seed": (lambda v: 0 <= v < 2 ** 63, "from 0 to 2**63 - 1"),  # torch's and numpy's range
}


def recipe_file(path: str) -> Path:
    """path as given; or, where no such file exists, the shipped recipe of that name
    (`shakespeare_char` or `configs/shakespeare_char.toml` from any folder)."""
    p = Path(path)
    if p.exists():
        return p
    shipped = configs_dir() / Path(p.name).with_suffix(".toml")
    return shipped if shipped.is_file() else p


def read_toml(path: str, what: str) -> dict:
    """A TOML file's table, or a one-line UserError saying why it cannot be read."""
    p = recipe_file(path)
    if not p.is_file():
        problem = "is a folder, not a TOML file" if p.is_dir() else "not found"
        raise UserError(f"{what} {path} {problem}; see configs/ for the recipes")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid TOML: {e}") from None


def load_config(path: str | None = None, overrides: list[str] = ()) -> TrainConfig:
    """TrainConfig from an optional TOML file and command-line overrides (--key=value or
    --key value)."""
    (cli,) = parse(list(overrides), TrainConfig)
    return config_from(path, cli)


def config_from(path: str | None, cli: dict[str, str]) -> TrainConfig:
    """TrainConfig from an optional TOML file and the command line's {key: text}, checked."""
    values = read_toml(path, "config file") if path else {}
    return typed(TrainConfig, values, cli, path or "")


def as_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
