"""Export: a trained run as a folder other programs load (Hugging Face transformers)."""
