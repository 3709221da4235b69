"""The emergence pilots' table (docs/emergence/pilots/README.md): each pilot's last evaluation,
its best prefix matching and its transition step (over every copy-probe reading, the light ones
between evaluations included), read from the committed metrics.

    .venv/bin/python scripts/pilot_table.py docs/emergence/pilots
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from model.studies.emergence.emergence_report import shape_of

COLUMNS = ("pilot", "data shape", "lr", "batch", "other settings", "steps run (planned)",
           "val loss", "copy loss", "best prefix matching", "held-out 1st − 2nd copy",
           "transition")


def shape(plan: dict) -> str:
    if plan.get("echoes"):  # a shape since replaced by unique copies (commit 1881f53)
        return f"{plan['echoes']:.0%} echoes + {1 - plan['echoes']:.0%} natural text"
    return shape_of(plan)


def row(folder: Path, run: Path) -> str:
    plan = json.loads((folder / "plan.json").read_text())
    probes = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"copy_loss"' in line]  # evaluations, and light readings between (probe_every)
    evals = [e for e in probes if "val_loss" in e]
    last, first = evals[-1], evals[1]  # the first evaluation after step 0 sets the plateau
    crossed = next((e["step"] for e in probes if e["step"] >= first["step"]
                    and e["copy_loss"] < first["copy_loss"] / 2), None)
    train = plan.get("train", {})
    keys = ("optimizer", "qk_norm", "pos", "zero_init", "tie_embeddings")
    other = [f"{k}={train[k]}" for k in keys if k in train]
    other += [f"dtype={train.get('dtype')}"] * (train.get("dtype") != "float32")
    other += [f"head_dim={plan['head_dim']}"] * (plan["head_dim"] != 16)
    other += ["smeared keys"] * ("-smear" in run.name)
    cells = (f"{folder.name}/{run.name}", shape(plan), f"{plan['lr']:g}", plan["batch_size"],
             ", ".join(other) or "—", f"{last['step']:,} ({plan['steps']:,})",
             f"{last['val_loss']:.3f}", f"{last['copy_loss']:.2f}",
             f"{max(e['prefix_matching'] for e in probes):.2f}",
             f"{last['text_copy_gain']:+.2f}", "none" if crossed is None else f"{crossed:,}")
    return "| " + " | ".join(map(str, cells)) + " |"


def main(root: str) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    pilots = sorted(Path(root).glob("p*/"), key=lambda p: int(p.name.split("-")[0][1:]))
    for folder in pilots:
        for run in sorted(folder.glob("*-s*/")):
            print(row(folder, run))


if __name__ == "__main__":
    main(sys.argv[1])
