"""The GPT itself: initial loss, learning, counts against formulas, causality, decoding."""
import math

import pytest
import torch
import torch.nn.functional as F

from model.infer.generate import generate
from model.nn import decode
from model.nn.config import named
from model.nn.decode import Decoder
from model.nn.gpt import (GPT, MLP, GPTConfig, SquaredReLU, apply_rotary, attention,
                          flops_per_token, n_nonemb_formula, rotary_tables)
from model.train.train_config import TrainConfig
from model.train.precision import faster_cpu_dtype

SHAPES = [GPTConfig(n_layer=2, n_head=2, n_embd=32), GPTConfig(n_layer=4, n_head=4, n_embd=128),
          GPTConfig(n_layer=3, n_head=3, n_embd=48, bias=True),
          named("2x48", "modern"), named("nano-cpu", "modern", bias=True, norm="layernorm")]


@pytest.mark.parametrize("cfg", SHAPES[:3])
def test_initial_loss_is_uniform(cfg):
    torch.manual_seed(0)
    model = GPT(cfg)
    x = torch.randint(0, cfg.vocab_size, (8, 64))
    y = torch.randint(0, cfg.vocab_size, (8, 64))
    _, loss = model(x, y)
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.1


@pytest.mark.parametrize("arch", ["gpt2", "modern"])
def test_overfits_one_batch(arch):
    torch.manual_seed(0)
    model = GPT(named("2x32", arch, block_size=16))
    x = torch.randint(0, 65, (4, 16))
    y = torch.randint(0, 65, (4, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


@pytest.mark.parametrize("cfg", SHAPES)
def test_parameter_count_matches_formula(cfg):
    model = GPT(cfg)
    assert model.num_params() == n_nonemb_formula(cfg)
    emb = cfg.vocab_size * cfg.n_embd + (cfg.block_size * cfg.n_embd if cfg.pos == "learned" else 0)
    assert model.num_params(non_embedding=False) == n_nonemb_formula(cfg) + emb


def test_plain_block_is_twelve_d_squared():
    cfg = GPTConfig(n_layer=6, n_head=4, n_embd=160)
    # Kaplan's N = 12·L·d², plus two LayerNorm gains per layer and the final one.
    assert n_nonemb_formula(cfg) == 12 * 6 * 160**2 + (2 * 6 + 1) * 160


def test_flops_per_token_formula():
    cfg = GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=65)
    N = 12 * 4 * 128**2
    assert flops_per_token(cfg) == 6 * N + 6 * 4 * 256 * 128 + 6 * 128 * 65
    assert flops_per_token(cfg, n_nonemb=1000) == 6000 + 6 * 4 * 256 * 128 + 6 * 128 * 65


@pytest.mark.parametrize("arch", ["gpt2", "modern"])
def test_causality(arch):
    torch.manual_seed(0)
    model = GPT(named("2x32", arch, block_size=32)).eval()
    x = torch.randint(0, 65, (1, 32))
    t = 20
    x2 = x.clone()
    x2[0, t] = (x[0, t] + 1) % 65
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x2)
    assert torch.equal(a[0, :t], b[0, :t])
    assert not torch.allclose(a[0, t:], b[0, t:])


@pytest.mark.parametrize("arch", ["gpt2", "modern"])
@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0, seed=5),
                                      dict(temperature=0.8, top_k=10, top_p=0.9, seed=9)])
def test_kv_cache_matches_full_recomputation(arch, sampling):
    torch.manual_seed(0)
    model = GPT(named("nano-cpu", arch, block_size=64)).eval()
    prompt = torch.randint(0, 65, (2, 7))
    cached = generate(model, prompt, 57, use_cache=True, **sampling)
    full = generate(model, prompt, 57, use_cache=False, **sampling)
    assert cached.shape == (2, 64)
    assert torch.equal(cached, full)


def smeared(**kw) -> GPT:
    """A modern-block model with smeared keys whose attention really acts: residual
    projections not zero, and every head's gate at its own value."""
    torch.manual_seed(0)
    model = GPT(named("nano-cpu", "modern", smear_keys=True, zero_init=False, **kw)).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.smear.uniform_(-3, 3)
    return model


