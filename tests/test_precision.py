"""The precision a run trains in and the peaks MFU is read against, on every CPU class: a
CPU without bf16 units trains in fp32 and orthogonalises Muon's updates in fp32; a probe's
answer is cached per machine and shape; a study trains all its runs in one precision; no peak
is zero and no MFU tops 100%."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.errors import UserError
from model.nn.config import named
from model.nn.gpt import GPT
from model.train import precision
from model.train.optim import Muon, orthogonalised
from model.train.precision import Choice, fresh_run_precision
from model.train.train_config import TrainConfig
from model.train.timing import hardware_peaks, mfu_peak, peak_flops

ROOT = Path(__file__).resolve().parents[1]


class Windows:
    """Batches' one method the probe reads: the windows of a step."""

    def train_batch(self, seed, step, shard, batch, repeat_spans, synthetic, unique_copies):
        x = torch.randint(0, 65, (batch, 32), generator=torch.Generator().manual_seed(step))
        return x, x


def model_and_config(**overrides):
    cfg = TrainConfig(**{"block_size": 32, "batch_size": 2, **overrides})
    return GPT(named("2x32", "modern", block_size=32)), cfg


def test_a_cpu_without_bf16_units_trains_in_fp32_without_a_probe(monkeypatch):
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: False)
    monkeypatch.setattr(precision, "faster_cpu_dtype", lambda *a, **k: pytest.fail("probed"))
    model, cfg = model_and_config()
    choice = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert choice.dtype == torch.float32 and "no bf16 units" in choice.why


def test_a_named_precision_is_kept(monkeypatch):
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: False)
    model, cfg = model_and_config(dtype="bfloat16")
    choice = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert choice == (torch.bfloat16, "named by the config")


def test_the_probe_is_cached_per_machine_and_shape(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: True)
    probes = []

    def probe(model, cfg, micro):
        probes.append(cfg.batch_size)
        return torch.bfloat16, 1.5

    monkeypatch.setattr(precision, "faster_cpu_dtype", probe)
    model, cfg = model_and_config()
    first = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    again = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert first.dtype == again.dtype == torch.bfloat16 and probes == [2]
    assert "timed now" in first.why and "cached" in again.why and "1.50x" in again.why
    # another shape is probed anew
    other, wider = model_and_config(batch_size=4)
    fresh_run_precision(wider, other, Windows(), "cpu", distributed=False)
    assert probes == [2, 4]
    # another thread count is another machine for the probe
    monkeypatch.setattr(precision, "machine_key", lambda: "another machine")
    fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert probes == [2, 4, 2]


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"k": "v"}', "\xff"])
def test_a_damaged_probe_cache_is_timed_over_and_rewritten(monkeypatch, tmp_path, damage):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision, "faster_cpu_dtype", lambda *a: (torch.float32, 0.8))
    (tmp_path / "probes.json").write_text(damage, errors="surrogateescape")
    model, cfg = model_and_config()
    choice = fresh_run_precision(cfg, model, Windows(), "cpu", distributed=False)
    assert choice.dtype == torch.float32 and "0.80x" in choice.why
    saved = json.loads((tmp_path / "probes.json").read_text())
    assert [v["dtype"] for v in saved.values() if isinstance(v, dict) and "dtype" in v] \
        == ["float32"]


def study_plan(corpus, folder, dtype_table=""):
    """A 3-size ladder of corpus; its smallest size, 2x24, is not first under [lr]."""
    from model.studies.common.plan import load_plan

    path = folder / "ladder.toml"
    path.write_text(f'dataset = "{corpus}"\ntokens = 1000\nblock_size = 16\nbatch_size = 2\n'
                    '[train]\ndevice = "cpu"\n'
                    f'[lr]\n"2x32" = 1e-3\n"2x24" = 1e-3\n"3x56" = 1e-3\n{dtype_table}')
    return load_plan(str(path))


def fake_probe(monkeypatch, dtype, speedup):
    """bf16 units on this CPU, and a probe that answers (dtype, speedup) without timing;
    returns the (width, threads) of every model it was asked about."""
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: True)
    asked = []

    def probe(model, cfg, micro):
        asked.append((model.cfg.n_embd, torch.get_num_threads()))
        return dtype, speedup

    monkeypatch.setattr(precision, "faster_cpu_dtype", probe)
    return asked


