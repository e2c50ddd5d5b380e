#!/usr/bin/env bash
# The VGG19 part of a GPU session: feature-extraction throughput at 150x150 in float32 and bfloat16
# (batches of 500, then 1000), head training throughput, and the article's transfer protocol end to end
# with random weights (no pretrained file can be fetched there).
# Usage, from the repository's root: bash experiments/gpu/gpu_vgg.sh [SECONDS]; results go under $OUT.
set -uo pipefail
source experiments/gpu/gpu_env.sh "${1:-170}"
bounded 70 python3 -m experiments.speed.benchmark --models=vgg19 --dtypes=float32,bfloat16 \
  --vgg_features=float32,bfloat16 --out=$OUT/benchmark-h200-vgg19 2>&1 | quiet | tail -8
# The goal is >= 20,000 images/s in bfloat16; a larger batch may feed the GPU better.
bounded 30 python3 -m experiments.speed.benchmark --models= --vgg_features=bfloat16 --vgg_feature_batch=1000 \
  --out=$OUT/benchmark-h200-vgg19-batch1000 2>&1 | quiet | tail -3
bounded 70 python3 -m fashion_jax.main --config=configs/vgg19.py --workdir=$GPU_SCRATCH/vgg19-random \
  --config.vgg.weights=random --config.dtype=bfloat16 --config.report.plots=False 2>&1 | quiet | tail -6
pack_runs vgg19-random vgg19-random-h200.tgz
exit 0
