"""The command line: every verb's options come from dataclasses, read as --key=value or
--key value, documented by their fields' comments, in one table of commands."""
import os
import subprocess
import sys
from dataclasses import MISSING, fields, replace
from pathlib import Path

import pytest

from model.args import field_type
from model.cli import COMMANDS, main
from model.cli.usage import comments
from model.nn.gpt import GPTConfig
from model.train.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
VERBS = sorted(COMMANDS)


def classes(verb: str) -> list[type]:
    command = COMMANDS[verb]
    return [c for c in (command.options, command.settings) if c]


@pytest.fixture
def captured(monkeypatch):
    """Every command's run() replaced by one that records what it was given."""
    seen = []
    for verb, command in COMMANDS.items():
        monkeypatch.setitem(COMMANDS, verb, replace(command, run=lambda *a: seen.append(a)))
    return seen


def test_train_config_takes_every_model_field():
    """A new GPTConfig field must be settable from a recipe or the command line."""
    mine = {f.name for f in fields(TrainConfig)}
    for f in fields(GPTConfig):
        if f.name != "vocab_size":  # comes from the prepared data
            assert f.name in mine, f"TrainConfig lacks the model field {f.name}"
            assert field_type(TrainConfig, f.name) is field_type(GPTConfig, f.name), f.name


@pytest.mark.parametrize("verb", VERBS)
def test_every_option_has_a_meaning_and_a_type_the_command_line_reads(verb):
    names = set()
    for cls in classes(verb):
        notes = comments(cls)
        for f in fields(cls):
            assert notes.get(f.name, ("", ""))[1], f"{cls.__name__}.{f.name} has no comment"
            kinds = (str, int, float, bool) + ((tuple,) if f.metadata.get("positional") else ())
            assert field_type(cls, f.name) in kinds, f"{cls.__name__}.{f.name}"
            assert f.name not in names, f"{f.name} is both an option and a setting"
            names.add(f.name)


