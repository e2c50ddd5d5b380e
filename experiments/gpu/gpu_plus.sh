#!/usr/bin/env bash
# The _plus recipes (configs/plus.py) on a GPU: for each model given (default CNN-4, whose ablations the
# CPU cannot afford: 1.8 h a run), the full recipe over 3 seeds, then, with time left, the recipe without
# each of its choices (experiments/recipes/ablate.py; its full-recipe runs are then reported, not trained
# again, and so are its variants without EMA and without flip TTA, which change only the tests).
# The second table has its own name: ablate.py rewrites its output after every run, from the runs it has
# seen.
# Usage, from the repository's root: bash experiments/gpu/gpu_plus.sh [SECONDS] [MODELS]; results under $OUT.
set -uo pipefail
source experiments/gpu/gpu_env.sh "${1:-130}"
for model in ${2:-cnn4}; do
  for table in recipe ablation; do
    only=$([ $table = recipe ] && echo --only=full)
    bounded 600 python3 -m experiments.recipes.ablate --config=configs/${model}_plus.py --seeds=$(seeds 3) $only \
      --root=$GPU_SCRATCH/ablate-$model --out=$OUT/${table}-${model}-plus-h200 --set=checkpoint_every_epochs=10 \
      --set=report.plots=False "${TRY_SET[@]}" 2>&1 | quiet | tail -4
  done
done
exit 0
