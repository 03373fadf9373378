#!/usr/bin/env bash
# Installs oneDNN 3.2 (libdnnl.so.3, the library PyTorch's bf16 CPU matmuls run on) from PyPI into
# a local virtual environment, .venv-bf16/, and prints the library's path on the last line.
# cagem loads it at run time for --precision bf16 (CAGEM_DNNL_LIB, or found beside the repo).
#
#   scripts/install-bf16.sh                        # install (idempotent)
#   export CAGEM_DNNL_LIB="$(scripts/install-bf16.sh | tail -n 1)"
#
# Pinned: onednn-cpu-gomp 2023.2.0 is oneDNN 3.2 built against GNU OpenMP; it needs only
# libgomp and libstdc++ (newer `onednn` wheels need TBB, SVML and SYCL runtimes). No headers:
# cagem declares the few C functions it calls itself (src/onednn/ffi.rs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-bf16"
package=onednn-cpu-gomp==2023.2.0

find_lib() {
  local f
  for f in "$venv"/lib/libdnnl.so.3 "$venv"/lib/python3*/site-packages/lib/libdnnl.so.3 \
    "$venv"/lib/python3*/site-packages/*/lib/libdnnl.so.3; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
  return 1
}

if ! find_lib >/dev/null; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv
  fi
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package"
  echo "install-bf16: installed $package into $venv" >&2
else
  echo "install-bf16: $package already in $venv" >&2
fi
lib="$(find_lib)" || { echo "install-bf16: libdnnl.so.3 not found after installing $package" >&2; exit 1; }
# libdnnl needs libgomp: say so now rather than at cagem's first bf16 product.
if ! ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1'; then
  echo "install-bf16: warning: libgomp.so.1 not found by ldconfig (apt-get install libgomp1)" >&2
fi
echo "$lib"
