#!/usr/bin/env bash
# The _plus recipes (configs/plus.py) on a GPU: for each model given (default CNN-4, the one the CPU
# could not run), the full recipe over 3 seeds, then, with time left, the recipe without each of its
# choices (experiments/ablate.py; its full-recipe runs are then reported, not trained again). The second
# table has its own name: ablate.py rewrites its output after every run, from the runs it has seen.
# Usage, from the repository's root: bash experiments/gpu_plus.sh [SECONDS] [MODELS]; results under $OUT.
set -uo pipefail
source experiments/gpu_env.sh "${1:-130}"
for model in ${2:-cnn4}; do
  # CNN-4 has BatchNorm: its EMA's averaged running statistics can be far from its averaged weights', so
  # every test is also made with statistics recomputed over the training set (a few seconds here).
  precise=$([ $model = cnn4 ] && echo --set=precise_batch_norm=True)
  for table in recipe ablation; do
    only=$([ $table = recipe ] && echo --only=full)
    bounded 600 python3 experiments/ablate.py --config=configs/${model}_plus.py --seeds=3 $only \
      --root=$GPU_SCRATCH/ablate-$model --out=$OUT/${table}-${model}-plus-h200 --set=checkpoint_every_epochs=10 \
      --set=report.plots=False $precise 2>&1 | quiet | tail -4
  done
done
exit 0
