#!/usr/bin/env bash
# The article's Keras code for CNN-4 on a GPU, for the reproduction's Keras baseline: on the 2-core CPU a
# CNN-4 run of the notebook protocol takes hours (Keras' CNN-4 trains at about 340 images/s there).
# Keras 3 runs on its JAX backend here (the device image has JAX, not TensorFlow), through the same
# experiments/keras_study.py as the CPU runs; the results say which backend and device ran them.
# Expects in .whl/ the wheels of keras, keras-preprocessing, ml-collections and Keras' pure-Python
# dependencies missing from the image (namex, optree), and the four IDX files in .device_data/ (both
# carried, ignored by git). Usage: bash experiments/gpu_keras.sh [SECONDS]; results come back in $OUT.
set -uo pipefail
seconds=${1:-500}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data KERAS_BACKEND=jax
python3 -c "import keras, jax; print('keras', keras.__version__, keras.backend.backend(), jax.devices())" 2>&1 \
  | tee $OUT/keras-versions.txt
# Smoke first: an import or API problem shows in seconds.
python3 experiments/keras_study.py --models=cnn4 --seeds=0 --root=/tmp/keras-smoke --epochs=1 --augment_epochs=1 \
  --train_limit=1024 2>&1 | grep -v -i warn | tail -3 | tee -a $OUT/keras-versions.txt
deadline=$((SECONDS + seconds))
for seed in 0 1 2; do
  left=$((deadline - SECONDS))
  [ $left -gt 30 ] || break
  # A run that the deadline cuts leaves no results.json; the next call starts it again.
  timeout $left python3 experiments/keras_study.py --models=cnn4 --seeds=$seed --root=/tmp/keras-gpu 2>&1 \
    | grep -v -i warn | tail -2 | tee -a $OUT/keras-gpu.log
  (cd /tmp && tar czf $OUT/keras-gpu.tgz keras-gpu)
done
