"""The phase-change detector: where a copy-loss curve leaves its plateau, and how fast it falls.

Definitions (applied to the loss on the copied tokens of held-out synthetic probes, read at
every evaluation and, where a plan sets probe_every, every probe_every steps between them):
- plateau: the loss at the first reading at or after warmup (chance, ln V, for a model
  that has not yet learned to copy);
- floor: the lowest loss reached, and the first reading's step that reaches it (a fall can
  end long before the floor: the loss creeps down for the rest of the run);
- transition step: the first step where the loss is below half the plateau;
- the fall: from 10% to 90% of the way from plateau to floor (crossings interpolated
  linearly between readings); the plateau before it runs from that first reading to
  the 10% crossing;
- a phase change: the loss ends below FORMED nats and the fall takes fewer steps than the
  plateau before it.
"""
from __future__ import annotations

import numpy as np

FORMED = 0.5  # nats on the copied tokens: copying is reliable (chance is ln 84 = 4.43)


def crossing(steps: np.ndarray, values: np.ndarray, level: float) -> float | None:
    """The first step at which values fall to `level` or below, interpolated between the
    reading before and the one at the crossing; None if they never do."""
    below = np.flatnonzero(values <= level)
    if not len(below):
        return None
    i = int(below[0])
    if i == 0:
        return float(steps[0])
    s0, s1, v0, v1 = steps[i - 1], steps[i], values[i - 1], values[i]
    return float(s0 + (s1 - s0) * (v0 - level) / (v0 - v1))


def transition(steps, losses, start: int = 0) -> dict:
    """Plateau, floor, transition step and fall of one copy-loss curve (see the module)."""
    steps, losses = np.asarray(steps, float), np.asarray(losses, float)
    keep = steps >= start
    steps, losses = steps[keep], losses[keep]
    plateau, floor = float(losses[0]), float(losses.min())
    floor_step = float(steps[int(np.argmin(losses))])
    drop = plateau - floor
    at = crossing(steps, losses, plateau / 2)
    s10 = crossing(steps, losses, plateau - 0.1 * drop) if drop > 0 else None
    s90 = crossing(steps, losses, plateau - 0.9 * drop) if drop > 0 else None
    if at is None:  # no transition: a drift of a few hundredths has no "fall" to time
        s10 = s90 = None
    fall = s90 - s10 if s10 is not None and s90 is not None else None
    plateau_steps = s10 - steps[0] if s10 is not None else None
    formed = floor < FORMED
    return {"plateau": plateau, "floor": floor, "floor_step": floor_step, "step": at,
            "start_of_fall": s10, "end_of_fall": s90, "fall_steps": fall,
            "plateau_steps": plateau_steps, "formed": bool(formed),
            "phase_change": bool(formed and fall is not None and fall < plateau_steps)}


def readings(rows: list[dict]) -> list[dict]:
    """The records of a run's metrics that carry the copy probe's reading, in step order: every
    evaluation's and, where the plan took them (probe_every), the light readings between
    evaluations; a study from before those has the evaluations' alone."""
    return sorted((r for r in rows if "copy_loss" in r), key=lambda r: r["step"])


def copy_transition(readings: list[dict], start: int) -> dict:
    """transition() of the copy loss of these readings: the finer their grid, the sharper the
    transition step and the fall's width."""
    return transition([r["step"] for r in readings], [r["copy_loss"] for r in readings], start)
