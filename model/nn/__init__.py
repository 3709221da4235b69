"""The network: GPTConfig and the named sizes (config), the GPT and its counts (gpt), the
decoder with a KV cache (decode)."""
