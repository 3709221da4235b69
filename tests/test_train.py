"""The trainer: exact resume, data parallelism, logging."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import one_torchrun_process_matches_plain_training, tiny_config, tiny_flags
from model.errors import UserError
from model.train.runlog import read_metrics
from model.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def weights(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.parametrize("optimizer,shape", [
    ("adamw", {}), ("muon", {}),
    ("adamw", {"synthetic": 0.5, "synthetic_until": 6}),  # a curriculum that switches after it
])
def test_resume_is_bitwise_identical(corpus, tmp_path, optimizer, shape):
    # dropout > 0 so that the restored RNG state matters too
    full = tiny_config(corpus, tmp_path / "full", max_iters=8, eval_interval=4,
                       keep_checkpoints=True, dropout=0.1, optimizer=optimizer, **shape)
    train(full)
    # A run killed right after its step-4 checkpoint leaves exactly that file behind.
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(tmp_path / "full" / "ckpt_000004.pt", part / "ckpt.pt")
    train(tiny_config(corpus, part, max_iters=8, eval_interval=4, dropout=0.1,
                      init_from="resume", optimizer=optimizer, **shape))
    a, b = weights(tmp_path / "full" / "ckpt.pt"), weights(part / "ckpt.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    late = lambda rows: [r for r in rows if r["step"] > 4]
    assert late(read_metrics(tmp_path / "full"))[-1]["val_loss"] == \
        late(read_metrics(part))[-1]["val_loss"]
    assert [r.get("train_loss") for r in late(read_metrics(tmp_path / "full"))] == \
        [r.get("train_loss") for r in late(read_metrics(part))]


def test_light_readings_between_evaluations_resume_exactly(corpus, tmp_path):
    """on_eval's light readings (every probe_interval steps, no checkpoint) of a run killed
    after one of them are dropped on resume and read again: the same records, the same
    weights as the run that never stopped."""
    def on_eval(model, step, full):  # the weights' sum: any change of the model shows in it
        return {"weights": sum(p.detach().double().sum().item() for p in model.parameters()),
                "full": full}

    flags = dict(max_iters=8, eval_interval=4, probe_interval=2, dropout=0.1)
    train(tiny_config(corpus, tmp_path / "full", keep_checkpoints=True, **flags), on_eval)
    full = read_metrics(tmp_path / "full")
    read = [(r["step"], r["full"]) for r in full if "weights" in r]
    assert read == [(0, True), (2, False), (4, True), (6, False), (8, True)]
    assert all("val_loss" not in r for r in full if r.get("full") is False)
    # killed after the light reading at step 6: its checkpoint is step 4's
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(tmp_path / "full" / "ckpt_000004.pt", part / "ckpt.pt")
    (part / "metrics.jsonl").write_text("".join(
        line + "\n" for line, r in zip((tmp_path / "full" / "metrics.jsonl").read_text()
                                       .splitlines(), full) if r["step"] <= 6))
    train(tiny_config(corpus, part, init_from="resume", **flags), on_eval)
    a, b = weights(tmp_path / "full" / "ckpt.pt"), weights(part / "ckpt.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    clock = ("wall_s", "tok_per_s", "mfu")  # the only fields that may differ
    same = lambda rows: [{k: v for k, v in r.items() if k not in clock} for r in rows]
    assert same(read_metrics(part)) == same(full)


def test_the_same_seed_trains_the_same_weights_in_one_process(corpus, tmp_path):
    """The first run of a process measures the matmul peak (then cached); that measurement
    must not draw from the generator dropout draws from."""
    from model.train.timing import peak_flops

    peak_flops.cache_clear()
    for name in ("first", "second"):
        train(tiny_config(corpus, tmp_path / name, dropout=0.1))
    a, b = weights(tmp_path / "first" / "ckpt.pt"), weights(tmp_path / "second" / "ckpt.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_from_before_muon_resumes(corpus, tmp_path):
    """Its optimizer groups carry no rate of their own; the run goes on at the schedule's."""
    train(tiny_config(corpus, tmp_path / "run", max_iters=4, eval_interval=2))
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    for group in state["optimizer"]["param_groups"]:
        del group["initial_lr"]
    torch.save(state, tmp_path / "run" / "ckpt.pt")
    summary = train(tiny_config(corpus, tmp_path / "run", max_iters=6, eval_interval=2,
                                init_from="resume"))
    assert summary["steps"] == 6


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(corpus, tmp_path):
    from model.nn.gpt import GPT
    from model.train.optim import Paired, make_optimizer, optimizer_settings

    cfg = tiny_config(corpus, tmp_path / "m", optimizer="muon", lr=3e-3, muon_lr=0.05)
    model = GPT(cfg.gpt_config(45))
    opt = make_optimizer(model, optimizer_settings(cfg), fused=True)
    adamw, muon = opt.parts
    assert isinstance(opt, Paired) and isinstance(muon, torch.optim.Muon)
    mats = {id(p) for p in model.blocks.parameters() if p.dim() == 2}
    assert {id(p) for g in muon.param_groups for p in g["params"]} == mats
    rest = {id(p) for p in model.parameters()} - mats
    assert {id(p) for g in adamw.param_groups for p in g["params"]} == rest
    assert [g["initial_lr"] for g in opt.param_groups] == [3e-3, 3e-3, 0.05]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_muon_training_lowers_the_loss(corpus, tmp_path, dtype):
    """float16 too: the loss scaler unscales and steps both optimizers."""
    summary = train(tiny_config(corpus, tmp_path / "run", max_iters=30, eval_interval=15,
                                optimizer="muon", dtype=dtype))
    vals = [r["val_loss"] for r in read_metrics(tmp_path / "run") if "val_loss" in r]
    assert vals[-1] < vals[0] - 0.5 and summary["val_loss"] == vals[-1]


