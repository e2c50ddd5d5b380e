#!/usr/bin/env bash
# The GPU speedruns (configs/speedrun_gpu_*.py), in one prepared call of the device tool: each recipe over
# 5 seeds (experiments/speedrun.py: a compiling run, then the seeds with compiled programs cached), the
# ConvNet toward 0.94 at 12 and 8 epochs, then the WRN-16-4 toward 0.95, until SECONDS are spent.
# Expects the wheels in .whl/ and the four IDX files in .device_data/ (both carried, ignored by git).
# Usage: bash experiments/gpu_speedrun.sh [SECONDS]; the tables and JSON lines come back in $OUT.
# Nothing here has run on a GPU yet.
set -uo pipefail
seconds=${1:-180}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data TF_CPP_MIN_LOG_LEVEL=3
deadline=$((SECONDS + seconds))
run() {  # name config target [overrides...]
  local name=$1 config=$2 target=$3
  shift 3
  local left=$((deadline - SECONDS))
  [ $left -gt 20 ] || return 0
  timeout $left python3 experiments/speedrun.py --config=configs/$config.py "$@" --seeds=5 --target=$target \
    --root=/tmp/speedrun-$name --out=$OUT/speedrun-h200-$name 2>&1 | grep -v -i warn | tail -12 \
    | tee -a $OUT/speedrun.log
}
run convnet speedrun_gpu_convnet 0.94
run convnet-8epochs speedrun_gpu_convnet 0.94 --config.augment_epochs=8
run wrn speedrun_gpu_wrn 0.95
