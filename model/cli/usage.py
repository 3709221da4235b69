"""`tinygpt <verb> --help`: every option of the verb's dataclasses with its type, default and
meaning.

The meaning is the comment that ends the field's line in the source, so the help and the code
cannot drift apart; a comment on a line of its own at the fields' indentation heads a group of
options, and one indented deeper continues the meaning of the field above it.
"""
from __future__ import annotations

import inspect
import io
import textwrap
import tokenize
from dataclasses import MISSING, Field, fields, is_dataclass

from ..args import field_type, positional_field

WIDTH = 100  # characters of a help line
COLUMN = 26  # where the meanings start


def usage(prog: str, about: str, options: type, settings: type | None = None) -> str:
    """The help text of a verb: its options, then the settings of its TOML file, if any."""
    lines = [f"usage: {prog}{positional_usage(options)} [--key=value ...]", "", about]
    for cls in (options, settings) if settings else (options,):
        lines += option_lines(cls)
    lines += ["", "Every option also reads as --key value; a bool option also as --key (true) "
                  "or --no_key (false)."]
    if settings:
        lines.append(f"The {settings.__name__} options are also the keys of its TOML file; the "
                     "command line wins.")
    return "\n".join(lines)


def positional_usage(cls: type) -> str:
    f = positional_field(cls)
    if f is None:
        return ""
    name = f.name.upper() + ("..." if field_type(cls, f.name) is tuple else "")
    return f" {name}" if f.default is MISSING else f" [{name}]"


def option_lines(cls: type) -> list[str]:
    """One entry per field, under the heading of its group."""
    notes = comments(cls)
    lines, group = [], None
    for f in fields(cls):
        heading, meaning = notes.get(f.name, ("", ""))
        if heading != group:
            lines += ["", f"{heading}:"] if heading else [""]
            group = heading
        lines.append(entry(cls, f, meaning))
    return lines


def entry(cls: type, f: Field, meaning: str) -> str:
    """`  --name=TYPE   meaning (default: x)`, wrapped under the meaning's column."""
    if f.metadata.get("positional"):
        head = "  " + f.name.upper()
    else:
        head = f"  --{f.name}={field_type(cls, f.name).__name__.upper()}"
    if f.metadata.get("positional") and f.default is not MISSING:
        meaning += " (optional)"
    elif f.default is not MISSING and "(default" not in meaning:  # unless the comment explains it
        meaning += f" (default: {shown(f.default)})"
    text = textwrap.wrap(meaning, WIDTH - COLUMN, break_on_hyphens=False) or [""]
    if len(head) >= COLUMN - 1:  # too long to share a line with the meaning
        return "\n".join([head] + [" " * COLUMN + t for t in text])
    return "\n".join([head.ljust(COLUMN) + text[0]] + [" " * COLUMN + t for t in text[1:]])


def shown(default) -> str:
    if default is None:
        return "unset"
    if default == "":
        return "empty"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def comments(cls: type) -> dict[str, tuple[str, str]]:
    """{field: (group heading, meaning)} of cls and of the dataclasses it extends. A field
    made from another dataclass's (metadata "described_in", e.g. TrainConfig's model fields
    from GPTConfig) has that class's comment, in the group of the field before it."""
    found: dict[str, tuple[str, str]] = {}
    for klass in reversed(cls.__mro__):
        if is_dataclass(klass):
            found.update(own_comments(klass))
    group = ""
    for f in fields(cls):
        source = f.metadata.get("described_in")
        if source is not None:
            found[f.name] = (group, own_comments(source).get(f.name, ("", ""))[1])
        group = found.get(f.name, (group, ""))[0]
    return found


def own_comments(klass: type) -> dict[str, tuple[str, str]]:
    """The comments of the fields written in klass's own source."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # no source installed: the options are listed without meanings
        return {}
    names = {f.name for f in fields(klass)}
    found, group, last, indent = {}, "", None, None
    for row in source_rows(source):
        first = row[0]
        if first.type == tokenize.COMMENT and len(row) == 1:
            text = first.string.lstrip("#").strip()
            if last and first.start[1] > indent:  # continues the meaning of the field above
                found[last] = (group, f"{found[last][1]} {text}")
            else:
                group, last = text, None
        elif (first.string in names and len(row) > 1 and row[1].string == ":"
              and indent in (None, first.start[1])):
            indent, last = first.start[1], first.string
            end = row[-1]
            found[last] = (group, end.string.lstrip("#").strip()
                           if end.type == tokenize.COMMENT else "")
        else:
            last = None
    return found


def source_rows(source: str) -> list[list[tokenize.TokenInfo]]:
    """The tokens of source grouped by the line they start on, layout tokens left out."""
    layout = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    rows: dict[int, list[tokenize.TokenInfo]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in layout:
            rows.setdefault(tok.start[0], []).append(tok)
    return list(rows.values())
