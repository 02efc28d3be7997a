#!/usr/bin/env bash
# Per-kernel GPU time of one call of each bench stage, with Nsight Compute, on the device machine
# after compare.py has written the weights and inputs to $WORK:
#   WORK=/tmp/cmp OUT=$OUT bash tools/gpu/profile.sh carry/triposg dit vae
# Writes $OUT/profile-<stage>.csv (raw) and prints the kernels by total time.
set -euo pipefail
bin=$1; shift
work=${WORK:-/tmp/triposg-compare}
for stage in "$@"; do
  csv="$OUT/profile-$stage.csv"
  ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
    "$bin" --weights "$work" bench --inputs "$work/inputs.safetensors" --out "$work/prof.safetensors" \
    --device cuda --dtype f16 --stages "$stage" --profile > "$csv" 2> "$OUT/profile-$stage.log"
  echo "== $stage"
  python3 "$(dirname "$0")/kernel_summary.py" "$csv"
done
