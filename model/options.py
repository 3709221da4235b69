"""The training configuration: one typed dataclass, TOML files, --key=value overrides.

No exec: a config file is TOML, every key must be a field, every value is
checked against the field's type, and a mistake is one line naming the valid
keys. Model shape comes from a named size and architecture preset, with any
explicitly given field (n_layer, pos, ...) taking precedence.
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path

from .config import ARCHS, SIZES, GPTConfig
from .errors import UserError, check_values


@dataclass
class TrainConfig:
    # io
    out_dir: str = "out/default"
    dataset: str = "shakespeare"   # "shakespeare", a text file or folder, or "hf:<name>"
    tokenizer: str = "char"        # "char" | "gpt2"
    data_root: str = "data"
    repeat_spans: float = 0.0      # fraction of training windows given a repeated span (bursty data)
    synthetic: float = 0.0         # fraction of training windows that are synthetic copy sequences
    init_from: str = "scratch"     # "scratch" | "resume" (out_dir/ckpt.pt) | "auto" (either)
    # model: a named size and arch preset; explicit fields below override them
    size: str = ""
    arch: str = "gpt2"
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int = 256
    dropout: float = 0.0
    bias: bool = False
    pos: str | None = None
    norm: str | None = None
    qk_norm: bool | None = None
    mlp: str | None = None
    zero_init: bool | None = None
    softcap: float | None = None
    smear_keys: bool | None = None
    # optimisation
    batch_size: int = 12
    grad_accum: int = 1            # micro-steps per optimizer step (per process)
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr_frac: float = 0.1       # final learning rate as a fraction of lr
    warmup_iters: int = 100
    schedule: str = "cosine"       # "cosine" | "wsd" (constant, then linear cooldown)
    cooldown_frac: float = 0.2     # wsd: fraction of max_iters spent cooling down
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0         # 0 disables clipping
    # evaluation, logging, checkpoints
    eval_interval: int = 250
    eval_batches: int = 20
    log_interval: int = 10
    save_checkpoints: bool = True
    keep_checkpoints: bool = False  # also keep ckpt_<step>.pt at every eval (for study curves)
    wandb: str = "disabled"        # "disabled" | "offline" | "online"
    wandb_project: str = "tinygpt"
    wandb_group: str = ""
    run_name: str = ""
    # system
    seed: int = 1337
    device: str = "auto"           # "auto" | "cpu" | "cuda" | "mps"
    dtype: str = "auto"            # "auto" | "float32" | "bfloat16" | "float16"
    compile: bool = False
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
        choices = {"tokenizer": ("char", "gpt2"), "init_from": ("scratch", "resume", "auto"),
                   "arch": tuple(ARCHS), "schedule": ("cosine", "wsd"),
                   "wandb": ("disabled", "offline", "online"),
                   "device": ("auto", "cpu", "cuda", "mps"),
                   "dtype": ("auto", "float32", "bfloat16", "float16")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if self.size and self.size not in SIZES:
            raise UserError(f"size={self.size!r} is unknown; known sizes: {', '.join(SIZES)}")
        for key in ("out_dir", "dataset", "data_root"):
            if not getattr(self, key).strip():
                default = TrainConfig.__dataclass_fields__[key].default
                raise UserError(f"{key} is empty; give a path (default {default!r})")
        check_values(vars(self), RANGES)
        # The model's shape is checked now, before any corpus is read or downloaded; the real
        # vocabulary size only comes with the prepared data and changes no shape rule.
        self.gpt_config(vocab_size=1)
        return self


# Valid values of the numeric fields: torch would reject some of them with a traceback
# (a negative lr) and silently accept others (a negative weight decay, a 0-layer model).
RANGES: dict[str, tuple] = {
    **{k: (lambda v: v >= 1, "at least 1") for k in (
        "batch_size", "grad_accum", "max_iters", "block_size", "eval_batches", "eval_interval",
        "log_interval", "n_layer", "n_head", "n_embd")},
    **{k: (lambda v: v >= 0, "0 or more") for k in ("warmup_iters", "grad_clip", "threads")},
    # infinite decay or cap makes the weights or logits NaN, which is then blamed on the lr
    **{k: (lambda v: 0 <= v < float("inf"), "0 or more, and finite") for k in (
        "weight_decay", "softcap")},
    **{k: (lambda v: 0 <= v <= 1, "a fraction from 0 to 1") for k in (
        "repeat_spans", "synthetic", "min_lr_frac", "cooldown_frac")},
    **{k: (lambda v: 0 <= v < 1, "at least 0 and below 1") for k in ("dropout", "beta1", "beta2")},
    "lr": (lambda v: 0 < v < float("inf"), "a positive number"),
    "seed": (lambda v: 0 <= v < 2 ** 63, "from 0 to 2**63 - 1"),  # torch's and numpy's range
}


def field_type(name: str, cls: type = None) -> type:
    """The concrete type of a field of cls, TrainConfig by default (int for `int | None`)."""
    hint = typing.get_type_hints(cls or TrainConfig)[name]
    if isinstance(hint, types.UnionType):
        hint = next(t for t in typing.get_args(hint) if t is not type(None))
    return hint


def cast(name: str, value, from_cli: bool = False, cls: type = None):
    """Check one value for field `name` of cls (TrainConfig by default); command-line strings
    are converted first."""
    kind = field_type(name, cls)
    if from_cli and kind is not str:
        text = value.strip().lower()
        try:
            if kind is bool:
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return text in ("true", "1", "yes")
            return kind(value)
        except ValueError:
            raise UserError(f"{name}={value!r} is not a valid {kind.__name__}") from None
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise UserError(f"{name} must be {kind.__name__}, got {value!r}")
    return value


def check_keys(keys, where: str, cls: type = None) -> None:
    valid = {f.name for f in fields(cls or TrainConfig)}
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise UserError(f"unknown config key {unknown[0]!r} in {where}; valid keys: "
                        + ", ".join(sorted(valid)))


def recipe_file(path: str) -> Path:
    """path as given; or, where no such file exists, the shipped recipe of that name
    (`shakespeare_char` or `configs/shakespeare_char.toml` from any folder)."""
    p = Path(path)
    if p.exists():
        return p
    from .files import configs_dir  # (files imports torch; options stays light otherwise)
    shipped = configs_dir() / Path(p.name).with_suffix(".toml")
    return shipped if shipped.is_file() else p


def parse_overrides(overrides: list[str], cls: type = None) -> dict[str, str]:
    """{key: text} of `--key=value` or `--key value` arguments naming fields of cls."""
    cli: dict[str, str] = {}
    args = list(overrides)
    while args:
        arg = args.pop(0)
        if arg.startswith("--") and "=" not in arg and args and not args[0].startswith("--"):
            arg = f"{arg}={args.pop(0)}"
        if not arg.startswith("--") or "=" not in arg:
            raise UserError(f"cannot read argument {arg!r}; overrides look like --key=value, "
                            "e.g. --max_iters=100")
        key, value = arg[2:].split("=", 1)
        check_keys([key], "the command line", cls)
        cli[key] = value
    return cli


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


def typed(cls: type, values: dict, cli: dict[str, str], where: str):
    """An instance of the dataclass cls from file values and command-line texts (which win),
    every key checked against its fields and every value against its type."""
    check_keys(values, where, cls)
    kwargs = {k: cast(k, v, cls=cls) for k, v in values.items()}
    kwargs.update({k: cast(k, v, from_cli=True, cls=cls) for k, v in cli.items()})
    return cls(**kwargs)


def load_config(path: str | None = None, overrides: list[str] = ()) -> TrainConfig:
    """TrainConfig from an optional TOML file and `--key=value` overrides."""
    cli = parse_overrides(overrides)
    values = read_toml(path, "config file") if path else {}
    return typed(TrainConfig, values, cli, path or "").validate()


def as_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
