"""Options from typed dataclasses: every verb's options are the fields of a dataclass, read
from the command line (--key=value or --key value) or a TOML file, cast by the field's type
and checked by the class's validate() (litgpt's args.py is the model; usage.py writes --help
from the same fields).

A field made with positional() takes the arguments that are not options: one (a str field,
e.g. train's config file) or all of them (a tuple field, e.g. fewshot's checkpoints).
"""
from __future__ import annotations

import types
import typing
from dataclasses import MISSING, field, fields
from typing import Any, Iterable

from .errors import UserError

BOOL_WORDS = ("true", "false", "1", "0", "yes", "no")


def positional(default: Any = MISSING) -> Any:
    """A field filled by the arguments that are not --options."""
    return field(default=default, metadata={"positional": True})


def positional_field(cls: type):
    """The field of cls that takes the arguments that are not options, or None."""
    return next((f for f in fields(cls) if f.metadata.get("positional")), None)


def field_type(cls: type, name: str) -> type:
    """The concrete type of a field of cls: int for `int | None`, tuple for `tuple[str, ...]`."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType):
        hint = next(t for t in typing.get_args(hint) if t is not type(None))
    return typing.get_origin(hint) or hint


def cast(cls: type, name: str, value: Any, from_cli: bool = False) -> Any:
    """Check one value for field `name` of cls; command-line strings are converted first."""
    kind = field_type(cls, name)
    if from_cli and kind not in (str, tuple):
        text = value.strip().lower()
        try:
            if kind is bool:
                if text not in BOOL_WORDS:
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


def check_keys(keys: Iterable[str], where: str, *classes: type) -> None:
    valid = {f.name for cls in classes for f in fields(cls)}
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise UserError(f"unknown key {unknown[0]!r} in {where}; valid keys: "
                        + ", ".join(sorted(valid)))


def typed(cls: type, values: dict, cli: dict, where: str = "the command line") -> Any:
    """An instance of the dataclass cls from file values and command-line texts (which win),
    every key checked against its fields, every value against its type, and the whole by the
    class's validate() where it has one (its value rules sit next to it)."""
    check_keys(values, where, cls)
    kwargs = {k: cast(cls, k, v) for k, v in values.items()}
    kwargs.update({k: cast(cls, k, v, from_cli=True) for k, v in cli.items()})
    made = cls(**kwargs)
    if hasattr(made, "validate"):
        made.validate()
    return made


def parse(argv: list[str], *classes: type) -> list[dict[str, Any]]:
    """{key: text} for each of classes, from --key=value and --key value (a bool field also
    reads a bare --key as true and --no_key as false); the arguments that are not options go
    to the positional field of one of the classes."""
    texts: list[dict[str, Any]] = [{} for _ in classes]
    owner = {f.name: i for i, cls in enumerate(classes) for f in fields(cls)}
    loose: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("-"):
            loose.append(arg)
            continue
        key, value = option(arg, args, classes, owner)
        texts[owner[key]][key] = value
    place_positionals(loose, classes, texts)
    return texts


def option(arg: str, rest: list[str], classes: tuple, owner: dict) -> tuple[str, str]:
    """The key and text of the option arg, taking its value from rest where it is not
    attached with `=` (so `--max_iters 100` is one option, not an option and a file)."""
    if not arg.startswith("--") or arg == "--":
        raise UserError(f"cannot read argument {arg!r}; options look like --key=value or "
                        "--key value, e.g. --max_iters=100")
    key, eq, value = arg[2:].partition("=")
    if not eq and key not in owner and key.startswith("no_") and is_bool(classes, owner, key[3:]):
        return key[3:], "false"
    check_keys([key], "the command line", *classes)
    if eq:
        return key, value
    if is_bool(classes, owner, key):  # a bare flag, unless a true/false word follows
        return key, rest.pop(0) if rest and rest[0].lower() in BOOL_WORDS else "true"
    if rest and not rest[0].startswith("--"):
        return key, rest.pop(0)
    kind = field_type(classes[owner[key]], key).__name__
    raise UserError(f"cannot read argument {arg!r}: it needs a value, e.g. --{key}=<{kind}>")


def is_bool(classes: tuple, owner: dict, key: str) -> bool:
    return key in owner and field_type(classes[owner[key]], key) is bool


def place_positionals(loose: list[str], classes: tuple, texts: list[dict]) -> None:
    """Put the arguments that are not options into the positional field that takes them."""
    for cls, own in zip(classes, texts):
        f = positional_field(cls)
        if f is None:
            continue
        if field_type(cls, f.name) is tuple:
            loose, own[f.name] = [], tuple(loose)
        elif loose:
            if len(loose) > 1:
                raise UserError(f"expected one {f.name}, got {', '.join(loose)}; options look "
                                "like --key=value or --key value")
            own[f.name] = loose.pop()
        if f.default is MISSING and not own.get(f.name):
            raise UserError(f"missing the {f.name.upper()} argument; --help says what it is")
    if loose:
        raise UserError(f"cannot read argument {loose[0]!r}; options look like --key=value or "
                        "--key value, e.g. --max_iters=100")
