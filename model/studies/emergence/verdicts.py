"""The emergence study's claims, each decided from the measurements with its numbers.

1. Phase change: a run of 2+ layers whose copy loss leaves a plateau and falls below FORMED
   nats faster than it sat on the plateau, with its best head's prefix matching >= 0.3.
2. Threshold: 1-layer runs without smeared keys stay near chance (floor within NEAR_CHANCE
   nats of ln V); smeared 1-layer runs form the circuit.
3. Transfer: past the transition, the 2nd copy of repeated held-out text costs >= 1 nat/char
   less than the 1st.
4. Few-shot emergence: on a copy-type task, exact match at some k >= 4 is 0 at every few-shot
   evaluation of a model without the circuit (copy loss near its plateau) and >= 0.5 at one
   past its transition, while the controls stay flat (their exact match varies by less than
   FLAT across all evaluations).
"""
from __future__ import annotations

from ..common.icl import INDUCTION_FORMED

NEAR_CHANCE = 0.5   # nats below ln V that still counts as "at chance" for the copy loss
TRANSFER = 1.0      # nats/char: the 2nd copy of held-out text this much cheaper than the 1st
FEWSHOT_HIGH = 0.5  # exact match that counts as the skill being there
FLAT = 0.1          # a control's exact match may vary this much across runs and stay "flat"


COPY_TASKS = ("copy", "pair_recall", "speaker_recall")
CONTROLS = ("reversal", "addition")


def final_fewshot(run: dict) -> dict:
    """The few-shot table of the run's last evaluation that has one."""
    with_tasks = [r for r in run["evals"] if "fewshot" in r]
    return with_tasks[-1]["fewshot"] if with_tasks else {}


def name(run: dict) -> str:
    tags = " smeared" * run["smear"] + " natural text" * run.get("natural", False)
    return f"{run['n_layer']}x{run['n_embd']}{tags}"


def shaped(runs: list[dict]) -> list[dict]:
    """The runs trained on the plan's data shape (not the natural-text controls)."""
    return [r for r in runs if not r.get("natural")]


def yes(ok: bool) -> str:
    return "**holds**" if ok else "**does not hold**"


def phase_changes(runs: list[dict]) -> str:
    found = [r for r in shaped(runs) if r["n_layer"] >= 2 and r["transition"]["phase_change"]
             and max(e["prefix_matching"] for e in r["evals"]) >= INDUCTION_FORMED]
    detail = "; ".join(f"{name(r)}: plateau {r['transition']['plateau_steps']:.0f} steps, "
                       f"fall {r['transition']['fall_steps']:.0f} steps, floor "
                       f"{r['transition']['floor']:.2f} nats, prefix matching "
                       f"{max(e['prefix_matching'] for e in r['evals']):.2f}" for r in found)
    return f"- Phase change in a 2+ layer model: {yes(bool(found))}. {detail or 'none found'}."


def threshold(runs: list[dict], chance: float) -> str:
    runs = shaped(runs)
    plain1 = [r for r in runs if r["n_layer"] == 1 and not r["smear"]]
    smeared = [r for r in runs if r["smear"]]
    stay = all(r["transition"]["floor"] >= chance - NEAR_CHANCE for r in plain1)
    formed = [r for r in smeared if r["transition"]["step"] is not None
              and max(e["prefix_matching"] for e in r["evals"]) >= INDUCTION_FORMED]
    never = [name(r) for r in runs if r["n_layer"] >= 2 and not r["smear"]
             and r["transition"]["step"] is None]
    floors = ", ".join(f"{name(r)} {r['transition']['floor']:.2f}" for r in plain1)
    lines = [f"- 1-layer models stay at chance ({chance:.2f} nats) on the copy probes: "
             f"{yes(stay and bool(plain1))} (lowest copy loss: {floors or 'no 1-layer runs'})."]
    if smeared:
        lines.append(f"- Smeared keys let 1-layer models form it (copy loss below half its "
                     f"plateau, prefix matching >= {INDUCTION_FORMED}): {yes(bool(formed))} "
                     f"({', '.join(name(r) for r in formed) or 'none'} of "
                     f"{', '.join(name(r) for r in smeared)}; lowest copy loss "
                     + ", ".join(f"{r['transition']['floor']:.2f}" for r in smeared) + ").")
    lines.append(f"- 2+ layer models that never transitioned within the budget: "
                 f"{', '.join(never) or 'none'}.")
    return "\n".join(lines)