def test_smeared_keys_are_causal_and_mix_the_previous_key():
    model = smeared(block_size=32)
    x = torch.randint(0, 65, (1, 32))
    x2 = x.clone()
    x2[0, 20] = (x[0, 20] + 1) % 65
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x2)
    assert torch.equal(a[0, :20], b[0, :20])
    assert not torch.allclose(a[0, 20:], b[0, 20:])
    attn = model.blocks[0].attn
    k = torch.randn(1, attn.n_head, 5, attn.head_dim)
    g = torch.sigmoid(attn.smear).view(1, -1, 1)
    out = attn.smear_keys(k)
    assert torch.allclose(out[:, :, 3], g * k[:, :, 3] + (1 - g) * k[:, :, 2])
    assert torch.allclose(out[:, :, 0], g * k[:, :, 0])  # nothing before position 0


@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0, seed=5)])
def test_smeared_keys_kv_cache_matches_full_recomputation(sampling):
    model = smeared(block_size=64)
    prompt = torch.randint(0, 65, (2, 7))
    cached = generate(model, prompt, 57, use_cache=True, **sampling)
    full = generate(model, prompt, 57, use_cache=False, **sampling)
    assert torch.equal(cached, full)


def test_smeared_keys_count_one_gate_per_head():
    cfg = named("2x48", "modern", smear_keys=True)
    assert GPT(cfg).num_params() == n_nonemb_formula(cfg) == \
        n_nonemb_formula(named("2x48", "modern")) + 2 * 3


def test_generation_past_the_context_keeps_going():
    model = GPT(named("2x32", block_size=16)).eval()
    out = generate(model, torch.zeros(1, 3, dtype=torch.long), 40, temperature=0)
    assert out.shape == (1, 43)


def test_decoding_leaves_global_backend_flags_alone(monkeypatch):
    # every step, the prompt's and each token's, runs with the caller's oneDNN setting
    model = GPT(named("2x32", block_size=16)).eval()
    seen = []

    def sdpa(*args, **kw):
        seen.append(torch.backends.mkldnn.enabled)
        return F.scaled_dot_product_attention(*args, **kw)
    monkeypatch.setattr(decode, "sdpa", sdpa)
    generate(model, torch.zeros(1, 3, dtype=torch.long), 10)
    assert seen == [True] * 10 * model.cfg.n_layer


@pytest.mark.parametrize("arch, options", [
    ("gpt2", {}), ("gpt2", dict(bias=True)), ("modern", dict(zero_init=False)),
    ("modern", dict(smear_keys=True, zero_init=False)),
    ("gpt2", dict(pos="rope", mlp="relu2", softcap=10.0)), ("modern", dict(norm="layernorm"))])
def test_decoder_gives_the_logits_of_the_model(arch, options):
    """decode.py runs the network GPT.forward runs: every position's logits, a prompt at once
    and then a token at a time, at batch 2, for each option of the architecture."""
    torch.manual_seed(0)
    model = GPT(named("2x48", arch, block_size=24, **options)).eval()
    for p in model.parameters():  # every option acting: gains off 1, biases off 0
        if p.dim() == 1:
            torch.nn.init.normal_(p, 1.0 if p.abs().sum() else 0.0, 0.1)
    for block in model.blocks:  # and each head's smearing gate at its own value
        if block.attn.smear is not None:
            torch.nn.init.uniform_(block.attn.smear, -3, 3)
    idx = torch.randint(0, 65, (2, 24))
    decoder = Decoder(model, batch=2)
    steps = [decoder(idx[:, :5])] + [decoder(idx[:, t:t + 1]) for t in range(5, 24)]
    assert decoder.full
    with torch.no_grad():
        logits, _ = model(idx)
    torch.testing.assert_close(torch.stack(steps, 1), logits[:, 4:], atol=2e-5, rtol=1e-4)


def test_one_cache_holds_every_layer_at_one_position():
    model = GPT(named("nano-cpu", "modern", block_size=32)).eval()
    decoder = Decoder(model, batch=2)
    decoder(torch.randint(0, 65, (2, 5)))
    assert decoder.pos == 5
    decoder(torch.randint(0, 65, (2, 1)))
    assert decoder.pos == 6 and len(decoder.layers) == model.cfg.n_layer
    assert len({L.rows.untyped_storage().data_ptr() for L in decoder.layers}) == 1
    with pytest.raises(ValueError, match="empty cache"):
        decoder(torch.randint(0, 65, (2, 2)))


