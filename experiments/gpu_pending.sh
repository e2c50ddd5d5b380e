#!/usr/bin/env bash
# Everything that still waits for a GPU, in priority order, for the two device calls a session can make
# (each at most 10 minutes; 15 minutes of device time in all, start-up included).
#
#   call 1: bash experiments/gpu_pending.sh 1    (about 9 minutes)
#     - versions, then the VGG19 extractor fix: bash experiments/gpu_vgg.sh (features at 150x150 in
#       float32 and bfloat16, batch 500 and 1000; the transfer protocol with random weights)
#     - CNN-4's article protocol with precise BatchNorm, 3 seeds (how much the running averages' lag
#       costs; configs/cnn4.py with --set=precise_batch_norm=True)
#     - the _plus recipes and their ablations: bash experiments/gpu_plus.sh
#   call 2: bash experiments/gpu_pending.sh 2    (about 9 minutes)
#     - the WRN-16-4 and ResNet-18 recipes, 3 seeds: bash experiments/gpu_recipes.sh
#     - the speedruns toward 0.94 and 0.95: bash experiments/gpu_speedrun.sh
#     - CNN-4's Keras baseline on Keras' JAX backend: bash experiments/gpu_keras.sh
#
# Carry .whl/ (wheels of ml-collections, clu, keras, keras-preprocessing, namex, optree: what the image
# lacks) and .device_data/ (the four IDX files), both ignored by git: `bash experiments/gpu_prepare.sh`
# makes them here first. Everything comes back under $OUT;
# commit it with the command and the versions.txt it wrote.
set -uo pipefail
part=${1:?usage: bash experiments/gpu_pending.sh 1|2}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data TF_CPP_MIN_LOG_LEVEL=3
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, jax, flax, optax; print(sys.version); print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__); print(jax.devices())"
} 2>&1 | tee $OUT/versions-$part.txt
if [ "$part" = 1 ]; then
  timeout 200 bash experiments/gpu_vgg.sh
  timeout 90 python3 experiments/run_study.py --root=/tmp/precise-bn --models=cnn4 --seeds=3 \
    --set=precise_batch_norm=True --set=checkpoint_every_epochs=10 --set=report.plots=False 2>&1 \
    | grep -v -i warn | tee $OUT/precise-bn.log
  (cd /tmp && tar czf $OUT/precise-bn.tgz --exclude=checkpoints --exclude=best --exclude='events.*' --exclude=.jax_cache precise-bn)
  bash experiments/gpu_plus.sh 240
else
  bash experiments/gpu_recipes.sh 240
  bash experiments/gpu_speedrun.sh 150
  bash experiments/gpu_keras.sh 100
fi
