#!/usr/bin/env bash
# The README's CPU-class table, measured: `make test`, `tinygpt bench --speedrun`, `make study`
# and `make emergence`, each in its own fresh clone of this checkout (its venv set up on the
# way, an empty torch.compile cache), each timed by the wall clock.
#
#   bash scripts/cpu_class.sh [native|avx2|avx512] [RESULTS]   (defaults: native, out/cpu-class)
#
# avx2 limits oneDNN, ATen (and the code inductor generates) and MKL to the kernels of an
# AVX2-only CPU, which has no bf16 units: bf16 is then emulated, as on an AMD EPYC of that
# class. avx512 limits them to AVX-512 with its bf16 instructions and no AMX (on an Intel
# Xeon those bf16 kernels measure slower than fp32, unlike what is reported for AMD's AVX-512
# bf16 CPUs, so it stands in for that class's fp32 only). The clock, caches and memory stay
# this machine's, so name both the machine and the limit beside its figures.
# PARTS (default "test speedrun study"; "emergence", "data-axis",
# the Chinchilla preset of issue #30, and "instruct", the InstructGPT pipeline with its base
# models, are the others) picks the parts. OpenMP threads busy-wait: run nothing else meanwhile.
set -uo pipefail
cd "$(dirname "$0")/.."
CLASS=${1:-native}
RESULTS=$(realpath -m "${2:-out/cpu-class}")
PARTS=${PARTS:-test speedrun study}
case $CLASS in
  native) ;;
  avx2) export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ;;
  avx512) export ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 ATEN_CPU_CAPABILITY=avx512 \
    MKL_ENABLE_INSTRUCTIONS=AVX512 ;;
  *) echo "error: the class is native, avx2 or avx512, not $CLASS" >&2; exit 2 ;;
esac
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
{
  echo "commit $(git rev-parse --short HEAD), class $CLASS, $(date -u +%FT%TZ)"
  lscpu | grep -E "^Model name|^CPU\(s\)"
  echo "flags: $(grep -oE 'avx512_bf16|amx_bf16|avx512f|avx2' /proc/cpuinfo | sort -u | xargs)"
} | tee "$RESULTS/machine.txt"
timed() {  # timed NAME COMMAND...: run in a fresh clone, log to RESULTS/NAME.log, print the time
  local name=$1 t0=$SECONDS; shift
  [[ " $PARTS " == *" $name "* ]] || return 0
  CLONE=$(mktemp -d)/tinygpt
  git clone -q . "$CLONE" || exit 1
  # CI's clone has the workspace's shared/ beside it (the Chinchilla points a fit test reads)
  [[ -d ../shared ]] && ln -s "$(realpath ../shared)" "$(dirname "$CLONE")/shared"
  export TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)
  (cd "$CLONE" && "$@") >"$RESULTS/$name.log" 2>&1
  local rc=$? s=$((SECONDS - t0))
  printf '%s: exit %d, %d min %02d s\n' "$name" $rc $((s / 60)) $((s % 60)) \
    | tee -a "$RESULTS/times.txt"
  tail -n 4 "$RESULTS/$name.log"
}
timed test make test
timed speedrun bash -c "make .venv/bin/.installed && .venv/bin/tinygpt bench --speedrun \
  && cp out/speedrun/result.json $RESULTS/speedrun.json"
timed study bash -c "make study && cp out/study-laptop/report.md $RESULTS/study-report.md"
timed emergence bash -c "make emergence && cp out/emergence/report.md $RESULTS/emergence-report.md"
timed data-axis bash -c "make .venv/bin/.installed && .venv/bin/tinygpt study --preset=data-axis \
  && cp out/study-data-axis/report.md $RESULTS/data-axis-report.md"
timed instruct bash -c "make instruct && cp out/instruct-laptop/report.md out/instruct-laptop/timings.json $RESULTS/"