def fake_train(cfg, on_eval=None, auto=None):
    """train()'s precision choice alone, as the summary records it (no step is taken)."""
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    choice = fresh_run_precision(cfg, None, None, "cpu", distributed=False, auto=auto)
    return {"val_loss": 2.0, "wall_s": 1.0, "dtype": str(choice.dtype).removeprefix("torch."),
            "dtype_why": choice.why}


def study_precisions(plan, out, threads=1):
    from model.studies.common.runner import run_study

    summaries = run_study(plan, out, threads=threads, jobs=1)
    return {s["size"]: (s["dtype"], s["dtype_why"]) for s in summaries}


def test_a_study_probes_its_smallest_size_once_and_every_run_takes_the_answer(
        monkeypatch, tmp_path, corpus, capsys):
    from model.studies.scaling.scaling_report import precision_finding

    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.studies.common.runner.train", fake_train)
    asked = fake_probe(monkeypatch, torch.bfloat16, 1.5)
    out = tmp_path / "study"
    got = study_precisions(study_plan(corpus, tmp_path), out)
    assert asked == [(24, 1)]  # 2x24 alone, at the runs' one thread
    why = ("auto for the whole study: a probe of its smallest size 2x24 [bf16 at 1.50x fp32's "
           "speed, timed now; needs 1.2x]")
    assert got == {size: ("bfloat16", why) for size in ("2x32", "2x24", "3x56")}
    assert json.loads((out / "precision.json").read_text()) == {"dtype": "bfloat16", "why": why}
    assert f"every run that says dtype=auto trains in bfloat16 ({why}" in capsys.readouterr().out
    runs = [{"name": f"{size}-0.001M-lr0.001-s1337", "dtype": d, "dtype_why": w}
            for size, (d, w) in got.items()]
    assert precision_finding(runs) == f"- Precision: bfloat16 at every size ({why})."


def test_a_resumed_study_keeps_its_decision(monkeypatch, tmp_path, corpus):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.studies.common.runner.train", fake_train)
    fake_probe(monkeypatch, torch.float32, 1.1)
    plan, out = study_plan(corpus, tmp_path), tmp_path / "study"
    first = study_precisions(plan, out)
    assert {d for d, _ in first.values()} == {"float32"}
    (out / "3x56-0.001M-lr0.001-s1337" / "summary.json").unlink()  # not finished yet
    # a busy machine, or another session, would answer otherwise: the study does not ask
    monkeypatch.setattr(precision, "faster_cpu_dtype", lambda *a: pytest.fail("probed again"))
    assert study_precisions(plan, out, threads=2) == first


def test_a_size_that_names_its_precision_keeps_it_and_is_not_probed(monkeypatch, tmp_path,
                                                                      corpus):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.studies.common.runner.train", fake_train)
    asked = fake_probe(monkeypatch, torch.bfloat16, 1.5)
    got = study_precisions(study_plan(corpus, tmp_path, '[dtype]\n"2x24" = "float32"\n'),
                           tmp_path / "study")
    assert asked == [(32, 1)]  # the smallest of the sizes that say auto
    assert got["2x24"] == ("float32", "named by the config")
    assert got["2x32"][0] == got["3x56"][0] == "bfloat16"


@pytest.mark.parametrize("damage", ["{not json", '{"dtype": "float64", "why": "x"}',
                                    '{"dtype": "bfloat16"}', "[1]"])
def test_a_damaged_decision_is_one_line_and_left_as_it_was(monkeypatch, tmp_path, corpus,
                                                           damage):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    monkeypatch.setattr("model.studies.common.runner.train", fake_train)
    fake_probe(monkeypatch, torch.bfloat16, 1.5)
    out = tmp_path / "study"
    out.mkdir()
    (out / "precision.json").write_text(damage)
    with pytest.raises(UserError, match="precision.json is damaged .*; delete it") as e:
        study_precisions(study_plan(corpus, tmp_path), out)
    assert "\n" not in str(e.value) and (out / "precision.json").read_text() == damage


