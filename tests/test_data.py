"""Corpora, splits, tokenizers and batches."""
import json

import numpy as np
import pytest
import torch

from model.data import shapes
from model.data.corpus import Document, split_documents
from model.data.prepare import Batches, held_out_text, held_out_tokens, prepare
from model.data.tokenizer import CharTokenizer, GPT2Tokenizer
from model.errors import UserError


def test_gpt2_bpe_offline_known_ids():
    tok = GPT2Tokenizer()
    assert tok.encode("hello world") == [31373, 995]
    assert tok.encode(" the") == [262]
    assert tok.vocab_size == 50257
    text = "To be, or not to be: that is the question.\n"
    assert tok.decode(tok.encode(text)) == text


def test_char_round_trip():
    text = "Hark! what light\nthrough yonder window breaks?"
    tok = CharTokenizer.fit(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == len(set(text))
    assert CharTokenizer(tok.meta()["chars"]).encode("light") == tok.encode("light")


def test_unknown_characters_are_named():
    tok = CharTokenizer.fit("abc")
    with pytest.raises(UserError, match="lacks"):
        tok.encode("abz")


def test_split_holds_out_whole_documents():
    docs = [Document(f"w{i}", f"text {i}\n") for i in range(21)]
    train, val, held = split_documents(docs)
    assert held == ["w0", "w10", "w20"]
    assert "text 10" in val and "text 10" not in train
    assert len(train) + len(val) == sum(len(d.text) for d in docs)


def test_prepare_writes_tokens_and_meta(corpus, tmp_path):
    folder = prepare(str(corpus), "char", tmp_path / "data")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["held_out"] == ["work2.txt"]
    train = np.fromfile(folder / "train.bin", dtype=np.uint16)
    assert len(train) == meta["counts"]["train"]["tokens"] > 0
    tok = CharTokenizer(meta["tokenizer"]["chars"])
    assert tok.decode(train[:50].tolist()) == (corpus / "work0.txt").read_text()[:50]
    # the held-out text is kept as it was split off, and it is what val.bin holds
    assert held_out_text(folder) == (corpus / "work2.txt").read_text()
    assert tok.decode(held_out_tokens(folder).tolist()) == held_out_text(folder)


def test_a_folder_prepared_before_val_txt_is_prepared_again(corpus, tmp_path, capsys):
    folder = prepare(str(corpus), "char", tmp_path / "data")
    tokens = (folder / "val.bin").read_bytes()
    (folder / "val.txt").unlink()  # a folder as preparation left it before it kept the text
    assert prepare(str(corpus), "char", tmp_path / "data") == folder
    assert "before preparation kept the held-out text (val.txt)" in capsys.readouterr().err
    assert held_out_text(folder) == (corpus / "work2.txt").read_text()
    assert (folder / "val.bin").read_bytes() == tokens


def test_another_or_an_edited_corpus_of_the_same_name_is_prepared_again(tmp_path):
    first, second = tmp_path / "a" / "ok.txt", tmp_path / "b" / "ok.txt"
    for path, text in ((first, "abc " * 500), (second, "xyz! " * 500)):
        path.parent.mkdir()
        path.write_text(text)
    chars = lambda folder: json.loads((folder / "meta.json").read_text())["tokenizer"]["chars"]
    folder = prepare(str(first), "char", tmp_path / "data")
    assert prepare(str(second), "char", tmp_path / "data") == folder  # the same name: ok-char
    assert "".join(chars(folder)) == " !xyz"
    second.write_text("pqr " * 500)
    assert "".join(chars(prepare(str(second), "char", tmp_path / "data"))) == " pqr"
    stamp = (folder / "train.bin").stat().st_mtime_ns
    prepare(str(second), "char", tmp_path / "data")  # unchanged: reused, not rewritten
    assert (folder / "train.bin").stat().st_mtime_ns == stamp


def test_batches_are_a_pure_function_of_seed_step_shard(corpus, tmp_path):
    b = Batches(prepare(str(corpus), "char", tmp_path / "data"), block_size=16)
    x1, y1 = b.train_batch(seed=1, step=5, shard=0, batch_size=4)
    x2, y2 = b.train_batch(seed=1, step=5, shard=0, batch_size=4)
    x3, _ = b.train_batch(seed=1, step=5, shard=1, batch_size=4)
    assert (x1 == x2).all() and (y1 == y2).all()
    assert not (x1 == x3).all()
    assert (x1[:, 1:] == y1[:, :-1]).all()  # targets are inputs shifted by one
    v1 = [x for x, _ in b.val_batches(3, 4)]
    v2 = [x for x, _ in b.val_batches(3, 4)]
    assert all((a == c).all() for a, c in zip(v1, v2))
    # two processes evaluate every other batch each: together, each batch once
    shares = [[x for x, _ in b.val_batches(3, 4, rank, 2)] for rank in (0, 1)]
    assert [len(s) for s in shares] == [2, 1]
    assert all(torch.equal(a, c) for a, c in zip([shares[0][0], shares[1][0], shares[0][1]], v1))


def test_repeat_spans_copy_a_span_later_in_the_window(corpus, tmp_path):
    b = Batches(prepare(str(corpus), "char", tmp_path / "data"), block_size=64)
    plain, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=32)
    x, y = b.train_batch(seed=1, step=2, shard=0, batch_size=32, repeat_spans=0.5)
    again, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=32, repeat_spans=0.5)
    assert (x == again).all() and (x[:, 1:] == y[:, :-1]).all()
    changed = (x != plain).any(dim=1)
    assert 4 <= int(changed.sum()) <= 28  # about half of 32 windows

    def has_repeat(row: torch.Tensor) -> bool:  # some span of >= 8 tokens occurs twice
        text = row.tolist()
        return any(text[i:i + 8] == text[j:j + 8] for i in range(len(text) - 8)
                   for j in range(i + 8, len(text) - 7))

    assert all(has_repeat(torch.cat((x[r], y[r, -1:]))) for r in changed.nonzero().flatten())
    val_before = [v for v, _ in b.val_batches(2, 4)]
    b.train_batch(seed=1, step=3, shard=0, batch_size=4, repeat_spans=1.0)
    assert all((v == w).all() for v, (w, _) in zip(val_before, b.val_batches(2, 4)))


