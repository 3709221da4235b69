"""User errors: one line that says what is wrong and what to do, no traceback.

Library code raises UserError for anything the user can fix (a bad config key,
a missing corpus, a corrupt checkpoint); the command-line entry points catch it,
print `error: <message>` to stderr and exit with status 2.
"""
from __future__ import annotations

import errno
import functools
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable


class UserError(Exception):
    """Something the user can fix; the message names the problem and the fix."""


def check_values(values: dict[str, Any], rules: dict[str, tuple[Callable[[Any], bool], str]],
                 where: str = "") -> None:
    """UserError for the first value its rule rejects; a value that is absent or None is unset.
    Rules are written as comparisons, so NaN fails every one of them."""
    for key, (ok, wanted) in rules.items():
        value = values.get(key)
        if value is not None and not ok(value):
            raise UserError(f"{where}{key} must be {wanted}, got {value!r}")


def make_dir(path: Path, option: str) -> Path:
    """mkdir -p, with a one-line error naming the option when the path cannot be a folder."""
    if path.is_symlink() and not path.exists():  # mkdir would say "File exists"
        raise UserError(f"{path} is a link to {os.readlink(path)}, which does not exist; make "
                        f"that folder, or give --{option} another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make the folder {path} ({e.strerror}); give --{option} a folder "
                        "path you can write to") from None
    return path


def one_line(e: BaseException) -> str | None:
    """The one-line message for a user's or the environment's error (a UserError, a file that
    cannot be written, memory that ran out); None for an error that is ours to fix, whose
    traceback is kept."""
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, OSError) and e.filename is not None:
        if e.errno == errno.ENOSPC:
            return f"{e.filename}: disk full; free some space"
        # (a folder, a dangling link or a loop where a file was wanted: no space to free)
        return f"{e.filename}: {e.strerror}; check the path and its permissions"
    if isinstance(e, (MemoryError, RuntimeError)):
        size = memory_shortfall(e)
        if size is not None:
            return (f"out of memory: {size} did not fit; lower --batch_size or --block_size, "
                    "or use a smaller model (--size, --n_layer, --n_embd)")
    return None


def exits_cleanly(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI main so user and environment errors (one_line) and Ctrl-C end with a
    one-line message."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader left early (`tinygpt train --help | head`)
            # what is still buffered would fail again when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except Exception as e:
            message = one_line(e)
            if message is None:  # ours to fix: keep the traceback
                raise
            print(f"error: {message}", file=sys.stderr)
            return 2
    return wrapped


def memory_shortfall(e: BaseException) -> str | None:
    """The allocation that failed, when e means memory ran out (torch on CPU or GPU, numpy,
    Python), as "19.2 GB"; None for any other error."""
    text = str(e)
    if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "out of memory" in text):
        return None
    found = re.search(r"allocate (\d+) bytes", text)  # torch's CPU allocator
    if found:
        return f"{int(found.group(1)) / 1e9:.3g} GB"
    found = re.search(r"allocate ([\d.]+ [KMGT]i?B)", text, re.IGNORECASE)  # CUDA, numpy
    return found.group(1) if found else "an allocation"


def positive(v: Any) -> bool:
    """A number above 0 (not a bool), for the value rules of check_values."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def whole(v: Any) -> bool:
    """A whole number of at least 1 (not a bool)."""
    return whole_or_zero(v) and v >= 1


def whole_or_zero(v: Any) -> bool:
    """A whole number of at least 0 (not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def fraction(v: Any) -> bool:
    """A number from 0 to 1 (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1


def one_of(*choices: Any) -> tuple[Callable[[Any], bool], str]:
    """The rule of a field that takes one of a few names, for check_values."""
    return (lambda v: v in choices), "one of " + ", ".join(map(repr, choices))


def seeds(v: Any) -> bool:
    """A non-empty list of seeds, each a whole number torch and numpy take (not a bool: a
    plan's `seeds = [true]` would run as seed True)."""
    return isinstance(v, list) and len(v) > 0 and all(
        isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2 ** 63 for x in v)


def plain_name(v: Any) -> bool:
    """A name that is one folder's name: a study's name becomes its out/ folder, and "../x"
    would write outside out/."""
    return isinstance(v, str) and re.fullmatch(r"[\w.+-]+", v) is not None and v not in (".", "..")
