#!/usr/bin/env bash
# The GPU speedruns (configs/speedrun_gpu_*.py), each over 5 seeds (experiments/speedrun.py: a compiling
# run, then the seeds with compiled programs cached): the ConvNet toward 0.94 in 12 epochs, the WRN-16-4
# toward 0.95, then the ConvNet in 8 epochs, until SECONDS are spent.
# Usage, from the repository's root: bash experiments/gpu_speedrun.sh [SECONDS]; results under $OUT.
set -uo pipefail
source experiments/gpu_env.sh "${1:-150}"
run() {  # name config target [overrides...]
  local name=$1 config=$2 target=$3
  shift 3
  bounded 600 python3 experiments/speedrun.py --config=configs/$config.py "$@" --seeds=5 --target=$target \
    --root=$GPU_SCRATCH/speedrun-$name --out=$OUT/speedrun-h200-$name 2>&1 | quiet | tail -12
}
run convnet speedrun_gpu_convnet 0.94
run wrn speedrun_gpu_wrn 0.95
run convnet-8epochs speedrun_gpu_convnet 0.94 --config.augment_epochs=8
exit 0
