#!/usr/bin/env bash
# cagem with its defaults on the own-data sets of docs/own-data.md: train, then IW-100 on the test
# split; one line per set and seed: name, seed, training seconds, q(y|x) and p(y|x) test error.
#   scripts/own-data/run-cagem.sh BIN SETS OUT NAME[:EXTRA-OPTIONS]...
# e.g. scripts/own-data/run-cagem.sh target/release/cagem runs/own-data/sets runs/own-data digits \
#        "iris:--likelihood gaussian --standardize"
set -euo pipefail
bin="$1" sets="$2" out="$3"
shift 3
mkdir -p "$out"
for spec in "$@"; do
  name="${spec%%:*}" extra=""
  [ "$spec" != "$name" ] && extra="${spec#*:}"
  for seed in 0 1 2; do
    [ -d "$sets/$name-s$seed" ] || continue   # mnist5k has seed 0 only
    run="$out/$name-s$seed"
    rm -rf "$run"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$bin" --threads 1 train --dataset npy --data "$sets/$name-s$seed" --out "$run" --quiet $extra >"$run.log" 2>&1
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    "$bin" --threads 1 eval --run "$run" --k 100 --json 2>/dev/null | tail -n 1 >"$run.eval.json"
    python3 - "$name" "$seed" "$secs" "$run.eval.json" <<'PY'
import json, sys
name, seed, secs, path = sys.argv[1:]
e = json.load(open(path))
print(f"{name}\t{seed}\t{float(secs):.0f} s\tq {100 * e['error_q']:.2f} %\tp {100 * e['error_p']:.2f} %", flush=True)
PY
  done
done
