#!/usr/bin/env bash
# The VGG19 part of a GPU session (run after experiments/gpu_session.sh, or alone): feature-extraction
# throughput at 150x150 in float32 and bfloat16, head training throughput, and the article's transfer
# protocol end to end with random weights (no pretrained file can be fetched there).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data TF_CPP_MIN_LOG_LEVEL=3
timeout 150 python3 experiments/benchmark.py --models=vgg19 --dtypes=float32,bfloat16 --vgg_features=float32,bfloat16 \
  --out=$OUT/benchmark-h200-vgg19 2>&1 | grep -v -i warn | tail -8
# Issue #7's goal is >= 20,000 images/s in bfloat16; a larger batch may feed the GPU better.
timeout 60 python3 experiments/benchmark.py --models= --vgg_features=bfloat16 --vgg_feature_batch=1000 \
  --out=$OUT/benchmark-h200-vgg19-batch1000 2>&1 | grep -v -i warn | tail -3
timeout 120 python3 -m fashion_jax.main --config=configs/vgg19.py --workdir=/tmp/vgg19-random \
  --config.vgg.weights=random --config.dtype=bfloat16 --config.report.plots=False 2>&1 | grep -v -i warn | tail -6
(cd /tmp && tar czf $OUT/vgg19-random-h200.tgz --exclude=checkpoints --exclude=best --exclude='events.*' vgg19-random)
