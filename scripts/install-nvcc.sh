#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 compiler (nvcc, ptxas and headers; no GPU needed) from PyPI into a
# local virtual environment, .venv-cuda/, and prints the folder to put on PATH.
#
#   scripts/install-nvcc.sh            # install (idempotent)
#   export PATH="$(scripts/install-nvcc.sh --bin):$PATH"
#
# Pinned on purpose: unpinned, pip pulls 13.5 parts whose PTX (ISA 9.5) a CUDA 13.0 driver
# cannot load; nvcc 13.0 emits PTX ISA 9.0, which the driver 580 (CUDA 13.0) accepts.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-cuda"
packages=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)

find_bin() {
  local d
  for d in "$venv"/lib/python3*/site-packages/nvidia/cu13/bin; do
    if [ -x "$d/nvcc" ]; then echo "$d"; return 0; fi
  done
  return 1
}

if [ "${1:-}" = "--bin" ]; then
  find_bin || { echo "nvcc is not installed; run scripts/install-nvcc.sh" >&2; exit 1; }
  exit 0
fi

if ! find_bin >/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
fi
bin="$(find_bin)" || { echo "install-nvcc: nvcc not found after installing ${packages[*]}" >&2; exit 1; }
"$bin/nvcc" --version | tail -n 2 >&2
echo "$bin"