@pytest.mark.parametrize("onednn", [True, False])
def test_single_token_gelu_is_gelu(onednn):
    h = torch.randn(3, 1, 512, generator=torch.Generator().manual_seed(0)) * 4
    before, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, onednn
    try:  # F.gelu through oneDNN and through torch's own kernel: their erf differ by ~1e-6
        expected = F.gelu(h)
        view = decode.gelu_view(h)
        F.gelu(view, out=view)
        torch.testing.assert_close(h, expected, atol=5e-6, rtol=1e-5)
    finally:
        torch.backends.mkldnn.enabled = before
    assert h.is_contiguous() and h.shape == expected.shape


def test_prompt_longer_than_context_is_refused():
    model = GPT(named("2x32", block_size=16)).eval()
    with pytest.raises(ValueError, match="longer than the context"):
        generate(model, torch.zeros(1, 17, dtype=torch.long), 1)


def test_cpu_bf16_attention_runs_in_fp32():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 16, 8).bfloat16() for _ in range(3))
    # fp32 attention of the same bf16 inputs, rounded once at the end; a bf16 kernel rounds
    # inside too and would not match exactly
    want = torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), is_causal=True).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = attention(q, k, v, True, 0.0)
    assert got.dtype == torch.bfloat16 and torch.equal(got, want)


@pytest.mark.parametrize("margin, expected", [(0.0, torch.bfloat16), (math.inf, torch.float32)])
def test_dtype_probe_decides_by_margin_and_leaves_the_model_as_it_was(margin, expected):
    # the speed itself is the benchmark's business; here: the margin decides, and the
    # probe's steps leave no gradients and change no weights (the run starts after it)
    model = GPT(named("2x32", "modern", block_size=32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 65, (2, 32))
    assert faster_cpu_dtype(model, TrainConfig(), [(x, x)], rounds=2, margin=margin)[0] == expected
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("arch", ["gpt2", "modern"])
def test_attention_maps_are_the_probabilities_attention_applies(arch):
    """The maps the in-context instruments read, rebuilt into each layer's output: they are
    the ones the fused kernel applies, with every option (QK-norm, smeared keys, rotary)."""
    torch.manual_seed(0)
    model = GPT(named("2x32", arch, block_size=16, smear_keys=arch == "modern",
                      zero_init=False)).eval()
    idx = torch.randint(0, 65, (3, 12))
    logits, maps = model.attention_maps(idx)
    assert torch.equal(logits, model(idx)[0]) and len(maps) == 2
    assert maps[0].shape == (3, 2, 12, 12) and maps[0].triu(1).abs().max() == 0
    assert torch.allclose(maps[0].sum(-1), torch.ones(3, 2, 12))
    attn, x = model.blocks[1].attn, torch.randn(3, 12, 32)
    rotary = rotary_tables(attn.head_dim, 12) if arch == "modern" else None
    seen: list[torch.Tensor] = []
    with torch.no_grad():
        out = attn(x, rotary, seen)
        v = attn.qkv_heads(x, rotary)[2]
        rebuilt = attn.proj((seen[0] @ v).transpose(1, 2).reshape(3, 12, 32))
    assert torch.allclose(rebuilt, out, atol=1e-5)


def test_rotary_turns_each_pair_by_its_positions_angle():
    """apply_rotary's folded tables give the rotation written out: pair i of a head at
    position t, (x_i, x_{i+hd/2}), turned by t / 10000^(2i/hd)."""
    hd, T = 8, 5
    x = torch.randn(2, 3, T, hd, dtype=torch.float64)
    cos, sin = rotary_tables(hd, T)
    angle = torch.arange(T).double()[:, None] / 10000 ** (torch.arange(0, hd, 2).double() / hd)
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    turned = torch.cat((x1 * angle.cos() - x2 * angle.sin(), x2 * angle.cos() + x1 * angle.sin()),
                       dim=-1)
    assert torch.allclose(apply_rotary(x, cos, sin), turned, atol=1e-6)


def test_squared_relu_has_the_gradient_of_relu_squared():
    x = torch.randn(4, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SquaredReLU.apply, (x,))
    assert torch.equal(SquaredReLU.apply(x), torch.relu(x).square())
    with torch.no_grad():  # the evaluation's in-place path gives the same values
        mlp = MLP(GPTConfig(n_layer=1, n_head=2, n_embd=16, mlp="relu2"))
        h = torch.randn(3, 16)
        assert torch.allclose(mlp(h), mlp.proj(torch.relu(mlp.fc(h)).square()))
