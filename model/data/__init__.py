"""Data: corpora and their split (corpus, fetch, hf_datasets), tokenizers (tokenizer), data shapes
(shapes), and preparation into token files with the batches read from them (prepare)."""
