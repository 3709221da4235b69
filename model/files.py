"""Files every part of tinygpt writes or reads the same way: the one atomic writer
(checkpoints, metrics rewrites, JSON results), the one UTF-8 reader (corpora, prompts,
held-out text), and the line that says which machine produced a result.

Kept free of the trainer and of any study, so the scaling, few-shot and emergence studies
import it without pulling in each other.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from .errors import UserError


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None],
                 what: str = "checkpoint", then: str = "resume with --init_from=resume") -> None:
    """Write path through write(file): into a temporary file in the same folder, flushed to
    disk, then renamed over path, so a kill or a full disk leaves the old file or the new one,
    never a torn or empty one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        with contextlib.suppress(OSError):  # (on a read-only disk even this fails)
            tmp.unlink(missing_ok=True)
        cause = os_error(e)
        if cause is None:
            raise
        kept = f"the previous {what} is intact" if path.exists() else "nothing was saved"
        if cause.errno == errno.ENOSPC:
            raise UserError(f"disk full while saving {path}; {kept}. Free some space and "
                            f"{then}") from None
        raise UserError(f"cannot write {path} ({cause.strerror or cause}); {kept}. Make the "
                        "folder writable, or choose another --out_dir") from None


def read_utf8(path: Path) -> str:
    """The text of a file, byte for byte (no newline translation), or a one-line error
    naming the first byte that is not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); "
                        f"convert it, e.g. iconv -f latin1 -t utf-8 {path.name}") from None


def os_error(e: BaseException | None) -> OSError | None:
    """The OSError behind e, if any: torch's writer reports a full disk as a RuntimeError
    ("unexpected pos") raised while handling the OSError that says so."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def write_json(path: Path, data: dict) -> None:
    """data as indented JSON, written atomically (a study's plan, summaries and results)."""
    text = json.dumps(data, indent=1).encode()
    write_atomic(path, lambda f: f.write(text), path.name)


REDO = "delete it, and the command that wrote it writes it again"


def read_json(path: Path, fix: str = REDO, keys: tuple[str, ...] = (),
              kind: type = dict) -> Any:
    """A JSON state file tinygpt wrote (a plan, a summary, results), or a UserError naming it
    and saying how to recover when it is not JSON, not of the kind expected or lacks one of
    keys: edited by hand, torn on a full disk. The file is left as it is."""
    try:
        data = json.loads(Path(path).read_bytes())
    except ValueError as e:  # (JSONDecodeError, and UnicodeDecodeError for a non-UTF-8 byte)
        problem = f"not JSON: {getattr(e, 'msg', None) or getattr(e, 'reason', e)}"
    else:
        missing = [k for k in keys if k not in data] if isinstance(data, dict) else []
        if isinstance(data, kind) and not missing:
            return data
        problem = (f"no {missing[0]!r}" if missing else
                   f"not a JSON {'object' if kind is dict else kind.__name__}")
    raise UserError(f"{path} is damaged ({problem}); {fix}")


def cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo, or the architecture where there is none."""
    fallback = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), fallback)
    except OSError:
        return fallback


def cpu_class() -> str:
    """The CPU's class as timings differ by it: the kernels torch's ATen uses (lowered by
    ATEN_CPU_CAPABILITY), any oneDNN limit, and whether bf16 has hardware units."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    units = ("AMX" if "amx_bf16" in flags else "AVX-512 bf16" if "avx512_bf16" in flags
             else "none" if flags else "unknown")
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    limit = f", oneDNN limited to {isa}" if isa else ""
    return f"{torch.backends.cpu.get_cpu_capability()} kernels{limit}, bf16 units: {units}"


def machine() -> str:
    """The machine a figure was measured on, class included, for summaries and reports."""
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu_name()} ({cpu_class()}), {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads{gpu}, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def preset_file(kind: str, preset: str, what: str) -> Path:
    """A preset's file: configs/<kind>/<preset>.toml for a name, the path itself for a path;
    a name that is no preset is a UserError listing those there are."""
    path = Path(preset)
    if path.suffix:
        return path
    folder = configs_dir() / kind
    path = folder / f"{preset}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
        raise UserError(f"no {what} {preset!r}; presets: {known}, or a .toml path")
    return path


def configs_dir() -> Path:
    """The recipes and study presets: ./configs if the current folder has them (a checkout, or
    a user's own), else the checkout beside the package (an editable install), else the copy a
    wheel installs under <prefix>/share/tinygpt (a plain `pip install .`)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1],
                 Path(sys.prefix) / "share" / "tinygpt"):
        if (root / "configs" / "study").is_dir():
            return root / "configs"
    raise UserError("no configs/ folder with the study presets was found here, beside the "
                    "package or under the install prefix; reinstall tinygpt")
