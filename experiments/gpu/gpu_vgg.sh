#!/usr/bin/env bash
# The VGG19 part of a GPU session: feature-extraction throughput at 150x150 in float32 and bfloat16
# (batches of 500, then 1000), head training throughput, and the article's transfer protocol end to end
# with random weights (no pretrained file can be fetched there). The first H200 run measured the
# extractor before its fix (it sent the weights with every batch and waited for each), and its files
# keep their names (experiments/results/gpu/benchmark-h200-vgg19*, study/vgg19-random-h200/): these
# outputs say "pipelined" (the weights resident on the device, the next batch sent while one runs).
# Usage, from the repository's root: bash experiments/gpu/gpu_vgg.sh [SECONDS]; results go under $OUT.
set -uo pipefail
source experiments/gpu/gpu_env.sh "${1:-120}"
sizes=() protocol=()
if [ -n "${GPU_TRY:-}" ]; then  # on the CPU: the smallest input VGG19 takes, the head on stand-in features
  sizes=(--vgg_size=32 --vgg_feature_images=64 --calls=1 --vgg_stand_in_features)
  protocol=("${TRY_CONFIG[@]}" --config.vgg.input_size=32 --config.augment_epochs=0)  # features: no augmentation
fi
bounded 70 python3 -m experiments.speed.benchmark --models=vgg19 --dtypes=float32,bfloat16 \
  --vgg_features=float32,bfloat16 "${sizes[@]}" --out=$OUT/benchmark-h200-vgg19-pipelined 2>&1 | quiet | tail -8
# The goal is >= 20,000 images/s in bfloat16; a larger batch may feed the GPU better.
bounded 30 python3 -m experiments.speed.benchmark --models= --vgg_features=bfloat16 --vgg_feature_batch=1000 \
  "${sizes[@]}" --out=$OUT/benchmark-h200-vgg19-pipelined-batch1000 2>&1 | quiet | tail -3
bounded 70 python3 -m fashion_jax.main --config=configs/vgg19.py --workdir=$GPU_SCRATCH/vgg19-random \
  --config.vgg.weights=random --config.dtype=bfloat16 --config.report.plots=False "${protocol[@]}" \
  2>&1 | quiet | tail -6
pack_runs vgg19-random vgg19-random-h200-pipelined.tgz
exit 0
