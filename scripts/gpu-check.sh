#!/usr/bin/env bash
# Runs on a GPU machine, from the repository root, with .carry/gpu/ made by scripts/gpu-bundle.sh:
# the CUDA tests (which must not skip), the kernel benchmarks, cagem's training-step, forward and
# IW benchmarks beside PyTorch's on the same GPU, and a timed IW-5000 over the MNIST test set.
# Logs go to $OUT (or ./gpu-check-out).
set -uo pipefail
dir=.carry/gpu
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/summary.txt"; }

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
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$out/summary.txt"

export CAGEM_REQUIRE_GPU=1
status=0
for t in "$dir"/tests/*; do
  log "test $(basename "$t")"
  "$t" --test-threads=1 2>&1 | tee "$out/test-$(basename "$t").log" | tail -n 3 | tee -a "$out/summary.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done

log "kernel benchmarks"
"$dir/cuda-bench" 2>&1 | tee "$out/cuda-bench.txt" | tail -n 40

log "cagem bench, fp32 and TF32, and PyTorch eager fp32 on the same GPU"
"$dir/cagem" bench --device cuda --steps 50 --json 2>&1 | tee "$out/cagem-bench.txt" | tail -n 8
"$dir/cagem" bench --device cuda --tf32 --steps 50 --json 2>&1 | tee "$out/cagem-bench-tf32.txt" | tail -n 8
python3 "$dir/pytorch_reference.py" --device cuda --steps 50 --json 2>&1 | tee "$out/pytorch.txt" | tail -n 5

log "IW-5000 over the 10,000 MNIST test images (after one epoch of training on the GPU)"
"$dir/cagem" train --device cuda --epochs 1 --warmup 1 --out "$out/run" --quiet 2>&1 | tail -n 3
/usr/bin/time -f "%e s wall" "$dir/cagem" eval --run "$out/run" --device cuda --k 5000 --json 2>&1 | tee "$out/iw5000.txt" | tail -n 4
/usr/bin/time -f "%e s wall" "$dir/cagem" eval --run "$out/run" --device cuda --tf32 --k 5000 --json 2>&1 | tee "$out/iw5000-tf32.txt" | tail -n 4
exit $status
