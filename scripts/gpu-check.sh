#!/usr/bin/env bash
# Runs on a GPU machine, from the repository root, with .carry/gpu/ made by scripts/gpu-bundle.sh,
# in one call of at most ~9 minutes (CHECK_BUDGET_S, default 530 s). In order of importance:
#   1. the CUDA tests under CAGEM_REQUIRE_GPU=1 (they must not skip);
#   2. `cagem bench --device cuda` in f32 and TF32 (with peak device memory) beside
#      benches/pytorch_reference.py on the same GPU: eager f32, bf16 autocast;
#   3. one timed epoch of training (`cagem train --epochs 1`), then a timed IW-5000 over all
#      10,000 MNIST test images with that model;
#   4. the kernel benchmarks against the measured copy bandwidth, PyTorch with torch.compile,
#      and the IW-5000 in TF32, while time is left.
# Every part has a timeout (capped by what is left of the budget), so one hang cannot eat the
# machine's time. The whole raw output goes to $OUT/gpu-check-<date>.txt (commit it as
# docs/gpu/<date>-h200.txt); the exit status is non-zero if a test failed or a part timed out.
set -uo pipefail
dir=.carry/gpu
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
day=$(date -u +%Y-%m-%d)
logfile="$out/gpu-check-$day.txt"
start=$(date +%s)
budget=${CHECK_BUDGET_S:-530}
status=0

main() {

echo "== cagem GPU check, $(date -u +%FT%TZ), commit $(cat "$dir/COMMIT" 2>/dev/null || echo unknown)"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: nvidia-smi is missing or lists no GPU; this script runs on a GPU machine"
  return 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
nvidia-smi -L
if [ ! -x "$dir/cagem" ]; then
  echo "no $dir/cagem: build the bundle first with scripts/gpu-bundle.sh and carry .carry/gpu"
  return 2
fi

# cagem loads libcuda and cuBLAS at run time; find a cuBLAS of CUDA 13 (or 12).
for d in $(python3 - <<'PY' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for p in glob.glob(os.path.join(r, "nvidia", "*", "lib")):
        print(p)
PY
) /usr/local/cuda*/lib64; do
  if ls "$d"/libcublas.so* >/dev/null 2>&1; then export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; fi
done
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>&1

# part NAME SECONDS CMD...: runs CMD with a timeout of SECONDS, capped by the budget left;
# skipped when under 15 s are left. Prints the wall time.
part() {
  local name=$1 limit=$2
  shift 2
  local left=$((start + budget - $(date +%s)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    echo "== $name: skipped ($left s of the budget left)"
    return
  fi
  echo "== $name (timeout ${limit} s, $(date -u +%T))"
  local t0 rc ms
  t0=$(date +%s%N)
  timeout -k 5 "$limit" "$@"
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  echo "== $name: exit $rc, $((ms / 1000)).$(printf %03d $((ms % 1000))) s wall"
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && echo "== $name: TIMED OUT"
    status=1
  fi
}

export CAGEM_REQUIRE_GPU=1
for t in "$dir"/tests/*; do
  part "test $(basename "$t")" 120 "$t" --test-threads=1 --nocapture
done
unset CAGEM_REQUIRE_GPU

part "cagem bench f32" 60 "$dir/cagem" bench --device cuda --steps 50 --json
part "cagem bench tf32" 60 "$dir/cagem" bench --device cuda --tf32 --steps 50 --json
part "pytorch eager f32" 60 python3 "$dir/pytorch_reference.py" --device cuda --steps 50 --json
part "pytorch eager bf16 autocast" 60 python3 "$dir/pytorch_reference.py" --device cuda --steps 50 --autocast bf16 --json

# The run (checkpoint ~30 MB) stays out of $OUT: only the log needs to come back.
run=$(mktemp -d)/run
part "one epoch of training (MNIST, 600 steps of 100 + 100)" 120 \
  "$dir/cagem" train --device cuda --epochs 1 --warmup 1 --out "$run" --quiet
if [ -f "$run/metrics.jsonl" ]; then cat "$run/metrics.jsonl"; fi
if [ -d "$run" ]; then
  part "IW-5000 over the 10,000 MNIST test images (f32)" 200 \
    "$dir/cagem" eval --run "$run" --device cuda --k 5000 --json
fi

part "kernel benchmarks (GB/s against the copy bandwidth)" 60 "$dir/cuda-bench"
part "pytorch torch.compile f32" 120 python3 "$dir/pytorch_reference.py" --device cuda --steps 50 --warmup 5 --compile --json
part "pytorch torch.compile bf16 autocast" 120 \
  python3 "$dir/pytorch_reference.py" --device cuda --steps 50 --warmup 5 --compile --autocast bf16 --json
if [ -d "$run" ]; then
  part "IW-5000 over the 10,000 MNIST test images (TF32)" 200 \
    "$dir/cagem" eval --run "$run" --device cuda --tf32 --k 5000 --json
fi

echo "== done in $(($(date +%s) - start)) s, exit $status; log: $logfile"
return $status
}

# One log of everything, stdout and stderr in order.
main 2>&1 | tee "$logfile"
exit "${PIPESTATUS[0]}"
