"""Preparation into token files, and batches.

prepare() turns a source's split (corpus.py) into data/<name>/{train,val}.bin (uint16
tokens), val.txt (the held-out text itself) and meta.json. Batches are a pure function of
(seed, step, shard), so a resumed run, a run on more processes, or another model size sees
exactly the same data order.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError, make_dir
from ..files import read_json, read_utf8
from . import shapes
from .corpus import fingerprint, load_documents, split_documents
from .tokenizer import CharTokenizer, GPT2Tokenizer, Tokenizer, from_meta

TOKEN_MAX = np.iinfo(np.uint16).max  # token files hold uint16 ids (see Batches)
PREPARED = ("train.bin", "val.bin", "val.txt", "meta.json")  # what write_preparation writes


def dataset_dir(source: str, tokenizer: str, root: str | Path = "data") -> Path:
    stem = "hf-" + source[3:].replace("/", "-") if source.startswith("hf:") else Path(source).stem
    return Path(root) / f"{stem}-{tokenizer}"


def prepare(source: str, tokenizer: str = "char", root: str | Path = "data") -> Path:
    """Tokenize a source into root/<name>/ once; later calls reuse it while the source is
    unchanged. Another corpus of the same name, or an edited one, is prepared again."""
    out = dataset_dir(source, tokenizer, root)
    mark = fingerprint(source)
    remove_dead_tmp(out)
    if prepared_from(out, mark):
        return out
    if mark is None and not source.startswith("hf:") and source != "shakespeare":
        load_documents(source)  # a corpus deleted since: say that, not "another or older"
    if (out / "meta.json").exists():
        before = prepared_meta(out)
        same = before is not None and before.get("fingerprint") == mark
        why = ("before preparation kept the held-out text (val.txt)" if same
               else f"from another or an older {source}")
        print(f"tinygpt: {out} was prepared {why}; preparing it again", file=sys.stderr)
    replaceable(out)
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
        write_preparation(tmp, tok, train, val, {"source": source, "fingerprint": mark,
                                                 "held_out": held})
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


def write_preparation(folder: Path, tok: Tokenizer, train: str, val: str, meta: dict) -> None:
    """The token files, the held-out text and meta.json (last) into a new folder; prepare()
    renames the whole folder into place, which is what makes the preparation atomic."""
    counts = {}
    for split, text in (("train", train), ("val", val)):
        ids = np.array(tok.encode(text), dtype=np.uint16)
        with open(folder / f"{split}.bin", "wb") as f:  # (tofile hides a full disk's errno)
            f.write(ids.data)
        counts[split] = {"chars": len(text), "tokens": int(ids.size)}
    # The few-shot study reads its held-out text here: rebuilt from the sources it could
    # differ from what val.bin holds (an edited file, a hub dataset streaming other rows).
    (folder / "val.txt").write_bytes(val.encode())
    meta = {**meta, "tokenizer": tok.meta(), "counts": counts}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def replaceable(out: Path) -> None:
    """UserError unless out holds nothing but what a preparation writes: the folder is replaced
    whole, and a run's out_dir or a user's files inside it would go with it."""
    foreign = sorted(p.name for p in out.iterdir() if p.name not in PREPARED) if out.is_dir() \
        else []
    if foreign:
        raise UserError(f"{out} is not prepared data only (it holds {foreign[0]}"
                        f"{', ...' if len(foreign) > 1 else ''}), and preparing replaces it whole; "
                        "move that away, or give --data_root another folder")


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


def prepared_meta(out: Path) -> dict | None:
    """The metadata of a finished preparation in out; None if there is none."""
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):  # absent, or unreadable: prepare it (again)
        return None
    return meta if isinstance(meta, dict) else None


def prepared_from(out: Path, mark: str | None) -> bool:
    """Whether out holds a finished preparation of the source with this fingerprint. A folder
    prepared before val.txt was kept is not one: preparing it again gives its held-out text
    from the same reading of the source as its tokens, where falling back to the source as it
    is now could silently pair them with another text."""
    meta = prepared_meta(out)
    return meta is not None and meta.get("fingerprint") == mark and (out / "val.txt").is_file()


def held_out_text(folder: Path) -> str:
    """The held-out text of a preparation: exactly the text its val.bin holds."""
    return read_utf8(Path(folder) / "val.txt")


def held_out_tokens(folder: Path) -> np.ndarray:
    """The held-out text's tokens, as val.bin holds them, widened to int64 ids."""
    return np.fromfile(Path(folder) / "val.bin", dtype=np.uint16).astype(np.int64)


