"""Data: corpora and their split (corpus, fetch, hf), tokenizers (tokenizer), data shapes
(shapes), and preparation into token files with the batches read from them (prepare)."""
