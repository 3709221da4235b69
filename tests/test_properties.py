"""Issue 28: property-based tests over plan files and command-line values, to find the next
hole before a user does. Whatever a plan or an option holds, the program either accepts it and
can build every run it describes, or refuses it with a UserError: never another exception."""
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.errors import UserError

SCALARS = (st.integers(-2, 2 ** 64) | st.booleans() | st.text(max_size=12)
           | st.floats(allow_nan=True, allow_infinity=True))
VALUES = SCALARS | st.lists(SCALARS, max_size=3)
PLAN_KEYS = ("name", "seeds", "evals", "tokens", "block_size", "batch_size", "flops",
             "tokenizer", "arch", "description")
TRAIN_KEYS = ("max_iters", "eval_interval", "eval_start", "warmup_iters", "lr", "dtype",
              "eval_batches", "grad_clip", "weight_decay", "out_dir", "seed", "threads",
              "probe_interval", "synthetic_until")


def toml_value(v) -> str:
    """A value as TOML writes it (tomllib reads TOML but does not write it)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    return "[" + ", ".join(map(toml_value, v)) + "]"


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(top=st.dictionaries(st.sampled_from(PLAN_KEYS), VALUES, max_size=3),
       train=st.dictionaries(st.sampled_from(TRAIN_KEYS), VALUES, max_size=2))
def test_a_plan_is_refused_in_one_line_or_every_run_can_be_built(tmp_path, top, train):
    from model.errors import plain_name
    from model.studies.common.plan import check_evaluations, load_plan

    lines = ['tokens = 20_000', 'block_size = 16', 'batch_size = 2', 'evals = 4']
    lines = [li for li in lines if li.split(" =")[0] not in top]
    lines += [f"{k} = {toml_value(v)}" for k, v in top.items()]
    lines += ["[train]", *(f"{k} = {toml_value(v)}" for k, v in train.items())]
    lines += ["[lr]", '"2x24" = 1e-2', '"2x32" = 1e-2', '"2x48" = 1e-2']
    path = tmp_path / "plan.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        plan = load_plan(str(path))
        check_evaluations(plan)
    except UserError:
        return
    assert plain_name(plan.name)
    for spec in plan.runs():
        cfg = plan.train_config(spec, tmp_path / "out" / spec.name)
        assert type(cfg.seed) is int and cfg.out_dir.startswith(str(tmp_path / "out"))


TEXTS = st.text(max_size=10) | st.integers(-10 ** 20, 10 ** 20).map(str) \
    | st.floats().map(str) | st.sampled_from(["true", "false", "nan", "inf", "-1", "0", "1e9"])


@settings(max_examples=300, deadline=None, database=None)
@given(cli=st.dictionaries(st.sampled_from(TRAIN_KEYS + ("n_layer", "n_head", "n_embd",
                                                         "block_size", "batch_size", "size",
                                                         "init_from", "schedule")),
                           TEXTS, max_size=3))
def test_train_options_are_refused_in_one_line_or_valid(cli):
    from model.train.train_config import config_from

    try:
        cfg = config_from(None, cli)
    except UserError:
        return
    assert cfg.max_iters >= 1 and cfg.block_size >= 1 and math.isfinite(cfg.lr)


EMERGENCE = ("name", "seeds", "fewshot_tasks", "depths", "widths", "steps", "eval_every",
             "block_size", "arch", "lr", "head_dim", "repeat_spans", "synthetic", "fewshot_at",
             "fewshot_k", "smeared_depths", "natural_controls", "probe_every", "synthetic_until")


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(top=st.dictionaries(st.sampled_from(EMERGENCE), VALUES | st.lists(st.lists(
           st.integers(-1, 40), max_size=2), max_size=2), max_size=3),
       train=st.dictionaries(st.sampled_from(TRAIN_KEYS), VALUES, max_size=2))
def test_an_emergence_plan_is_refused_in_one_line_or_every_run_can_be_built(tmp_path, top,
                                                                           train):
    from pathlib import Path

    from model.studies.emergence.emergence_plan import load_emergence_plan
    from model.errors import plain_name
    from model.studies.common.plan import read_plan

    base = (Path(__file__).resolve().parents[1] / "configs" / "study" / "emergence-quick.toml")
    keep = [li for li in base.read_text().split("[train]")[0].splitlines()
            if li.split(" =")[0] not in top]
    lines = [*keep, *(f"{k} = {toml_value(v)}" for k, v in top.items()),
             "[train]", *(f"{k} = {toml_value(v)}" for k, v in train.items())]
    path = tmp_path / "plan.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        plan = load_emergence_plan(*read_plan(str(path)))
        for run in plan.runs():
            plan.train_config(run, tmp_path / "out" / run.name).gpt_config(84)
    except UserError:
        return
    assert plain_name(plan.name)