def test_embedded_shakespeare_corpus(tmp_path):
    folder = prepare("shakespeare", "char", tmp_path / "data")
    meta = json.loads((folder / "meta.json").read_text())
    c = meta["counts"]
    assert c["train"]["chars"] + c["val"]["chars"] == 5_057_198
    assert meta["tokenizer"]["vocab_size"] == 84
    assert len(meta["held_out"]) == 5 and "hamlet" not in meta["held_out"]
    assert c["val"]["chars"] == 620_853


def test_synthetic_windows_are_random_tokens_with_one_copied_segment(corpus, tmp_path):
    b = Batches(prepare(str(corpus), "char", tmp_path), block_size=64)
    natural, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=64)
    x, y = b.train_batch(seed=1, step=2, shard=0, batch_size=64, synthetic=0.5)
    again, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=64, synthetic=0.5)
    assert torch.equal(x, again) and torch.equal(x[:, 1:], y[:, :-1])
    changed = [r for r in range(64) if not torch.equal(x[r], natural[r])]
    assert 20 <= len(changed) <= 44  # about half the rows
    for r in changed:
        row = torch.cat((x[r], y[r, -1:]))  # the 65-token sequence
        L = shapes.segment_length(65)
        copies = [(s, d) for s in range(65 - L) for d in range(s + L, 65 - L + 1)
                  if torch.equal(row[s:s + L], row[d:d + L])]
        assert copies, f"row {r} has no copied segment of {L} tokens"
    x1, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=64, synthetic=1.0)
    assert all(not torch.equal(x1[r], natural[r]) for r in range(64))
    assert int(x1.max()) < b.tokenizer.vocab_size


def test_copied_targets_point_at_the_second_copy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        tokens, dst = shapes.copy_sequence(65, 84, rng)
        L = shapes.segment_length(65)
        y = tokens[1:]
        sl = shapes.copied_targets(64, dst)
        assert sl.stop - sl.start == L - 1
        assert torch.equal(y[sl], tokens[dst + 1:dst + L])
        assert any(torch.equal(tokens[s:s + L], tokens[dst:dst + L]) for s in range(dst - L + 1))


def test_shape_names():
    assert shapes.name() == "natural text"
    assert shapes.name(0.5, 0) == "natural text (50% of windows with a planted repeat)"
    assert shapes.name(0, 0.5) == "50% synthetic copy sequences + 50% natural text"
    assert shapes.name(0, 1) == "synthetic copy sequences only"
    assert shapes.name(0, 0, 0.5) == "50% unique-token copy sequences + 50% natural text"
    assert shapes.name(0, 0.25, 0.75) == ("25% synthetic copy sequences + "
                                         "75% unique-token copy sequences")
    assert shapes.name(0, 0, 1) == "unique-token copy sequences only"
    assert shapes.name(0, 0.5, 0, 1000) == ("synthetic copy sequences only for the first 1,000 "
                                            "steps, then 50% synthetic copy sequences + 50% "
                                            "natural text")