@pytest.mark.parametrize("machine", ["gpu", "cpu without bf16 units"])
def test_where_auto_already_gives_one_precision_a_study_decides_nothing(monkeypatch, tmp_path,
                                                                        machine):
    monkeypatch.setattr("model.train.device.cpu_has_bf16", lambda: machine == "gpu")
    monkeypatch.setattr(precision, "faster_cpu_dtype", lambda *a: pytest.fail("probed"))
    if machine == "gpu":
        monkeypatch.setattr(precision, "pick_device", lambda name: "cuda")
    _, cfg = model_and_config()
    assert precision.study_precision([cfg, cfg], tmp_path / "precision.json") is None
    assert not (tmp_path / "precision.json").exists()


def test_an_emergence_study_decides_once_for_its_grid(monkeypatch, tmp_path, corpus):
    from model.studies.common.plan import read_plan
    from model.studies.emergence import emergence_runner as runner
    from model.studies.emergence.emergence_plan import load_emergence_plan

    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path))
    asked = fake_probe(monkeypatch, torch.bfloat16, 1.3)
    text = (ROOT / "configs" / "study" / "emergence-quick.toml").read_text()
    assert 'dataset = "shakespeare"' in text and 'dtype = "float32"' in text
    path = tmp_path / "em.toml"
    path.write_text(text.replace('dataset = "shakespeare"', f'dataset = "{corpus}"')
                    .replace('dtype = "float32"', 'device = "cpu"'))
    given = []

    def first_run(cfg, on_eval=None, auto=None):
        given.append(auto)
        raise UserError("stop here")

    monkeypatch.setattr(runner, "train", first_run)
    with pytest.raises(UserError, match="stop here"):
        runner.run_emergence(load_emergence_plan(*read_plan(str(path))), tmp_path / "em",
                             threads=1, jobs=1)
    assert asked == [(16, 1)] and given[0].dtype == torch.bfloat16
    assert given[0].why.startswith("auto for the whole study: a probe of its smallest size 1x16")


def test_a_run_of_a_study_trains_in_its_decision_in_its_own_process(corpus, tmp_path):
    from conftest import tiny_config
    from model.studies.common.pool import run_parallel

    cfg = tiny_config(corpus, tmp_path / "run", dtype="auto", device="cpu", max_iters=2,
                      eval_interval=2, run_name="run")
    ended = {}
    run_parallel([cfg], 1, lambda cfg: None, lambda cfg, result: ended.update(result),
                 auto=Choice(torch.bfloat16, "the study's"))
    assert (ended["dtype"], ended["dtype_why"]) == ("bfloat16", "the study's")


@pytest.mark.parametrize("shape", [(64, 32), (32, 96), (48, 48)])
def test_muon_in_bf16_is_torchs_muon_and_in_fp32_orthogonalises(monkeypatch, shape):
    torch.manual_seed(0)
    ours, theirs = (torch.nn.Parameter(torch.randn(*shape)) for _ in range(2))
    theirs.data.copy_(ours.data)
    monkeypatch.setattr("model.train.optim.fastest_matmul_dtype", lambda device: torch.bfloat16)
    mine, torchs = Muon([ours], lr=0.02, weight_decay=0.01), \
        torch.optim.Muon([theirs], lr=0.02, weight_decay=0.01)
    for _ in range(3):
        g = torch.randn(*shape)
        ours.grad, theirs.grad = g.clone(), g.clone()
        mine.step()
        torchs.step()
    assert torch.equal(ours, theirs)
    # in fp32: the singular values land near 1 (the quintic's band, roughly 0.5-1.5), and the
    # input is left as it was (fp32 to fp32 is no copy unless asked for)
    g = torch.randn(*shape)
    before = g.clone()
    s = torch.linalg.svdvals(orthogonalised(g, (3.4445, -4.7750, 2.0315), 5, 1e-7,
                                            torch.float32))
    assert torch.equal(g, before) and s.min() > 0.3 and s.max() < 1.6


def test_peaks_are_measured_quickly_and_mfu_reads_against_the_faster_one():
    peak_flops.cache_clear()
    fp32 = peak_flops("cpu", torch.float32)
    assert fp32 > 1e9
    assert mfu_peak("cpu", torch.bfloat16) >= fp32
    peaks, described = hardware_peaks("cpu", [torch.float32, torch.bfloat16])
    assert peaks["fp32"] == fp32 and described[0].startswith("fp32 ")