def test_training_lowers_the_loss_and_logs(corpus, tmp_path):
    summary = train(tiny_config(corpus, tmp_path / "run", max_iters=30, eval_interval=15))
    rows = read_metrics(tmp_path / "run")
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(vals) == 3 and vals[-1] < vals[0] - 0.5
    assert summary["val_loss"] == vals[-1]
    assert any("mfu" in r and r["tok_per_s"] > 0 for r in rows)


def test_a_target_loss_stops_at_the_first_evaluation_that_meets_it(corpus, tmp_path):
    whole = dict(max_iters=12, eval_interval=3, eval_batches=0)
    train(tiny_config(corpus, tmp_path / "full", **whole))
    full = [r for r in read_metrics(tmp_path / "full") if "val_loss" in r]
    target = full[2]["val_loss"]  # step 6's
    first = next(r["step"] for r in full if r["val_loss"] <= target)
    summary = train(tiny_config(corpus, tmp_path / "cut", target_loss=target, **whole))
    cut = [r for r in read_metrics(tmp_path / "cut") if "val_loss" in r]
    assert 0 < summary["steps"] == cut[-1]["step"] == first < 12
    assert [r["val_loss"] for r in cut] == [r["val_loss"] for r in full[:len(cut)]]
    assert all(r["wall_s"] >= 0 for r in cut)


