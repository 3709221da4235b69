"""Corpora, splits, tokenizers and batches."""
import json

import numpy as np
import pytest

from model.data import Batches, prepare, split_documents, Document
from model.errors import UserError
from model.tokenizer import CharTokenizer, GPT2Tokenizer


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


def test_embedded_shakespeare_corpus(tmp_path):
    folder = prepare("shakespeare", "char", tmp_path / "data")
    meta = json.loads((folder / "meta.json").read_text())
    c = meta["counts"]
    assert c["train"]["chars"] + c["val"]["chars"] == 5_057_198
    assert meta["tokenizer"]["vocab_size"] == 84
    assert len(meta["held_out"]) == 5 and "hamlet" not in meta["held_out"]
    assert c["val"]["chars"] == 620_853
