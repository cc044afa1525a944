#!/usr/bin/env bash
# Samples of a run, their statistics and the merge as three dependent Slurm jobs over n tasks:
#   RUN=runs/emoji N=5000 TASKS=8 bash tooling/launch/slurm/submit-eval.sh
# then: npx mdm-eval frechet "$RUN/samples.npz" <reference.npz>
set -euo pipefail
: "${RUN:?set RUN to the training run directory}"
TASKS="${TASKS:-8}"
here="$(cd "$(dirname "$0")" && pwd)"
export RUN N="${N:-5000}" OUT="${OUT:-$RUN/samples}"
export IMAGES="$OUT/images" PARTS="${PARTS:-$RUN/parts}" STATS="${STATS:-$RUN/samples.npz}"
generate=$(sbatch --parsable --array="0-$((TASKS - 1))" "$here/generate.sbatch")
stats=$(sbatch --parsable --array="0-$((TASKS - 1))" --dependency="afterok:$generate" "$here/stats.sbatch")
merge=$(sbatch --parsable --dependency="afterok:$stats" "$here/merge.sbatch")
echo "submitted: generate $generate, stats $stats, merge $merge -> $STATS"
