"""Run logging: metrics.jsonl always, wandb when asked, a progress line on stdout.

wandb is imported only when a run asks for it, so the default path never
touches the network or the user's home folder.
"""
from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

from ..errors import UserError
from ..files import write_atomic


def fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Throughput, MFU and ETA over the steps since the previous progress line."""

    def __init__(self, step: int, max_iters: int, tokens_per_step: int, flops_per_token: int,
                 peak_flops: float):
        self.t0 = self.t_last = time.perf_counter()
        self.last_step, self.max_iters = step, max_iters
        self.tokens_per_step, self.fpt, self.peak = tokens_per_step, flops_per_token, peak_flops

    def report(self, step: int, loss: float, lr: float) -> tuple[dict, str]:
        """The metrics record and the progress line for this step."""
        now = time.perf_counter()
        per_step = (now - self.t_last) / max(step - self.last_step, 1)
        tok_s = self.tokens_per_step / per_step
        mfu = tok_s * self.fpt / self.peak
        eta = (self.max_iters - step) * per_step
        self.t_last, self.last_step = now, step
        line = (f"step {step}/{self.max_iters} | loss {loss:.4f} | lr {lr:.2e} | "
                f"{tok_s / 1e3:.1f}k tok/s | MFU {100 * mfu:.1f}% | "
                f"{fmt_time(now - self.t0)} elapsed, ETA {fmt_time(eta)}")
        return {"step": step, "train_loss": loss, "lr": lr, "tok_per_s": tok_s, "mfu": mfu}, line


class RunLog:
    """Appends metric records to out_dir/metrics.jsonl and mirrors them to wandb."""

    def __init__(self, out_dir: Path, config: dict, mode: str = "disabled", project: str = "tinygpt",
                 group: str = "", name: str = "", resume_step: int | None = None,
                 eval_key: str = "val_loss"):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.eval_key = eval_key  # the key that marks an evaluation's record
        if resume_step is not None:
            self._truncate_after(resume_step)
        elif self.path.exists():
            self.path.unlink()
        self.wandb = None
        if mode != "disabled":
            self.wandb = start_wandb(mode, project, group, name or Path(out_dir).name, config)

    def _truncate_after(self, step: int) -> None:
        """Drop records a killed run wrote after its last checkpoint, and the
        evaluation at the checkpoint's step: the resumed run redoes all of them."""
        if not self.path.exists():
            return
        rows = read_metrics(self.path.parent)
        kept = [json.dumps(r) for r in rows
                if r.get("step", 0) < step or (r.get("step") == step and self.eval_key not in r)]
        # atomically: a kill while rewriting must not leave the run's curve empty
        text = "".join(line + "\n" for line in kept).encode()
        write_atomic(self.path, lambda f: f.write(text), "metrics file")

    def log(self, record: dict) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # (a failed write names no file: name it)
            cause = "disk full" if e.errno == errno.ENOSPC else e.strerror
            raise UserError(f"cannot append to {self.path} ({cause}); the checkpoint of the last "
                            "evaluation is intact: fix that and resume with --init_from=resume") \
                from None
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


def start_wandb(mode: str, project: str, group: str, name: str, config: dict):
    try:
        import wandb
    except ImportError:
        raise UserError("wandb logging needs the wandb package: pip install wandb") from None
    if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _has_netrc_login()):
        raise UserError("wandb=online needs a login (wandb login or WANDB_API_KEY); "
                        "use --wandb=offline and `wandb sync` later")
    try:
        return wandb.init(project=project, group=group or None, name=name, config=config,
                          mode=mode, reinit=True)
    except Exception as e:  # wandb raises many types; all mean the same to the user
        raise UserError(f"wandb could not start ({str(e).splitlines()[0][:120]}); "
                        "use --wandb=offline or --wandb=disabled") from None


def _has_netrc_login() -> bool:
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl. A line torn by kill -9 mid-write is dropped (that
    record is lost); a line that is JSON but no record, or not UTF-8, was damaged some other
    way, and is a UserError naming it (the file is left as it is)."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            row = json.loads(line.decode())
        except UnicodeDecodeError as e:  # (tinygpt writes ASCII: json.dumps escapes the rest)
            problem = f"byte {line[e.start]:#04x} is not UTF-8"
        except json.JSONDecodeError:
            continue
        else:
            if isinstance(row, dict) and type(row.get("step")) is int:
                rows.append(row)
                continue
            problem = f"{line[:40].decode()!r} is not a record with a whole step"
        raise UserError(f"{path} is damaged (line {i}: {problem}); delete that line, or start "
                        "the run again in another --out_dir")
    return rows
