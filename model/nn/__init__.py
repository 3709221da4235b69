"""The network: GPTConfig, the GPT and its counts (gpt), the named sizes and architectures
(config), the decoder with a KV cache (decode)."""
