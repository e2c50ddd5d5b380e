#!/usr/bin/env bash
# Everything that still waits for a GPU, in priority order, for the device calls of a session that is
# lent one (15 minutes of device time in all, the machine's start-up included; one call runs at most
# 10 minutes). The first call:
#
#   bash experiments/gpu/gpu_prepare.sh                # here, before: the wheels and the data it carries
#   device run: bash experiments/gpu/gpu_pending.sh 1  # carry .whl and .device_data, timeout_s 600
#
# runs, each stage bounded so that the call ends in 570 s (unused time passes to the next stage):
#   1. versions, then the VGG19 extractor fix (experiments/gpu/gpu_vgg.sh, <= 170 s)
#   2. CNN-4's plus recipe over 3 seeds, then its ablation (experiments/gpu/gpu_plus.sh, <= 130 s)
#   3. the speedruns: the WRN-16-4 toward 0.95 and 0.94, then the wide ConvNet
#      (experiments/gpu/gpu_speedrun.sh, <= 150 s)
#   4. the modern models toward 0.96, WRN-16-4 seed 0 first (experiments/gpu/gpu_recipes.sh, the rest)
# and a second call, with what the session has left (`bash experiments/gpu/gpu_pending.sh 2 SECONDS`):
#   5. CNN-4's article protocol with precise BatchNorm, 3 seeds (how much the running averages' lag costs)
#   6. more of the modern models' seeds (resuming those the first call cut, if the machine is still warm)
#   7. CNN-4's Keras baseline on Keras' JAX backend (experiments/gpu/gpu_keras.sh)
#
# The device tool returns at most 8 files from $OUT, so the stages write into a folder of their own,
# packed after each stage into $OUT/results-PART.tgz (what a cut call had done by then still comes
# back), beside the call's log, $OUT/log-PART.txt. Unpack the archive into experiments/results/, each
# output beside its kind (benchmark-h200-*: gpu/; ablation-*, recipe-*, precise-bn and the modern models'
# runs: recipes/; speedrun-h200-*: speedruns/; vgg19-random-h200 and keras-gpu: study/), and commit what
# it holds with this command and the versions it records.
set -uo pipefail
part=${1:?usage: bash experiments/gpu/gpu_pending.sh 1|2 [SECONDS]}
seconds=${2:-570}
returned=$OUT
export GPU_SCRATCH=${GPU_SCRATCH:-/tmp}  # the runs' workdirs and the installed wheels
# 25 s are kept for the last pack.
export OUT=$GPU_SCRATCH/gpu-pending-$part GPU_DEADLINE=$(( $(date +%s) + seconds - 25 ))
mkdir -p "$OUT"
log=$returned/log-$part.txt
pack() {
  tar czf $GPU_SCRATCH/results-$part.tgz -C $GPU_SCRATCH --exclude=checkpoints --exclude=best --exclude='events.*' \
    --exclude=.jax_cache gpu-pending-$part \
    && cp $GPU_SCRATCH/results-$part.tgz "$returned/.results-$part.tgz" \
    && mv "$returned/.results-$part.tgz" "$returned/results-$part.tgz"
}
source experiments/gpu/gpu_env.sh "$seconds"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, jax, flax, optax; print(sys.version); print(jax.devices())
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__)"
} 2>&1 | tee "$OUT/versions.txt" | tee -a "$log"
stage() {  # name command...: runs one stage into the log (and the call's output), then packs
  echo "=== $1 ($(date -u +%T), $(( GPU_DEADLINE - $(date +%s) )) s left)" | tee -a "$log"
  shift
  "$@" 2>&1 | tee -a "$log"
  pack
}
precise_bn() {  # CNN-4's article protocol, each seed also tested with recomputed BatchNorm statistics
  bounded 120 python3 -m experiments.study.run_study --root=$GPU_SCRATCH/precise-bn --models=cnn4 --seeds=3 \
    --set=precise_batch_norm=True --set=checkpoint_every_epochs=10 --set=report.plots=False 2>&1 | quiet
  pack_runs precise-bn precise-bn.tgz
}
if [ "$part" = 1 ]; then
  stage vgg19 bash experiments/gpu/gpu_vgg.sh 170
  stage cnn4-plus bash experiments/gpu/gpu_plus.sh 130 cnn4
  stage speedruns bash experiments/gpu/gpu_speedrun.sh 150
  stage recipes bash experiments/gpu/gpu_recipes.sh 600
else
  stage precise-bn precise_bn
  stage recipes bash experiments/gpu/gpu_recipes.sh 240
  stage keras bash experiments/gpu/gpu_keras.sh 600
fi
echo "=== done ($(date -u +%T))" >> "$log"