def token_file(folder: Path, split: str, meta: dict, block_size: int) -> np.memmap:
    """A split's token file, mapped, once its size is the one its preparation wrote (a file cut
    short would train on silently, an empty or odd-sized one fails inside numpy) and it holds
    at least one block."""
    path = folder / f"{split}.bin"
    wanted = ((meta.get("counts") or {}).get(split) or {}).get("tokens")
    size = path.stat().st_size if path.is_file() else None
    if size is None or (wanted is not None and size != 2 * wanted) or size % 2:
        found = "missing" if size is None else f"{size:,} bytes"
        raise UserError(f"{path} is damaged ({found}; its preparation wrote "
                        f"{'?' if wanted is None else f'{2 * wanted:,}'} bytes); delete {folder} "
                        "and run tinygpt prepare (or train) again")
    if size // 2 < block_size + 1:
        raise UserError(f"the {split} split has {size // 2} tokens, fewer than one block "
                        f"({block_size} + 1); use a longer corpus or a smaller block_size")
    return np.memmap(path, dtype=np.uint16, mode="r")


class Batches:
    """Random training windows and fixed validation windows over token files."""

    def __init__(self, folder: str | Path, block_size: int):
        folder = Path(folder)
        if not (folder / "meta.json").exists():
            raise UserError(f"no prepared data in {folder}; run: tinygpt prepare")
        self.meta = read_json(folder / "meta.json", f"delete {folder} and prepare it again",
                              ("tokenizer",))
        self.tokenizer = from_meta(self.meta["tokenizer"])
        self.block_size = block_size
        self.splits = {s: token_file(folder, s, self.meta, block_size) for s in ("train", "val")}

    def _windows(self, split: str, offsets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        data, T = self.splits[split], self.block_size
        chunk = np.stack([data[o:o + T + 1] for o in offsets]).astype(np.int64)
        chunk = torch.from_numpy(chunk)
        return chunk[:, :-1], chunk[:, 1:]

    def train_batch(self, seed: int, step: int, shard: int, batch_size: int,
                    repeat_spans: float = 0.0, synthetic: float = 0.0,
                    unique_copies: float = 0.0):
        """Windows for one micro-batch: shard = rank * grad_accum + micro_step, in the data
        shape given by the three fractions (model/data/shapes.py)."""
        rng = np.random.default_rng([seed, step, shard])
        high = len(self.splits["train"]) - self.block_size - 1
        x, y = self._windows("train", rng.integers(0, high + 1, size=batch_size))
        if repeat_spans > 0 or synthetic > 0 or unique_copies > 0:
            chunk = torch.cat((x, y[:, -1:]), dim=1)  # (B, T+1): the windows whole again
            shapes.reshape_windows(chunk, rng, self.tokenizer.vocab_size, repeat_spans, synthetic,
                                   unique_copies)
            x, y = chunk[:, :-1], chunk[:, 1:]
        return x, y

    def batches_to_cover_val(self, batch_size: int) -> int:
        """How many val batches tile the whole validation split once."""
        return -(-(len(self.splits["val"]) - 1) // (self.block_size * batch_size))

    def val_batches(self, n_batches: int, batch_size: int, rank: int = 0, world: int = 1,
                    per_pass: int = 0):
        """n_batches * batch_size evenly spaced windows over the whole validation split, the same
        every call, per_pass of them at a time (default batch_size: the same windows in fewer,
        larger passes otherwise); of world processes, process rank gets passes rank,
        rank + world, ..."""
        high = len(self.splits["val"]) - self.block_size - 1
        offsets = np.linspace(0, high, n_batches * batch_size).astype(np.int64)
        per_pass = per_pass or batch_size
        for i in range(rank, -(-len(offsets) // per_pass), world):
            yield self._windows("val", offsets[i * per_pass:(i + 1) * per_pass])
