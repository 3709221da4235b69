"""Tokenizers: characters, or GPT-2's byte-pair encoding built offline.

tiktoken.get_encoding("gpt2") downloads its rank file from the web; the same
ranks (r50k_base) ship in the openai-whisper sdist on PyPI, so we build the
Encoding from that file with its hash pinned.
"""
from __future__ import annotations

import hashlib
import json
from typing import Protocol

from ..errors import UserError
from .fetch import WHISPER, cache_dir, extract_members

GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# GPT-2's pre-tokenisation: contractions, letters, numbers, other symbols, spaces.
GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                r"""|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def meta(self) -> dict: ...


class CharTokenizer:
    """One token per distinct character of the corpus, in sorted order."""

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    @classmethod
    def fit(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            missing = sorted({c for c in text if c not in self.stoi})
            raise UserError(f"text has characters the char vocabulary lacks: {missing[:10]!r}; "
                            "remove them or train on a corpus that contains them") from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def meta(self) -> dict:
        return {"kind": "char", "vocab_size": self.vocab_size, "chars": self.chars}


class GPT2Tokenizer:
    """GPT-2 BPE (50257 tokens) through tiktoken, with no network needed."""

    def __init__(self):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        files = extract_members(WHISPER, lambda name: name.endswith("assets/gpt2.tiktoken"),
                                cache_dir() / "gpt2")
        ranks = load_tiktoken_bpe(str(files[0]), expected_hash=GPT2_RANKS_SHA256)
        # The name must not be "gpt2": tiktoken would take it for its own registered encoding.
        self.ranks = ranks  # bytes -> id, also what `tinygpt export` builds GPT-2's files from
        self.enc = tiktoken.Encoding(name="tinygpt-gpt2", pat_str=GPT2_PATTERN,
                                     mergeable_ranks=ranks, special_tokens={EOT: 50256})
        self.vocab_size = self.enc.n_vocab
        self.eot = 50256

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(ids)

    def meta(self) -> dict:
        return {"kind": "gpt2", "vocab_size": self.vocab_size}


def vocab_hash(meta: dict) -> str:
    """A short name for a whole vocabulary: equal hashes mean every id stands for the same token."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:12]


def check_same_vocab(trained: dict, now: dict, what: str, fix: str) -> None:
    """UserError unless two tokenizer metadata map every id to the same token: a model run on
    another mapping reads every id as another character, and nothing else would notice."""
    if vocab_hash(trained) == vocab_hash(now):
        return
    if trained.get("kind") == now.get("kind") == "char":
        gone = sorted(set(trained["chars"]) - set(now["chars"]))
        new = sorted(set(now["chars"]) - set(trained["chars"]))
        diff = (f"{gone[:5]!r} gone, {new[:5]!r} new" if gone or new
                else "the same characters in another order")
    else:
        diff = f"{trained.get('kind')} there, {now.get('kind')} here"
    raise UserError(f"{what} has another vocabulary than the checkpoint was trained on (hash "
                    f"{vocab_hash(trained)} there, {vocab_hash(now)} here; {diff}); {fix}")


def from_meta(meta: dict) -> Tokenizer:
    if meta.get("kind") == "char" and isinstance(meta.get("chars"), list):
        return CharTokenizer(meta["chars"])
    if meta.get("kind") == "gpt2":
        return GPT2Tokenizer()
    raise UserError(f"unknown tokenizer {meta.get('kind')!r} in metadata; "
                    "prepare the data again with --tokenizer char or gpt2")
