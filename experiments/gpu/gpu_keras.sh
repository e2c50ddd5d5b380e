#!/usr/bin/env bash
# The article's Keras code for CNN-4 on a GPU, for the reproduction's Keras baseline: on the 2-core CPU a
# CNN-4 run of the notebook protocol takes hours (Keras' CNN-4 trains at about 340 images/s there).
# Keras 3 runs on its JAX backend here (the device image has JAX, not TensorFlow), through the same
# experiments/baselines/keras_study.py as the CPU runs; the results say which backend and device ran
# them. Needs the wheels of keras, keras-preprocessing and their pure-Python dependencies (gpu_prepare.sh).
# Usage, from the repository's root: bash experiments/gpu/gpu_keras.sh [SECONDS]; results under $OUT.
set -uo pipefail
source experiments/gpu/gpu_env.sh "${1:-300}"
export KERAS_BACKEND=jax
# A short smoke run first: an import or API problem shows in seconds, not at the end of a long run.
bounded 60 python3 -m experiments.baselines.keras_study --models=cnn4 --seeds=0 \
  --root=$GPU_SCRATCH/keras-smoke --epochs=1 --augment_epochs=1 --train_limit=1024 2>&1 | quiet | tail -3
for seed in 0 1 2; do
  # A run the time limit cuts leaves no results.json; the next call starts it again.
  bounded 600 python3 -m experiments.baselines.keras_study --models=cnn4 --seeds=$seed \
    --root=$GPU_SCRATCH/keras-gpu 2>&1 | quiet | tail -2
  status=${PIPESTATUS[0]}
  pack_runs keras-gpu keras-gpu.tgz
  case $status in 124|137) exit 0;; esac  # out of time
done
exit 0