def test_evaluations_start_late_and_cover_the_whole_split_when_asked(corpus, tmp_path):
    from model.data.prepare import Batches, prepare
    from model.train.trainer import eval_batch_count, evaluates

    cfg = tiny_config(corpus, tmp_path / "e", max_iters=12, eval_interval=3, eval_start=5)
    assert [s for s in range(13) if evaluates(s, cfg)] == [6, 9, 12]
    batches = Batches(prepare(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)
    whole = batches.batches_to_cover_val(cfg.batch_size)
    assert [eval_batch_count(s, cfg, batches) for s in (6, 12)] == [cfg.eval_batches, whole]
    cfg.eval_batches = 0
    assert eval_batch_count(6, cfg, batches) == whole


def test_larger_evaluation_passes_read_the_same_windows(corpus, tmp_path):
    from model.data.prepare import Batches, prepare
    from model.nn.gpt import GPT
    from model.train.runtime import Runtime
    from model.train.trainer import evaluate

    cfg = tiny_config(corpus, tmp_path / "e")
    b = Batches(prepare(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)
    model = GPT(cfg.gpt_config(b.tokenizer.vocab_size))
    n = b.batches_to_cover_val(cfg.batch_size)
    plain = evaluate(model, b, n, cfg.batch_size, Runtime())
    assert evaluate(model, b, n, cfg.batch_size, Runtime(), per_pass=cfg.batch_size) == plain
    for per_pass in (7, 64, 10_000):  # a ragged last pass; one pass for the whole split
        assert abs(evaluate(model, b, n, cfg.batch_size, Runtime(), per_pass) - plain) < 1e-5


def test_gradient_accumulation_matches_a_bigger_batch(corpus, tmp_path):
    """Two micro-batches of 4 must give the gradient of one batch of those 8 windows."""
    from model.data.prepare import Batches, prepare
    from model.nn.gpt import GPT
    from model.train.runtime import Runtime
    from model.train.step import micro_batches, train_step

    cfg = tiny_config(corpus, tmp_path / "acc", grad_accum=2, grad_clip=0.0)
    b = Batches(prepare(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)
    model = GPT(cfg.gpt_config(b.tokenizer.vocab_size))

    class Recorder:  # stands in for the optimizer: keeps the gradient it is given
        def step(self):
            self.grads = [p.grad.clone() for p in model.parameters()]

        def zero_grad(self, set_to_none=True):
            model.zero_grad(set_to_none=set_to_none)

    rec = Recorder()
    train_step(model, rec, Runtime(), micro_batches(b, cfg, step=3), cfg.grad_clip)
    xs, ys = zip(*(b.train_batch(cfg.seed, 3, shard, cfg.batch_size) for shard in range(2)))
    _, loss = model(torch.cat(xs), torch.cat(ys))
    loss.backward()
    for got, want in zip(rec.grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4)


def test_ddp_two_gloo_processes_match_one_process(corpus, tmp_path):
    common = tiny_flags(corpus, "cpu")  # gloo: two processes cannot share one GPU under nccl
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", str(ROOT / "train.py"), f"--out_dir={tmp_path / 'ddp'}",
                    *common], check=True, env=env, capture_output=True, timeout=300)
    # One process accumulating 2 micro-batches sees the same 8 windows per step.
    train(tiny_config(corpus, tmp_path / "one", grad_accum=2, device="cpu"))
    a, b = weights(tmp_path / "ddp" / "ckpt.pt"), weights(tmp_path / "one" / "ckpt.pt")
    for k in a:  # all-reduce sums in another order: equal to float32 rounding
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    va = read_metrics(tmp_path / "ddp")[-1]["val_loss"]
    vb = read_metrics(tmp_path / "one")[-1]["val_loss"]
    assert abs(va - vb) < 1e-4


def test_one_torchrun_process_trains_in_a_process_group(corpus, tmp_path):
    """One process under torchrun joins a (gloo) group and trains through DDP, as a one-GPU
    run joins nccl (test_cuda.py); it matches a plain run to float32 rounding."""
    one_torchrun_process_matches_plain_training(corpus, tmp_path, "cpu", "gloo")


def test_wandb_offline_stays_in_the_temp_dir(corpus, tmp_path):
    pytest.importorskip("wandb", reason="wandb is not installed (a GPU image may lack it)")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "WANDB_DIR": str(tmp_path / "wb"),
           "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        env[var] = str(tmp_path / "wb")
    (tmp_path / "wb").mkdir()
    subprocess.run([sys.executable, str(ROOT / "train.py"), f"--dataset={corpus}",
                    f"--out_dir={tmp_path / 'run'}", "--size=2x32", "--block_size=16",
                    "--max_iters=4", "--eval_interval=2", "--wandb=offline", "--dtype=float32"],
                   check=True, env=env, capture_output=True, timeout=300)
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
    assert list(home.iterdir()) == []


def test_resume_logs_each_evaluation_once(corpus, tmp_path):
    train(tiny_config(corpus, tmp_path / "r", max_iters=4, eval_interval=2))
    train(tiny_config(corpus, tmp_path / "r", max_iters=6, eval_interval=2, init_from="resume"))
    evals = [r["step"] for r in read_metrics(tmp_path / "r") if "val_loss" in r]
    assert evals == [0, 2, 4, 6]


def test_resume_after_a_torn_metrics_line(corpus, tmp_path):
    # kill -9 in the middle of a write leaves half a JSON line at the end of metrics.jsonl
    train(tiny_config(corpus, tmp_path / "r", max_iters=4, eval_interval=2))
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "train_lo')
    train(tiny_config(corpus, tmp_path / "r", max_iters=6, eval_interval=2, init_from="resume"))
    evals = [r["step"] for r in read_metrics(tmp_path / "r") if "val_loss" in r]
    assert evals == [0, 2, 4, 6]


def test_compiled_training_matches_eager(corpus, tmp_path):
    # torch.compile fuses and reorders float operations, so equal to rounding, not bitwise
    eager = train(tiny_config(corpus, tmp_path / "eager", arch="modern"))
    compiled = train(tiny_config(corpus, tmp_path / "compiled", arch="modern", compile=True))
    assert abs(compiled["val_loss"] - eager["val_loss"]) < 1e-3


def test_compiling_leaves_the_model_eager_and_shares_its_weights():
    """Training runs the model with compiled copies of its blocks; evaluation, the probes and
    checkpoints use the model, which must stay eager (no recompile for their shapes) and be
    trained."""
    from model.nn.config import named
    from model.nn.gpt import GPT
    from model.train.step import Compiled

    model = GPT(named("2x24", "modern", vocab_size=10, block_size=16))
    fast = Compiled(model)
    assert all(type(b).__name__ == "OptimizedModule" for b in fast.blocks)
    assert all(type(b).__name__ == "Block" for b in model.blocks)
    assert [id(p) for p in fast.parameters()] == [id(p) for p in model.parameters()]


def test_the_benchmark_times_the_step_training_runs(corpus, tmp_path, monkeypatch):
    """The bench's StepTimer and train() run one step function: from the same seed, on the
    same windows, at the same learning rate, they reach the same weights bit for bit."""
    from model.data.prepare import Batches, prepare
    from model.nn.gpt import GPT
    from model.train.runtime import Runtime
    from model.train.step import StepTimer, micro_batches

    # a constant learning rate (the timer knows no schedule), two micro-batches, clipping
    cfg = tiny_config(corpus, tmp_path / "run", max_iters=5, warmup_iters=0, schedule="wsd",
                      cooldown_frac=0.0, grad_accum=2, grad_clip=0.5, device="cpu")
    b = Batches(prepare(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)
    fixed = micro_batches(b, cfg, step=0)
    monkeypatch.setattr(Batches, "train_batch",  # every step trains on step 0's windows
                        lambda self, seed, step, shard, *a: fixed[shard])
    train(cfg)
    torch.manual_seed(cfg.seed)
    model = GPT(cfg.gpt_config(b.tokenizer.vocab_size))
    StepTimer(model, cfg, Runtime(), fixed, fused=True, warmup=0).run(cfg.max_iters)
    trained = weights(tmp_path / "run" / "ckpt.pt")
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_a_non_finite_loss_stops_the_run_before_its_checkpoint(corpus, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(UserError, match=r"loss became nan within steps 1-2; lower --lr"):
        train(tiny_config(corpus, out, lr=1e30, warmup_iters=0, eval_interval=2,
                          log_interval=100))
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == 0


def test_float16_training_scales_the_loss_and_resumes_exactly(corpus, tmp_path):
    """CPU autocast runs float16 too, so the scaler path of a real run is tested here; the
    scaler's state (its scale and the count of steps since it last grew) must resume."""
    full = tiny_config(corpus, tmp_path / "full", max_iters=8, eval_interval=4,
                       keep_checkpoints=True, dropout=0.1, dtype="float16")
    summary = train(full)
    assert summary["dtype"] == "float16" and summary["val_loss"] < 3.5
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(tmp_path / "full" / "ckpt_000004.pt", part / "ckpt.pt")
    train(tiny_config(corpus, part, max_iters=8, eval_interval=4, dropout=0.1, dtype="float16",
                      init_from="resume"))
    a, b = (torch.load(p / "ckpt.pt", weights_only=True) for p in (tmp_path / "full", part))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["scaler"] == b["scaler"] and a["scaler"]["_growth_tracker"] == 8


def test_the_scaler_path_unscales_before_clipping():
    """A loss scaled by a power of two scales every gradient exactly, so a step through the
    scaler must give the very weights of an unscaled step, clipping included; plain SGD,
    because Adam would hide a gradient left scaled."""
    from model.nn.config import named
    from model.nn.gpt import GPT
    from model.train.runtime import Runtime
    from model.train.step import train_step

    x = torch.randint(0, 65, (4, 16), generator=torch.Generator().manual_seed(0))
    micro = [(x[:2], x[:2]), (x[2:], x[2:])]
    results = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)):
        torch.manual_seed(0)
        model = GPT(named("2x32", block_size=16))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        rt = Runtime(scaler=scaler)
        for _ in range(2):
            train_step(model, opt, rt, micro, grad_clip=1e-3)  # (a clip this small always bites)
        results.append(model.state_dict())
    plain, scaled = results
    assert all(torch.equal(plain[k], scaled[k]) for k in plain)


def test_the_scaler_skips_a_step_whose_gradients_overflow():
    from model.train.runtime import Runtime
    from model.train.step import train_step

    class Huge(torch.nn.Module):  # a loss whose gradient overflows float32 once scaled
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, y):
            return None, self.w * 1e30

    model = Huge()
    rt = Runtime(scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 100))
    loss = train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), rt,
                      [(torch.zeros(1), torch.zeros(1))], grad_clip=1.0)
    assert loss.item() == pytest.approx(1e30)
    assert model.w.item() == 1.0 and rt.scaler.get_scale() == 2.0 ** 99


def test_a_float16_runtime_has_a_scaler_and_others_none():
    from model.train.runtime import Runtime

    assert Runtime(dtype=torch.float16).scaler is not None
    assert Runtime(dtype=torch.bfloat16).scaler is None and Runtime().scaler is None
