#!/usr/bin/env bash
# The _plus recipes (configs/plus.py) and their ablations on a GPU, in one prepared call of the device
# tool: for CNN-3, CNN-1 and CNN-4 in turn, the recipe and the recipe without each choice, 3 seeds, seed
# by seed until each model's share of SECONDS is spent (experiments/ablate.py; a rerun resumes).
# Expects the wheels in .whl/ and the four IDX files in .device_data/ (both carried, ignored by git).
# Usage: bash experiments/gpu_plus.sh [SECONDS]; the tables and JSON lines come back in $OUT.
# Nothing here has run on a GPU yet.
set -uo pipefail
seconds=${1:-480}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data TF_CPP_MIN_LOG_LEVEL=3
share=$((seconds / 3))
for model in cnn3 cnn1 cnn4; do
  timeout $share python3 experiments/ablate.py --config=configs/${model}_plus.py --seeds=3 \
    --root=/tmp/ablate-$model --out=$OUT/ablation-${model}-plus --set=checkpoint_every_epochs=10 \
    --set=report.plots=False 2>&1 | grep -v -i warn | tail -3 | tee -a $OUT/plus.log
done
