"""`tinygpt export`: a run as a Hugging Face folder that transformers runs to the same logits and
the same greedy tokens with no tinygpt code, and that `tinygpt sample` reads back."""
from dataclasses import asdict, replace

import pytest
import torch

from model.cli import main
from model.data.tokenizer import CharTokenizer, GPT2Tokenizer
from model.infer.generate import generate
from model.nn.config import ARCHS
from model.nn.gpt import GPT, GPTConfig
from model.train import checkpoint

from conftest import make_text

TEXT = make_text(4, seed=3) + "  two spaces,\ta tab, and a blank line:\n\n"


def tiny_run(folder, tok, **overrides) -> GPT:
    """A randomly initialised 2-layer, width-32 model saved as a run's ckpt.pt. Every weight
    is moved off its initial value (the norms' gains from 1, their shifts and the biases from
    0), so a weight exported to the wrong place or unexported changes the logits."""
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=2, n_head=2, n_embd=32,
                    **overrides)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    folder.mkdir()
    checkpoint.save(folder / "ckpt.pt", {"model": model.state_dict(), "model_config": asdict(cfg),
                                         "tokenizer": tok.meta()})
    return model


def exported(tmp_path, tok, capsys, **overrides):
    """(tinygpt's model, the exported folder) of a tiny run."""
    model = tiny_run(tmp_path / "run", tok, **overrides)
    assert main(["export", str(tmp_path / "run"), "--to", str(tmp_path / "hf")]) == 0
    assert "exported" in capsys.readouterr().out
    return model, tmp_path / "hf"


def same_as_transformers(model: GPT, folder, ids: list[int]) -> float:
    """Logits of tinygpt and of transformers on random ids and on ids (real text), asserted
    equal within 1e-5, and greedy continuations asserted identical; the largest difference."""
    transformers = pytest.importorskip("transformers", reason="the [hf] extra is not installed")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    gen = torch.Generator().manual_seed(1)
    random_ids = torch.randint(0, model.cfg.vocab_size, (3, model.cfg.block_size), generator=gen)
    worst = 0.0
    with torch.no_grad():
        for x in (random_ids, torch.tensor([ids[:model.cfg.block_size]])):
            a, b = model(x)[0], theirs(x).logits
            worst = max(worst, (a - b).abs().max().item())
    assert worst <= 1e-5
    prompt = torch.tensor([ids[:20]])
    ours = generate(model, prompt, 40, temperature=0)
    assert theirs.generate(prompt, max_new_tokens=40, do_sample=False).tolist() == ours.tolist()
    return worst


@pytest.mark.extras
@pytest.mark.parametrize("bias", [False, True])
def test_char_model_runs_the_same_in_transformers(tmp_path, capsys, bias):
    tok = CharTokenizer.fit(TEXT)
    model, folder = exported(tmp_path, tok, capsys, bias=bias)
    transformers = pytest.importorskip("transformers", reason="the [hf] extra is not installed")
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    ids = theirs(TEXT)["input_ids"]
    assert ids == tok.encode(TEXT)
    assert theirs.decode(ids) == TEXT  # spaces, tabs and newlines exactly
    worst = same_as_transformers(model, folder, ids)
    print(f"char, bias={bias}: max |logit difference| {worst:.2e}")


@pytest.mark.extras
def test_gpt2_bpe_model_runs_the_same_in_transformers(tmp_path, capsys):
    tok = GPT2Tokenizer()
    model, folder = exported(tmp_path, tok, capsys)
    transformers = pytest.importorskip("transformers", reason="the [hf] extra is not installed")
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    text = TEXT + "It's 2024: naïve café, 日本語 — ok?  \n"
    ids = theirs(text)["input_ids"]
    assert ids == tok.encode(text)  # GPT-2's merges, rebuilt from tiktoken's ranks
    assert theirs.decode(ids) == text
    assert theirs.eos_token_id == tok.eot == theirs.convert_tokens_to_ids("<|endoftext|>")
    print(f"gpt2: max |logit difference| {same_as_transformers(model, folder, ids):.2e}")


def test_sample_reads_an_exported_folder(tmp_path, capsys):
    tok = CharTokenizer.fit(TEXT)
    _, folder = exported(tmp_path, tok, capsys)
    outputs = []
    for ckpt in (tmp_path / "run", folder):
        assert main(["sample", f"--ckpt={ckpt}", "--prompt=The king", "--max_new_tokens=30",
                     "--temperature=0"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and len(outputs[0]) > len("The king") + 30


def one_line_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


def test_what_cannot_be_exported_is_one_line(tmp_path, capsys):
    tok = CharTokenizer.fit(TEXT)
    err = one_line_error(capsys, "export", str(tmp_path / "nothing"), f"--to={tmp_path / 'a'}")
    assert "no checkpoint" in err
    tiny_run(tmp_path / "modern", tok, **ARCHS["modern"])
    err = one_line_error(capsys, "export", str(tmp_path / "modern"), f"--to={tmp_path / 'b'}")
    assert "rotary positions" in err and "GPT2LMHeadModel lacks" in err
    tiny_run(tmp_path / "run", tok)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    err = one_line_error(capsys, "export", str(tmp_path / "run"), f"--to={tmp_path / 'full'}")
    assert "not an empty folder" in err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert "--to" in one_line_error(capsys, "export", str(tmp_path / "run"))
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_each_modern_option_alone_is_refused(tmp_path):
    """Not only the whole modern preset: any one option GPT-2 lacks stops the export."""
    from model.export.hf_folder import refusal

    base = GPTConfig(n_layer=1, n_head=2, n_embd=32)
    assert refusal(base) is None and refusal(replace(base, zero_init=True, bias=True)) is None
    for field, value in ARCHS["modern"].items():
        if field != "zero_init":  # (an initialisation: the trained function is still GPT-2's)
            assert refusal(replace(base, **{field: value})) is not None, field
    assert refusal(replace(base, smear_keys=True)) is not None


def test_an_option_the_export_does_not_list_is_refused_by_name():
    """A new network option (here grouped-query attention) needs no entry in the export: any field
    away from GPT-2's default, other than shapes and init, is refused and named."""
    import dataclasses

    from model.export.hf_folder import refusal
    from model.nn.gpt import GPTConfig

    @dataclasses.dataclass(frozen=True)
    class WithKvHeads(GPTConfig):
        n_kv_head: int = 0  # 0: as many as n_head

    assert refusal(WithKvHeads()) is None
    assert refusal(WithKvHeads(zero_init=True, dropout=0.1)) is None
    assert "n_kv_head=1" in refusal(WithKvHeads(n_kv_head=1))
