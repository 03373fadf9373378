#!/usr/bin/env bash
# The reduced-scale factorial of issue 28 (does z2 hold the clusters?): each cell trains on the
# first 10,000 MNIST images for 30 epochs, seed 0 unless named, evaluated every 10 epochs on 1000
# test images spread over the classes (IW-10, routing, separation, clusters used).
# Two runs side by side (LANES=n to change), one thread each; a cell with a checkpoint resumes, a finished one is
# skipped, so the script can be rerun after an interruption.
#   scripts/clusters-factorial.sh [BIN] [OUT] [CELL...]     (default: every cell below, in order)
set -uo pipefail
bin="${1:-target/release/cagem}"
out="${2:-runs/f28}"
shift 2 2>/dev/null || shift $#
common="--n-train 10000 --epochs 30 --eval-every 10 --eval-k 10 --eval-n 1000 --quiet"

# name | options (the warm-up is 5 epochs unless the cell says otherwise)
cells=$(cat <<'CELLS'
c100-baseline|--warmup 5
c100-labelled-elbo|--warmup 5 --deviation labelled-elbo
c100-routing-warmup|--warmup 5 --deviation routing-warmup
c100-routing-warmup+kl-gauss|--warmup 5 --deviation routing-warmup --deviation kl-warmup-gaussian-only
c100-routing-floor-1|--warmup 5 --routing-floor 1
c100-routing-floor-0.3|--warmup 5 --routing-floor 0.3
c100-routing-floor-0.1|--warmup 5 --routing-floor 0.1
c100-log-py-weight-3|--warmup 5 --log-py-weight 3
c100-log-py-weight-10|--warmup 5 --log-py-weight 10
c100-log-py-weight-3-seed1|--warmup 5 --log-py-weight 3 --seed 1
c100-log-py-weight-10-seed1|--warmup 5 --log-py-weight 10 --seed 1
c100-log-py-weight-3+clip|--warmup 5 --log-py-weight 3 --clip-norm 5 --clip-value 1
c100-log-py-weight-3+bn-qy|--warmup 5 --log-py-weight 3 --deviation bn-qy-weighted
c100-log-py-weight-3+floor-0.3|--warmup 5 --log-py-weight 3 --routing-floor 0.3
c100-log-py-weight-3+qy-held|--warmup 5 --log-py-weight 3 --deviation log-py-qy-held
c100-log-py-weight-3+qy-held-seed1|--warmup 5 --log-py-weight 3 --deviation log-py-qy-held --seed 1
c0-log-py-weight-3|--warmup 5 --labels 0 --log-py-weight 3
c100-kl-gauss|--warmup 5 --deviation kl-warmup-gaussian-only
c100-hp-grad-all|--warmup 5 --deviation hp-grad-all
c100-baseline-w25|--warmup 25
c100-kl-gauss-w25|--warmup 25 --deviation kl-warmup-gaussian-only
c100-routing-warmup-w25|--warmup 25 --deviation routing-warmup
c0-baseline|--warmup 5 --labels 0
c0-kl-gauss|--warmup 5 --labels 0 --deviation kl-warmup-gaussian-only
c0-routing-warmup|--warmup 5 --labels 0 --deviation routing-warmup
c0-free-bits-y-2|--warmup 5 --labels 0 --free-bits-y 2
c0-bn-qy-weighted|--warmup 5 --labels 0 --deviation bn-qy-weighted
c0-marginal-entropy-y-1|--warmup 5 --labels 0 --marginal-entropy-y 1
c0-marginal-entropy-y-5|--warmup 5 --labels 0 --marginal-entropy-y 5
c0-marginal-entropy-y-1-seed1|--warmup 5 --labels 0 --marginal-entropy-y 1 --seed 1
c0-marginal-entropy-y-1+log-py-weight-3|--warmup 5 --labels 0 --marginal-entropy-y 1 --log-py-weight 3
c0-marginal-entropy-y-1+log-py-weight-3-seed1|--warmup 5 --labels 0 --marginal-entropy-y 1 --log-py-weight 3 --seed 1
CELLS
)
if [ $# -gt 0 ]; then
  cells=$(for c in "$@"; do grep "^$c|" <<<"$cells" || echo "unknown cell $c" >&2; done)
fi
mkdir -p "$out"

one() {
  local name="${1%%|*}" opts="${1#*|}" dir="$out/${1%%|*}"
  if python3 -c '
import json, sys
try:
    rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
except OSError:
    sys.exit(1)
sys.exit(0 if any(r.get("epoch") == 30 and "test_routing" in r for r in rows) else 1)
' "$dir"; then
    echo "$name: done"
    return 0
  fi
  if [ -f "$dir/checkpoint.safetensors" ]; then
    echo "$name: resuming"
    "$bin" --threads 1 train --out "$dir" --resume --quiet >>"$dir.log" 2>&1
  else
    rm -rf "$dir"
    echo "$name: starting ($opts)"
    # shellcheck disable=SC2086
    "$bin" --threads 1 train --out "$dir" $common $opts >"$dir.log" 2>&1
  fi
  echo "$name: exit $?"
}
export -f one
export bin out common
tr '\n' '\0' <<<"$cells" | xargs -0 -P "${LANES:-2}" -I{} bash -c 'one "$@"' _ {}
