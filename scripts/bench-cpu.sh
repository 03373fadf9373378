#!/usr/bin/env bash
# Side-by-side CPU training throughput on this machine, in one call: cagem in f32 and bf16, and
# the PyTorch reference (benches/pytorch_reference.py) in eager f32, with torch.compile and with
# bf16 autocast. Prints one table; take it on a quiet machine (nothing else running).
#
#   scripts/bench-cpu.sh [--steps 20] [--warmup 3] [--repeat 3]
#   PYTHON=/work/venv-torch/bin/python scripts/bench-cpu.sh
#
# Each configuration runs --repeat times, interleaved (so drifting load hits all alike); the
# table shows the median run and the range. bf16 needs oneDNN (scripts/install-bf16.sh, called
# here) and a CPU with AVX512_BF16 or AMX.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
steps=20 warmup=3 repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    *) echo "bench-cpu: unknown option $1" >&2; exit 2 ;;
  esac
done
python="${PYTHON:-python3}"
export CAGEM_DNNL_LIB="${CAGEM_DNNL_LIB:-$(scripts/install-bf16.sh | tail -n 1)}"
cargo build --release -q -p cagem-cli
cagem="$root/target/release/cagem"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

names=("cagem f32" "cagem bf16" "PyTorch eager f32" "PyTorch torch.compile" "PyTorch autocast bf16")
run_one() { # index → the last line of its JSON output into $out/<index>.<rep>
  local i="$1" rep="$2" log="$out/$1.$2.log"
  case "$i" in
    0) "$cagem" bench --precision f32 --steps "$steps" --warmup "$warmup" --json >"$log" 2>&1 ;;
    1) "$cagem" bench --precision bf16 --steps "$steps" --warmup "$warmup" --json >"$log" 2>&1 ;;
    2) "$python" benches/pytorch_reference.py --steps "$steps" --warmup "$warmup" --json >"$log" 2>&1 ;;
    3) "$python" benches/pytorch_reference.py --compile --steps "$steps" --warmup "$warmup" --json >"$log" 2>&1 ;;
    4) "$python" benches/pytorch_reference.py --autocast bf16 --steps "$steps" --warmup "$warmup" --json >"$log" 2>&1 ;;
  esac
}
for rep in $(seq 1 "$repeat"); do
  for i in 0 1 2 3 4; do
    echo "bench-cpu: run $rep/$repeat: ${names[$i]}" >&2
    run_one "$i" "$rep" || echo "bench-cpu: ${names[$i]} failed (see below)" >&2
  done
done

echo
echo "CPU training step, ${steps} timed steps after ${warmup} warm-up, batch 100 + 100 labelled; $(nproc) cores; median of ${repeat} runs (min–max)"
"$python" - "$out" "$repeat" "${names[@]}" <<'PY'
import json, statistics, sys
out, repeat, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def runs(i):
    vals, err = [], None
    for rep in range(1, repeat + 1):
        try:
            lines = open(f"{out}/{i}.{rep}.log").read().splitlines()
        except OSError as e:
            err = str(e); continue
        js = [l for l in lines if l.startswith("{")]
        if js:
            vals.append(json.loads(js[-1]))
        else:
            err = (lines[-1] if lines else "no output")[:70]
    return vals, err
rows, base = [], None
for i, name in enumerate(names):
    vals, err = runs(i)
    if not vals:
        rows.append((name, None, None, None, err)); continue
    tr = [v["train_examples_per_s"] for v in vals]
    fw = [v.get("forward_examples_per_s", float("nan")) for v in vals]
    rows.append((name, statistics.median(tr), (min(tr), max(tr)), statistics.median(fw), None))
ref = dict((r[0], r[1]) for r in rows)
print(f"{'what':<24} {'train ex/s':>11} {'(min–max)':>14} {'forward ex/s':>13} {'× PyTorch bf16':>15}")
for name, tr, rng, fw, err in rows:
    if tr is None:
        print(f"{name:<24} {'n/a':>11}   {err}"); continue
    pb = ref.get("PyTorch autocast bf16")
    ratio = f"{tr / pb:.2f}" if pb else "–"
    print(f"{name:<24} {tr:>11.0f} {f'{rng[0]:.0f}–{rng[1]:.0f}':>14} {fw:>13.0f} {ratio:>15}")
PY
for i in 0 1 2 3 4; do
  for rep in $(seq 1 "$repeat"); do
    if ! grep -q '^{' "$out/$i.$rep.log" 2>/dev/null; then
      echo; echo "--- ${names[$i]} (run $rep) said:"; tail -n 5 "$out/$i.$rep.log" 2>/dev/null || true
    fi
  done
done