def transfer(runs: list[dict]) -> str:
    formed = [r for r in runs if r["transition"]["step"] is not None]
    gains = {name(r): r["evals"][-1]["text_copy_gain"] for r in formed}
    ok = bool(gains) and all(g >= TRANSFER for g in gains.values())
    detail = ", ".join(f"{n} {g:+.2f}" for n, g in gains.items())
    return (f"- Transfer to natural text (held-out plays, 2nd copy >= {TRANSFER:g} nat/char "
            f"cheaper than the 1st, in every model past the transition): {yes(ok)} "
            f"({detail or 'no model past the transition'}).")


def fewshot_points(run: dict, task: str, k: str) -> tuple[list[float], list[float]]:
    """Exact match at one task and k from a run's few-shot evaluations: those where its copy
    loss was still near the plateau (within NEAR_CHANCE nats: no circuit yet), and those where
    it was below half the plateau (past the transition). Evaluations caught mid-fall are in
    neither."""
    plateau = run["transition"]["plateau"]
    before, after = [], []
    for row in run["evals"]:
        s = row.get("fewshot", {}).get(task, {}).get("k", {}).get(k)
        if s is None:
            continue
        if row["copy_loss"] >= plateau - NEAR_CHANCE:
            before.append(s["exact_match"])
        elif row["copy_loss"] <= plateau / 2:
            after.append(s["exact_match"])
    return before, after


def fewshot(runs: list[dict], plan: dict) -> str:
    ks = [str(k) for k in plan["fewshot_k"] if k >= 4]
    emerged = []
    for task in COPY_TASKS:
        for k in ks:
            split = [fewshot_points(r, task, k) for r in runs]
            off = [v for before, _ in split for v in before]
            on = [v for _, after in split for v in after]
            if off and on and max(off) == 0 and max(on) >= FEWSHOT_HIGH:
                emerged.append(f"{task} at k={k} (0 in {len(off)} evaluations without the "
                               f"circuit → up to {max(on):.2f} in {len(on)} with it)")
    spread = {}
    for task in CONTROLS:
        vals = [v for r in runs for k in ks for part in fewshot_points(r, task, k) for v in part]
        spread[task] = (max(vals) - min(vals)) if vals else None
    flat = all(s is not None and s < FLAT for s in spread.values())
    tasks = {e.split(" at ")[0] for e in emerged}
    return (f"- Few-shot emergence on at least two copy-type tasks with the controls flat "
            f"(exact match 0 at every evaluation whose copy loss was within {NEAR_CHANCE} nats "
            f"of its plateau, >= {FEWSHOT_HIGH} at one below half the plateau): {yes(len(tasks) >= 2 and flat)}. Emerged: "
            f"{'; '.join(emerged) or 'none'}. Controls' exact-match spread across all "
            "evaluations: " + ", ".join(f"{t} {'—' if s is None else f'{s:.2f}'}"
                                        for t, s in spread.items()) + ".")


def natural_control(runs: list[dict]) -> list[str]:
    return [f"- Natural-text control {name(r)} (same steps, natural text only): copy loss "
            f"{r['transition']['plateau']:.2f} → {r['transition']['floor']:.2f}, best prefix "
            f"matching {max(e['prefix_matching'] for e in r['evals']):.2f}, held-out text 1st − "
            f"2nd copy {r['evals'][-1]['text_copy_gain']:+.2f} nats/char, val loss "
            f"{r['val_loss']:.3f}." for r in runs if r.get("natural")]


def verdicts(runs: list[dict], plan: dict) -> list[str]:
    chance = runs[0]["evals"][0]["copy_chance"]
    return [phase_changes(runs), threshold(runs, chance), transfer(runs), fewshot(runs, plan),
            *natural_control(runs)]