@pytest.mark.parametrize("verb", VERBS)
def test_help_lists_every_option_with_type_default_and_meaning(verb, capsys):
    assert main([verb, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: tinygpt {verb}")
    for cls in classes(verb):
        for f in fields(cls):
            if not f.metadata.get("positional"):
                assert f"--{f.name}={field_type(cls, f.name).__name__.upper()}" in text


def test_train_help_says_what_an_option_means(capsys):
    assert main(["train", "-h"]) == 0
    text = capsys.readouterr().out
    assert "[CONFIG]" in text and "optimisation:" in text
    assert "--max_iters=INT" in text and "optimizer steps (default: 2000)" in text
    assert "--compile=BOOL" in text and "(default: false)" in text


def spelled(verb: str, joined: bool) -> list[str]:
    """Every option of the verb at its default (those without one left out), either spelling."""
    argv = []
    for cls in classes(verb):
        for f in fields(cls):
            if f.metadata.get("positional") or f.default in (MISSING, None):
                continue
            text = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
            argv += [f"--{f.name}={text}"] if joined else [f"--{f.name}", text]
    return argv


@pytest.mark.parametrize("verb", VERBS)
def test_both_spellings_give_the_same_options(verb, captured):
    needed = {"report": ["out/study"], "fewshot": ["out/run"], "export": ["out/run"],
              "chat": ["out/run"], "lmeval": ["out/run"]}.get(verb, [])
    assert main([verb, *needed, *spelled(verb, True)]) == 0
    assert main([verb, *spelled(verb, False), *needed]) == 0
    assert main([verb, *needed]) == 0
    joined, spaced, plain = captured
    assert joined == spaced
    assert joined[0] == plain[0]  # every option was given its default


def test_train_reads_its_config_file_and_spaced_options(monkeypatch, tmp_path):
    """`tinygpt train x.toml --max_iters 100`: one config file, then options (100 is no file)."""
    import model.train.trainer

    configs = []
    summary = {"val_loss": 1.0, "tokens": 1, "wall_s": 1.0}
    monkeypatch.setattr(model.train.trainer, "train", lambda cfg: configs.append(cfg) or summary)
    path = tmp_path / "x.toml"
    path.write_text('max_iters = 10\nlr = 0.01\ncompile = false\n')
    assert main(["train", str(path), "--max_iters", "100", "--compile",
                 "--no_save_checkpoints"]) == 0
    assert main(["train", "--max_iters", "100", str(path)]) == 0
    first, second = configs
    assert (first.max_iters, first.lr, first.compile, first.save_checkpoints) == (100, 0.01, True,
                                                                                  False)
    assert (second.max_iters, second.lr, second.compile) == (100, 0.01, False)


def test_bool_options_read_every_spelling(captured):
    assert main(["sample", "--no_cache", "--crop"]) == 0
    assert main(["sample", "--cache=false", "--crop", "true"]) == 0
    (a,), (b,) = captured
    assert (a.cache, a.crop) == (b.cache, b.crop) == (False, True)


@pytest.mark.parametrize("argv,message", [
    (["train", "a.toml", "b.toml"], "expected one config, got a.toml, b.toml"),
    (["report"], "missing the ROOT argument"),
    (["fewshot", "--items=6"], "missing the CHECKPOINTS argument"),
    (["sample", "out/x"], "cannot read argument 'out/x'"),
    (["sample", "--no_prompt"], "unknown key 'no_prompt'"),  # --no_ negates bools only
    (["sample", "--seed"], "cannot read argument '--seed': it needs a value, e.g. --seed=<int>"),
    (["prepare", "--tokenizer", "bpe"], "tokenizer must be one of 'char', 'gpt2', got 'bpe'"),
    (["study", "--wandb=yes"], "wandb must be one of 'disabled', 'offline', 'online'"),
    (["ppo", "--variant=maybe"], "variant must be one of '', 'ptx', 'sweep', got 'maybe'"),
    (["sample", "--crop=maybe"], "crop='maybe' is not a valid bool"),
    (["fewshot", "run", "--tasks=nosuch"], "unknown task(s) nosuch"),
    (["bench", "--vs=nothing"], "vs must be one of '', 'baseline'"),
])
def test_bad_arguments_are_one_line(captured, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and len(err.splitlines()) == 1
    assert not captured


def test_the_command_imports_no_study_figures():
    """Reading the command line must not import matplotlib: it writes its caches into the
    home folder, for every verb (test_train checks that training leaves home alone)."""
    code = "import sys, model.cli; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_help_into_a_pipe_closed_early_is_no_traceback():
    """`tinygpt train --help | head`: head leaves before the help is written."""
    proc = subprocess.Popen([sys.executable, "-m", "model.cli", "train", "--help"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # long before the command has imported torch and printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == ""


def test_the_command_keeps_numpy_blas_to_one_thread_unless_told():
    """OpenBLAS threads spin beside training runs (the report's fits ran 10x slower): importing
    the command sets one thread, and a user's own value is kept."""
    code = "import os, model.cli, numpy; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for given, expected in ((None, "1"), ("3", "3")):
        run_env = {**env, "PYTHONPATH": str(ROOT),
                   **({"OPENBLAS_NUM_THREADS": given} if given else {})}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=run_env, timeout=120,
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == expected


def test_a_cpu_held_to_smaller_kernels_gets_its_own_compile_cache():
    """torch.compile's cache is not keyed on the ISA-limiting variables (kernels cached under the
    full ISA went NaN under ATEN_CPU_CAPABILITY=avx2): with any of them set, the command gives
    the cache a folder named for them; without them, or with the user's own folder, it leaves
    the setting alone."""
    code = "import os, model.cli; print(os.environ.get('TORCHINDUCTOR_CACHE_DIR', '-'))"
    env = {k: v for k, v in os.environ.items()
           if k not in ("TORCHINDUCTOR_CACHE_DIR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                        "MKL_ENABLE_INSTRUCTIONS")}

    def cache_dir(**given: str) -> str:
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120,
                              env={**env, "PYTHONPATH": str(ROOT), **given}, capture_output=True,
                              text=True, check=True).stdout.strip()

    assert cache_dir() == "-"
    avx2 = cache_dir(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    assert avx2.endswith("_isa_avx2_AVX2_") and avx2 != cache_dir(ATEN_CPU_CAPABILITY="avx512")
    assert cache_dir(ATEN_CPU_CAPABILITY="avx2", TORCHINDUCTOR_CACHE_DIR="/x") == "/x"
