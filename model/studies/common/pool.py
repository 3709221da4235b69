"""Several runs of a study at once, each in its own process with its own share of the cores.

On a CPU the small models of a ladder cannot keep two threads busy: measured on a 2-core
Xeon (docs/measurements.md), the 2x24 model trains 1.1-1.2x faster on two threads than on one,
and even 6x160 only 1.5-1.8x. Two runs side by side, one thread each, get 2x. Each run
is a fresh process (spawned, not forked: OpenMP's threads do not survive a fork), so its
threads and random state are its own, as when it runs alone. Its output goes to
<run>/train.log; the study prints a line as each run starts and ends.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Callable

from ...errors import UserError, make_dir, one_line
from ...files import machine
from ...train.precision import Choice
from ...train.train_config import TrainConfig

LOG = "train.log"
OnEval = Callable[..., dict]  # train()'s on_eval(model, step, full): instruments it reads


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when the study's process dies (kill -9 included), so no
    orphan keeps training; the run's checkpoint lets the next `tinygpt study` resume it. A
    study that died while this process was still starting up is not there to signal it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _worker(cfg: TrainConfig, conn: Connection, parent: int, on_eval: OnEval | None,
            auto: Choice | None) -> None:
    """One run in a fresh process (with train()'s on_eval and auto, pickled across), its output
    appended to <out_dir>/train.log; sends back
    ("done", summary), ("error", message) for a user's or the environment's error (as the
    command line would print it), or ("crash", traceback)."""
    from ...train.trainer import train

    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the study's to handle
    with open(make_dir(Path(cfg.out_dir), "out") / LOG, "a", buffering=1) as f, \
            contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            conn.send(("done", {**train(cfg, on_eval, auto), "machine": machine()}))
        except Exception as e:
            message = one_line(e)
            if message is not None:
                conn.send(("error", message))
            else:  # ours to fix: the traceback, in the log and to the study
                trace = traceback.format_exc()
                print(trace, flush=True)
                conn.send(("crash", trace))


def _outcome(cfg: TrainConfig, process, conn: Connection) -> dict:
    """The summary a finished worker sent, or its failure raised as one error here."""
    try:
        kind, value = conn.recv()
    except EOFError:  # it ended without a word
        kind, value = "died", None
    process.join()
    log = Path(cfg.out_dir) / LOG
    if kind == "done":
        return value
    if kind == "error":
        raise UserError(f"{cfg.run_name}: {value}")
    if kind == "crash":
        raise RuntimeError(f"{cfg.run_name} failed; its traceback, also in {log}:\n{value}")
    raise UserError(f"{cfg.run_name}: its process died (exit code {process.exitcode}: killed, "
                    f"or out of memory) with no error of its own; its last lines are in {log}. "
                    "Run the study again to resume it from its last checkpoint")


def run_parallel(configs: list[TrainConfig], jobs: int,
                 started: Callable[[TrainConfig], None],
                 finished: Callable[[TrainConfig, dict], None],
                 on_eval: OnEval | None = None, auto: Choice | None = None) -> None:
    """Train configs, at most `jobs` at a time, in the order given; started and finished are
    called in this process as each run starts and ends, on_eval (train()'s) in each run's;
    auto is train()'s.
    The first run to fail stops the others (each keeps its last checkpoint) and its error is
    raised here."""
    ctx = multiprocessing.get_context("spawn")
    pending, running = list(configs), {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                cfg = pending.pop(0)
                ours, theirs = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_worker, daemon=True,
                                      args=(cfg, theirs, os.getpid(), on_eval, auto))
                process.start()
                theirs.close()
                running[ours] = (cfg, process)
                started(cfg)
            for conn in wait(list(running)):  # a message, or the end of a process that sent none
                cfg, process = running.pop(conn)
                finished(cfg, _outcome(cfg, process, conn))
    finally:
        for _, process in running.values():
            process.kill()
            process.join()
