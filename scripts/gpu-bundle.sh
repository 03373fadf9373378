#!/usr/bin/env bash
# Builds what a GPU machine runs into .carry/gpu/ (ignored by git; name it in the device tool's
# `carry`): the release `cagem` binary, the CUDA test executables and the CUDA kernel benchmark,
# all with --features cuda (PTX embedded), plus the PyTorch reference, scripts/gpu-check.sh and
# the commit they were built from.
# On the GPU machine, from the repository root:  scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/install-nvcc.sh | tail -n 1):$PATH"
out=.carry/gpu
rm -rf "$out"
mkdir -p "$out/tests"

cargo build --release -p cagem-cli --features cuda
cp target/release/cagem "$out/"

# Test and bench executables, located from cargo's JSON messages.
executables() {
  python3 -c '
import json, sys
wanted = set(sys.argv[1:])
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in wanted:
        print(m["executable"])
' "$@"
}
cargo test --workspace --features cuda --no-run --message-format=json 2>/dev/null \
  | executables cuda_vs_cpu cuda_step | while read -r exe; do cp "$exe" "$out/tests/$(basename "$exe" | sed 's/-[0-9a-f]*$//')"; done
cargo bench -p cagem-kernels --features cuda --bench cuda --no-run --message-format=json 2>/dev/null \
  | executables cuda | while read -r exe; do cp "$exe" "$out/cuda-bench"; done

# Debug information makes the test executables ~80 MB each; a carry holds 64 MiB in all.
strip "$out/cagem" "$out/cuda-bench" "$out"/tests/*
cp benches/pytorch_reference.py scripts/gpu-check.sh "$out/"
# What the log names as the commit measured (a carried copy has no .git to ask).
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!.carry' || echo ' + uncommitted changes')" >"$out/COMMIT"
ls -la "$out" "$out/tests"
du -sh "$out"