@pytest.mark.parametrize("bf16,fp32,chosen,words", [
    (117e9, 205e9, torch.float32, "bf16 slower than fp32 here (117 GFLOP/s, though the CPU has"),
    (2100e9, 330e9, torch.bfloat16, "bf16 2,100 GFLOP/s"),
])
def test_muon_orthogonalises_in_bf16_only_where_its_units_are_measured_faster(
        monkeypatch, bf16, fp32, chosen, words):
    """bf16 units need not make bf16 faster: oneDNN's AVX-512 bf16 kernels on an Intel Xeon
    measured 117 GFLOP/s against fp32's 205 (one thread), and Muon in bf16 there cost the
    speedrun 0.6 s. The peaks decide, and the bench says which case it is."""
    from model.train import timing

    peaks = {torch.bfloat16: bf16, torch.float32: fp32}
    monkeypatch.setattr(timing, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(timing, "peak_flops", lambda dev, dtype, budget=0.5: peaks[dtype])
    assert timing.fastest_matmul_dtype("cpu") == chosen
    described = timing.hardware_peaks("cpu", [torch.float32, torch.bfloat16])[1]
    assert described[1].startswith(words)
    monkeypatch.setattr(timing, "cpu_has_bf16", lambda: False)  # no units: emulated, not asked
    assert timing.fastest_matmul_dtype("cpu") == torch.float32


# Run in a fresh process: oneDNN and ATen read these variables once, at start.
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
UNDER_AVX2 = """
import time, torch
from model.train.device import pick_dtype
from model.train.timing import fastest_matmul_dtype, hardware_peaks, mfu_peak, peak_flops
t0 = time.perf_counter()
peaks, described = hardware_peaks("cpu", [torch.float32, torch.bfloat16])
print("seconds", time.perf_counter() - t0)
print("capability", torch.backends.cpu.get_cpu_capability())
print("auto", pick_dtype("cpu", "auto"), "muon", fastest_matmul_dtype("cpu"))
print("peaks", sorted(peaks), "|", "; ".join(described))
print("mfu_peak_is_fp32", mfu_peak("cpu", torch.bfloat16) == peak_flops("cpu", torch.float32))
from model.files import machine
print("machine", machine())
"""


def test_limited_to_avx2_kernels_the_choice_is_fp32_and_bf16_reads_as_emulated():
    """ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY make any x86 CPU run AVX2's kernels, as an
    AVX2-only machine (the commonest class) does: bf16 has no units there."""
    if os.uname().machine not in ("x86_64", "AMD64"):
        pytest.skip("the AVX2 limit is an x86 one")
    out = subprocess.run([sys.executable, "-c", UNDER_AVX2], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, **AVX2}, check=True).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["capability"] == "AVX2"
    assert lines["auto"] == "torch.float32 muon torch.float32"
    assert lines["peaks"].startswith("['fp32'] |") and "bf16 emulated" in lines["peaks"]
    assert lines["mfu_peak_is_fp32"] == "True"
    assert float(lines["seconds"]) < 10  # a single 2048³ bf16 product alone takes ~10 s here
    # every summary and report names the class its figures come from, the limit included
    assert "(AVX2 kernels, oneDNN limited to AVX2, bf16 units: " in lines["machine"]


STEPS = """
import resource, sys, torch
from model.nn.config import named
from model.nn.gpt import GPT
from model.train.device import keep_freed_memory
kept = sys.argv[1] == "keep" and keep_freed_memory()
torch.set_num_threads(1)
model = GPT(named("nano-cpu", n_layer=3, mlp="relu2", block_size=64, vocab_size=65))
x = torch.randint(0, 65, (64, 64), generator=torch.Generator().manual_seed(0))
def steps(n):
    for _ in range(n):
        model(x, x)[1].backward()
steps(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
steps(10)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_activations_are_reused_rather_than_faulted_in_afresh():
    """Training keeps freed blocks (keep_freed_memory): the speedrun's block at 3 layers (its
    depth when this was measured), forward and backward on 64 windows, takes its activations'
    memory back without a page fault per 4 KiB, which glibc's default costs on every step
    (39k-63k faults in 10 steps, against 2k-5k)."""
    faults = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", STEPS, mode], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert out[0] == str(mode == "keep")  # the setting took where asked
        faults[mode] = int(out[1])
    if faults["default"] < 10_000:
        pytest.skip(f"this kernel faults little by default ({faults['default']} in 10 steps)")
    assert faults["keep"] < faults["default"] / 4
