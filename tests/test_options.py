"""Config files and --key=value overrides: typed, checked, one-line errors."""
from dataclasses import fields
from pathlib import Path

import pytest

from model.errors import UserError
from model.nn.gpt import GPTConfig
from model.train.train_config import load_config


def test_overrides_are_cast_by_field_type(tmp_path):
    cfg = load_config(None, ["--dropout=0", "--compile=true", "--max_iters=7", "--lr=3e-4",
                             "--n_layer=3", "--dataset=foo.txt"])
    assert cfg.dropout == 0.0 and isinstance(cfg.dropout, float)
    assert cfg.compile is True and cfg.max_iters == 7 and cfg.lr == 3e-4 and cfg.n_layer == 3
    assert cfg.dataset == "foo.txt"


def test_overrides_read_with_a_space_and_as_bare_flags():
    cfg = load_config(None, ["--max_iters", "7", "--compile", "--bias", "false",
                             "--no_save_checkpoints", "--dataset", "foo.txt"])
    assert (cfg.max_iters, cfg.compile, cfg.bias, cfg.save_checkpoints) == (7, True, False, False)
    assert cfg.dataset == "foo.txt"


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('size = "2x32"\nlr = 1\nmax_iters = 10\n')
    cfg = load_config(str(path), ["--max_iters=20"])
    assert cfg.lr == 1.0 and cfg.max_iters == 20
    gcfg = cfg.gpt_config(vocab_size=50)
    assert (gcfg.n_layer, gcfg.n_embd, gcfg.vocab_size) == (2, 32, 50)


def test_explicit_fields_override_size_and_arch():
    cfg = load_config(None, ["--size=2x32", "--arch=modern", "--n_layer=3", "--pos=learned"])
    g = cfg.gpt_config(65)
    assert (g.n_layer, g.n_embd, g.pos, g.norm) == (3, 32, "learned", "rmsnorm")


@pytest.mark.parametrize("name", [f.name for f in fields(GPTConfig) if f.name != "vocab_size"])
def test_every_model_field_is_reachable_from_the_command_line(name):
    """TrainConfig repeats GPTConfig's fields by hand (issue #29): a field added to GPTConfig
    alone could be set by no recipe and no command line. Each is set to a non-default value."""
    default = getattr(GPTConfig(), name)
    if isinstance(default, bool):
        value = not default
    elif isinstance(default, str):
        value = {"pos": "rope", "norm": "rmsnorm", "mlp": "relu2"}[name]  # a new one goes here
    else:
        value = default * 2 if isinstance(default, int) else default + 0.25
    cfg = load_config(None, [f"--{name}={str(value).lower()}"])
    assert getattr(cfg.gpt_config(vocab_size=65), name) == value


@pytest.mark.parametrize("args,message", [
    (["--learning_rate=1"], "unknown key 'learning_rate'.*valid keys: .*lr"),
    (["--max_iters=ten"], "max_iters='ten' is not a valid int"),
    (["--compile=maybe"], "compile='maybe' is not a valid bool"),
    (["--dtype=float8"], "dtype must be one of 'auto', 'float32'"),
    (["--size=huge"], "size must be empty or a known size"),
    (["--repeat_spans=1.5"], "repeat_spans must be a fraction from 0 to 1, got 1.5"),
    (["max_iters=3"], "options look like --key=value or --key value"),
    (["--max_iters"], "cannot read argument '--max_iters'"),
    (["--lr=-1"], "lr must be a positive number, got -1.0"),
    (["--lr", "-1"], "lr must be a positive number, got -1.0"),  # a value, not an option
    (["--lr=nan"], "lr must be a positive number, got nan"),
    (["--dropout=2"], "dropout must be at least 0 and below 1, got 2.0"),
    (["--beta2=1"], "beta2 must be at least 0 and below 1"),
    (["--n_layer=0"], "n_layer must be at least 1, got 0"),
    (["--weight_decay=-1"], "weight_decay must be 0 or more"),
    (["--threads=-2"], "threads must be 0 or more"),
    (["--eval_batches=-1"], "eval_batches must be 0 or more"),
    (["--target_loss=1.5"], "target_loss=1.5 is compared with whole-split losses; set "
     "eval_batches=0"),
    (["--target_loss=-1", "--eval_batches=0"], "target_loss must be 0 or more"),
    (["--min_lr_frac=5"], "min_lr_frac must be a fraction from 0 to 1"),
    (["--out_dir="], "out_dir must be a path, not empty"),
    (["--dataset= "], "dataset must be a path, not empty"),
    # the model's shape, refused before any corpus is read (a typo'd --dataset is not reached)
    (["--n_embd=128", "--n_head=3", "--dataset=nowhere.txt"], "bad model shape: n_embd=128 is "
     "not divisible by n_head=3"),
    (["--arch=modern", "--n_embd=36", "--n_head=4"], "rotary positions need an even head size"),
])
def test_bad_overrides(args, message):
    with pytest.raises(UserError, match=message):
        load_config(None, args)


def test_toml_value_of_wrong_type(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('max_iters = "many"\n')
    with pytest.raises(UserError, match="max_iters must be int"):
        load_config(str(path))
    path.write_text('compile = 1\n')
    with pytest.raises(UserError, match="compile must be bool"):
        load_config(str(path))


def test_a_shipped_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the copy beside the package is used
    for name in ("shakespeare_char", "configs/shakespeare_char.toml"):
        cfg = load_config(name, ["--max_iters=7"])
        assert (cfg.max_iters, cfg.out_dir) == (7, "out/shakespeare-char")
    with pytest.raises(UserError, match="config file nope.toml not found"):
        load_config("nope.toml")


def test_configs_are_looked_for_here_first_then_beside_the_package(tmp_path, monkeypatch):
    from model.files import configs_dir

    monkeypatch.chdir(tmp_path)
    assert configs_dir() == Path(__file__).resolve().parents[1] / "configs"
    (tmp_path / "configs" / "study").mkdir(parents=True)
    assert configs_dir() == tmp_path / "configs"
