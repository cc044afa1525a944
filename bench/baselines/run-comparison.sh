#!/usr/bin/env bash
# The baseline comparison of docs/baselines.md (the paper's Fig. 4 at our scale): every
# compare-* preset × seed trained with mdm-train into runs/compare/<preset>-s<seed>, then all of
# them evaluated together by mdm-eval compare. Resumable: a finished run is kept, an interrupted
# one resumes (mdm-train --resume), and mdm-eval compare reuses samples already written.
#   bash bench/baselines/run-comparison.sh [seeds (default "0 1")] [eval n (default 48)]
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${1:-"0 1"}
N=${2:-48}
OUT=${OUT:-runs/compare}
PRESETS="compare-mdm compare-mdm-nopt compare-simple compare-nested-toploss compare-cascaded compare-latent"
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for seed in $SEEDS; do
  for preset in $PRESETS; do
    dir="$OUT/$preset-s$seed"
    if [ -f "$dir/done" ]; then echo "== $dir: done"; continue; fi
    echo "== $dir: training ($(date -u +%H:%M:%S))"
    if [ -f "$dir/checkpoint.safetensors" ] || [ -f "$dir/run.json" ]; then
      npx -y pnpm@9.15.9 -s mdm-train train --resume "$dir"
    else
      extra=()
      # The latent runs share seed 0's autoencoder (its cost is reported once, apart); seeds vary the diffusion.
      first="$OUT/compare-latent-s${SEEDS%% *}/autoencoder/autoencoder.safetensors"
      if [ "$preset" = compare-latent ] && [ -f "$first" ]; then extra=(--set "model.autoencoder.weights=$first"); fi
      npx -y pnpm@9.15.9 -s mdm-train train --preset "$preset" --seed "$seed" --out "$dir" "${extra[@]}"
    fi
    touch "$dir/done"
  done
done
runs=()
for seed in $SEEDS; do for preset in $PRESETS; do runs+=("$OUT/$preset-s$seed"); done; done
echo "== evaluating ($(date -u +%H:%M:%S))"
npx -y pnpm@9.15.9 -s mdm-eval compare --runs "${runs[@]}" --n "$N" --steps 25 --sampler ddim --out "$OUT/eval"
echo "== done ($(date -u +%H:%M:%S)): $OUT/eval/compare.md"
