"""The tokenizer as files transformers' AutoTokenizer loads, and back.

tokenizer.json is the `tokenizers` library's format, written here as plain JSON so that the
export needs no Hugging Face package; tokenizer_config.json tells AutoTokenizer to read it.
- characters: a WordLevel model over the vocabulary's characters; a Split on any single
  character makes each character its own piece, and a Fuse decoder joins pieces with nothing
  between them, so spaces and newlines come back exactly.
- GPT-2 BPE: GPT-2's own byte-level BPE, its vocabulary and merges rebuilt from tiktoken's
  ranks (the 50257 tokens tinygpt trained on; nothing is downloaded).
"""
from __future__ import annotations

from pathlib import Path

from ..data.tokenizer import EOT, CharTokenizer, GPT2Tokenizer, Tokenizer
from ..errors import UserError
from ..files import read_json

ANY_CHAR = r"[\s\S]"  # one character, newlines included (a bare "." would skip them)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte (its encoder.py): printable Latin-1 bytes stand
    for themselves, the rest take the characters from U+0100 on, so no token text holds a
    space or a control character."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)}
    out, extra = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b], extra = chr(256 + extra), extra + 1
    return out


def merge_of(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The pair whose merge made token. tiktoken ranks tokens in the order their merges were
    learned, so BPE on the token's bytes, with only the merges ranked before it, stops at the
    two parts that the token's own merge joins."""
    rank = ranks[token]
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best, i = min((ranks.get(a + b, rank), i) for i, (a, b) in enumerate(zip(parts, parts[1:])))
        if best >= rank:
            raise ValueError(f"token {token!r} (rank {rank}) is not made by earlier merges")
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts[0], parts[1]


def gpt2_vocab(ranks: dict[bytes, int]) -> dict[str, int]:
    """GPT-2's vocab.json: each token's bytes written with bytes_to_unicode, and end-of-text."""
    shown = bytes_to_unicode()
    return {**{"".join(shown[b] for b in t): r for t, r in ranks.items()}, EOT: len(ranks)}


def gpt2_json(tok: GPT2Tokenizer) -> dict:
    shown = bytes_to_unicode()

    def text(t: bytes) -> str:
        return "".join(shown[b] for b in t)

    merges = [" ".join(map(text, merge_of(t, tok.ranks)))
              for t in sorted(tok.ranks, key=tok.ranks.get) if len(t) > 1]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": tok.eot, "content": EOT, "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": True,
                              "special": True}],
            "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None,
            "decoder": byte_level,
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": False, "byte_fallback": False,
                      "vocab": gpt2_vocab(tok.ranks), "merges": merges}}


def char_json(tok: CharTokenizer) -> dict:
    split = {"type": "Split", "pattern": {"Regex": ANY_CHAR}, "behavior": "Isolated",
             "invert": False}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": None, "pre_tokenizer": split, "post_processor": None,
            "decoder": {"type": "Fuse"},
            # unk_token names no entry: a character outside the vocabulary is an error, as in
            # tinygpt, rather than a silent stand-in
            "model": {"type": "WordLevel", "vocab": tok.stoi, "unk_token": "<unk>"}}


def tokenizer_files(tok: Tokenizer, block_size: int) -> tuple[dict[str, dict], dict]:
    """{file name: JSON content} of the tokenizer, and config.json's special token ids."""
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": block_size,
              "clean_up_tokenization_spaces": False}  # (it would drop spaces before ".")
    if isinstance(tok, GPT2Tokenizer):
        ends = {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}
        return ({"tokenizer.json": gpt2_json(tok), "tokenizer_config.json": {**config, **ends}},
                {"bos_token_id": tok.eot, "eos_token_id": tok.eot})
    # no end-of-text among the characters: transformers must not default to GPT-2's 50256
    return ({"tokenizer.json": char_json(tok), "tokenizer_config.json": config},
            {"bos_token_id": None, "eos_token_id": None})


def read_tokenizer(folder: Path, vocab_size: int) -> Tokenizer:
    """The tinygpt tokenizer of an exported folder's tokenizer.json."""
    model = read_json(folder / "tokenizer.json", "export the run again").get("model", {})
    vocab = model.get("vocab", {})
    tok: Tokenizer | None = None
    if model.get("type") == "WordLevel" and sorted(vocab.values()) == list(range(len(vocab))):
        tok = CharTokenizer(sorted(vocab, key=vocab.get))
    elif model.get("type") == "BPE":
        tok = GPT2Tokenizer()
        if vocab != gpt2_vocab(tok.ranks):
            tok = None
    if tok is None or tok.vocab_size != vocab_size:
        raise UserError(f"{folder / 'tokenizer.json'} is not a tokenizer tinygpt exports for "
                        f"this model ({vocab_size} tokens); export the run again")
    return tok
