#!/usr/bin/env bash
# The GPU check: the CUDA paths run for real, GPT-2 124M's speed, and a natural-text
# in-context check at a scale the CPU cannot reach. One script, about 7 minutes on one H200.
#
#   bash scripts/gpu_check.sh [RESULTS]     (default RESULTS: out/gpu-check)
#
# It runs from the checkout with the python that has torch (PYTHON, default python3), so a
# GPU machine with no package registry needs no install: PYTHONPATH points at the checkout.
# Offline, set TINYGPT_CACHE to a folder holding the registry sdists (sdists/*.tar.gz, as
# `tinygpt prepare` leaves them in ~/.cache/tinygpt); the test suite starts from it too.
# Each part has its own time limit and the script goes on past a failed part; part 3 gets
# what is left of BUDGET_S (default 480 s) after parts 1 and 2. PARTS (default "1 2 3 4")
# picks the parts to run. Every log lands in RESULTS, with the in-context study's folder,
# checkpoints left out, as gpu-icl.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-out/gpu-check}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-480}
PARTS=${PARTS:-1 2 3 4}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
mkdir -p "$RESULTS"
tinygpt=("$PY" -m model.cli)
part() {  # part NAME SECONDS COMMAND...: run, log to RESULTS/NAME.log, report the status
  local name=$1 limit=$2; shift 2
  [[ " $PARTS " == *" ${name%%-*} "* ]] || { echo "=== $name: not in PARTS, skipped"; return; }
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$RESULTS/$name.log" 2>&1
  local rc=$?
  tail -n 40 "$RESULTS/$name.log"
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
}

echo "=== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())'
git log -1 --format='commit %h %s' 2>/dev/null || true

# 1. The CUDA tests: KV cache = recompute, exact resume (CUDA RNG), bf16/fp16 steps, nccl DDP.
part 1-cuda-tests 150 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py

# 2. GPT-2 124M at nanoGPT's micro-batch (12 x 1024): compiled bf16 against the fp32 eager
#    baseline, MFU against the measured bf16 peak, peak memory, KV-cache decoding.
part 2-bench-gpt2-124m 200 "${tinygpt[@]}" bench --config=gpt2-124m --compile --vs=baseline \
    --steps=10 --rounds=3

# 3. Natural text, GPT-2 BPE: a 2-layer and a 4-layer model read by the emergence study's
#    instruments every 100 steps (configs/study/gpu-icl.toml).
# 4. Beside it on the other cores, the whole test suite (device=auto puts its training on
#    the GPU too; tests/test_fit.py's Chinchilla test needs ../shared, which may be absent).
left=$((BUDGET_S - SECONDS > 60 ? BUDGET_S - SECONDS : 60))
suite=""
if [[ " $PARTS " == *" 4 "* ]]; then
    workers=$("$PY" -c 'import os; print(max(1, min(8, (os.cpu_count() or 2) // 2)))')
    parallel=()
    "$PY" -c 'import xdist' 2>/dev/null && parallel=(-n "$workers")
    timeout "$left" "$PY" -m pytest -q -rs -p no:cacheprovider "${parallel[@]}" \
        >"$RESULTS/4-test-suite.log" 2>&1 &
    suite=$!
fi
part 3-icl-natural-text "$left" "${tinygpt[@]}" emergence --preset=gpu-icl --out=out/gpu-icl
[[ -d out/gpu-icl ]] && tar czf "$RESULTS/gpu-icl.tgz" --exclude='*.pt' out/gpu-icl
if [[ -n $suite ]]; then
    wait "$suite"
    echo "=== 4-test-suite (limit ${left}s, ${parallel[*]:-one process}): exit $?"
    tail -n 30 "$RESULTS/4-test-suite.log"
fi
