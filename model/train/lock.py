"""One run per out_dir: a lock file that names its holder and cannot outlive it.

Two runs writing one out_dir interleave their metrics and overwrite each other's
checkpoint, so the checkpoint may belong to another run than its metrics. The
lock is an flock on out_dir/train.lock: the kernel drops it when its process
ends, however it ends (kill -9 included), so a lock left by a crash is stale by
construction and the next run simply takes it. The file holds the holder's pid,
so a refused run can say which process it waited for.
"""
from __future__ import annotations

import fcntl
import functools
import os
from pathlib import Path
from typing import Callable

from ..errors import UserError, make_dir

NAME = "train.lock"


class OutDirLock:
    """Held from acquire() to release(); a second holder is refused with a UserError."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / NAME
        self.fd: int | None = None

    def acquire(self) -> "OutDirLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UserError(f"cannot create the lock file {self.path} ({e.strerror}); give "
                                "--out_dir a folder you can write to") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise UserError(f"{self.path.parent} is in use by another tinygpt run (pid "
                                f"{holder}); wait for it to end, or choose another --out_dir") \
                    from None
            # The previous holder may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else can see, so start again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked, so no one else's file goes
        os.close(self.fd)
        self.fd = None


def owns_out_dir(train: Callable[..., dict]) -> Callable[..., dict]:
    """Run train(cfg, ...) holding cfg.out_dir's lock. Under torchrun only rank 0 takes it:
    the other ranks are the same run."""
    @functools.wraps(train)
    def wrapped(cfg, *args, **kwargs) -> dict:
        if int(os.environ.get("RANK", "0")) != 0:
            return train(cfg, *args, **kwargs)
        lock = OutDirLock(make_dir(Path(cfg.out_dir), "out_dir")).acquire()
        try:
            return train(cfg, *args, **kwargs)
        finally:
            lock.release()
    return wrapped