def test_unique_copies_repeat_a_segment_whose_tokens_occur_nowhere_else(corpus, tmp_path):
    b = Batches(prepare(str(corpus), "char", tmp_path), block_size=64)
    natural, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=64)
    before, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=64, synthetic=0.5)
    mixed, _ = b.train_batch(seed=1, step=2, shard=0, batch_size=64, synthetic=0.5,
                             unique_copies=0.25)
    x, y = b.train_batch(seed=1, step=2, shard=0, batch_size=64, unique_copies=0.5)
    assert torch.equal(x[:, 1:], y[:, :-1])
    L = shapes.segment_length(65)

    def unique_copy(row: torch.Tensor) -> bool:  # (65,): L distinct tokens, twice, nowhere else
        counts = torch.bincount(row, minlength=b.tokenizer.vocab_size)
        return any(torch.equal(row[s:s + L], row[d:d + L]) and (counts[row[s:s + L]] == 2).all()
                   for s in range(65 - 2 * L + 1) for d in range(s + L, 65 - L + 1))

    rows = [torch.cat((x[r], y[r, -1:])) for r in range(64)]
    changed = [r for r in range(64) if not torch.equal(x[r], natural[r])]
    assert 20 <= len(changed) <= 44 and all(unique_copy(rows[r]) for r in changed)
    # unique copies take rows whose draw lies past synthetic's: the same rows are plain copies
    copies = {r for r in range(64) if not torch.equal(before[r], natural[r])}
    reshaped = {r for r in range(64) if not torch.equal(mixed[r], natural[r])}
    assert copies <= reshaped and reshaped - copies
    tokens, dst = shapes.copy_sequence(65, 84, np.random.default_rng(0), unique=True)
    assert unique_copy(tokens) and len(set(tokens[dst:dst + L].tolist())) == L


def test_shapes_cannot_take_more_than_every_window():
    from model.train.train_config import TrainConfig

    with pytest.raises(UserError, match=r"synthetic \(0.6\) \+ unique_copies \(0.5\)"):
        TrainConfig(synthetic=0.6, unique_copies=0.5).validate()


def test_a_curriculum_trains_on_copy_sequences_only_until_its_step(corpus, tmp_path):
    """Before synthetic_until a step's windows are bitwise the all-synthetic ones; from it on,
    the configured mix's; without it, what the step drew before the curriculum existed."""
    from conftest import tiny_config
    from model.train.step import micro_batches

    cfg = tiny_config(corpus, tmp_path / "c", synthetic=0.5, synthetic_until=3, grad_accum=2)
    b = Batches(prepare(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)

    def drawn(step: int, **shape) -> list[torch.Tensor]:  # the step's windows, both shards
        return [x for shard in range(2)
                for x in b.train_batch(cfg.seed, step, shard, cfg.batch_size, **shape)]

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    got = {s: [x for batch in micro_batches(b, cfg, s) for x in batch] for s in range(6)}
    for step in (0, 2):
        assert same(got[step], drawn(step, synthetic=1.0))
    for step in (3, 5):
        assert same(got[step], drawn(step, synthetic=0.5))
        assert not same(got[step], drawn(step, synthetic=1.0))
    for shape in ({}, {"synthetic": 0.5}, {"repeat_spans": 0.5, "unique_copies": 0.25}):
        plain = tiny_config(corpus, tmp_path / "p", grad_accum=2, **shape)
        assert plain.synthetic_until == 0
        for step in (0, 3):
            assert same([x for batch in micro_batches(b, plain, step) for x in batch],
                        drawn(step, **shape))


def test_a_curriculum_leaves_validation_natural(corpus, tmp_path):
    """The untrained model's val loss is the same with and without a curriculum (the same
    held-out windows), and the curriculum changes what is trained."""
    from conftest import tiny_config
    from model.train.runlog import read_metrics
    from model.train.trainer import train

    for name, until in (("plain", 0), ("curriculum", 3)):
        train(tiny_config(corpus, tmp_path / name, synthetic=0.5, synthetic_until=until))
    plain, curriculum = (read_metrics(tmp_path / n) for n in ("plain", "curriculum"))
    val = lambda rows: [r["val_loss"] for r in rows if "val_loss" in r]
    assert val(plain)[0] == val(curriculum)[0] and val(plain)[1:] != val(curriculum)[1:]


@pytest.mark.parametrize("values,message", [
    ({"synthetic_until": -1}, "synthetic_until must be 0 or more, got -1"),
    ({"synthetic_until": 6, "max_iters": 6},
     r"synthetic_until \(6\) must be below max_iters \(6\)"),
])
def test_a_curriculum_must_end_within_the_run(values, message):
    from model.train.train_config import TrainConfig

    with pytest.raises(UserError, match=message):
        TrainConfig(**values).validate()
