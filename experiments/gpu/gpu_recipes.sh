#!/usr/bin/env bash
# The modern models toward 0.96 on a GPU: the WRN-16-4 and pre-activation ResNet-18 recipes
# (configs/wrn.py, configs/resnet.py) in bfloat16 compute, seed by seed (both models' seed 0 first)
# until SECONDS are spent. A run the time limit cuts checkpoints on SIGTERM; a later call on the same,
# still warm machine resumes it (/tmp is kept there; a fresh machine starts again).
# Usage, from the repository's root: bash experiments/gpu/gpu_recipes.sh [SECONDS]; results under $OUT.
set -uo pipefail
source experiments/gpu/gpu_env.sh "${1:-240}"
for seed in $(seq 0 $(( $(seeds 3) - 1 ))); do
  for model in wrn resnet; do
    extra=("${TRY_SET[@]}")
    [ $model = wrn ] && extra+=("${TRY_WRN_SET[@]}")
    bounded 600 python3 -m experiments.study.run_study --root=$GPU_SCRATCH/recipes --models=$model --seeds=1 \
      --seed_offset=$seed --set=dtype=bfloat16 --set=checkpoint_every_epochs=5 --set=report.plots=False \
      "${extra[@]}" 2>&1 | quiet | tail -4
    status=${PIPESTATUS[0]}
    pack_runs recipes recipes.tgz
    case $status in 124|137) exit 0;; esac  # out of time
  done
done
exit 0
