#!/usr/bin/env bash
# Everything that still waits for a GPU, in priority order, for the device calls of a session that is
# lent one (15 minutes of device time in all, the machine's start-up included; one call runs at most
# 10 minutes). The first call:
#
#   bash experiments/gpu/gpu_prepare.sh                # here, before: the wheels and the data it carries
#   device run: bash experiments/gpu/gpu_pending.sh 1  # carry .whl and .device_data, timeout_s 600
#
# runs, each stage bounded so that the call ends in 570 s (unused time passes to the next stage):
#   1. versions, then the headline: the WRN-40-4 recipe toward 0.96 (configs/wrn40_4.py), as many of its
#      200 epochs as fit (experiments/gpu/gpu_headline.sh, <= 450 s)
#   2. the speedruns: the WRN-16-4 toward 0.94 in 8 epochs and 0.95 in 15, then the wide ConvNet
#      (experiments/gpu/gpu_speedrun.sh, the rest)
# and a second call, given the seconds the session has left (`bash experiments/gpu/gpu_pending.sh 2
# SECONDS`: a call that outlasts the session's device time returns nothing, so there is no default):
#   3. the speedruns again, only if asked (`gpu_pending.sh 2 SECONDS speedruns`: when the first call's log
#      shows them cut; the next call gets a fresh machine, which starts them anew)
#   4. CNN-4's plus recipe over 3 seeds, then its ablation (experiments/gpu/gpu_plus.sh)
#   5. VGG19's feature extraction since its fix, and its transfer protocol (experiments/gpu/gpu_vgg.sh)
#   6. CNN-4's article protocol with precise BatchNorm, 3 seeds (how much the running averages' lag costs)
#   7. the modern models' seeds (experiments/gpu/gpu_recipes.sh)
#
# The device tool returns at most 8 files from $OUT, so the stages write into a folder of their own,
# packed after each stage into $OUT/results-PART.tgz (what a cut call had done by then still comes
# back), beside the call's log, $OUT/log-PART.txt. Unpack the archive into experiments/results/, each
# output beside its kind (benchmark-h200-*: gpu/; headline-*, ablation-*, recipe-*, precise-bn and the
# modern models' runs: recipes/; speedrun-h200-*: speedruns/; vgg19-random-h200-*: study/), and commit what
# it holds with this command and the versions it records. GPU_TRY=1 tries it all on the CPU (gpu_env.sh).
set -uo pipefail
usage='usage: bash experiments/gpu/gpu_pending.sh 1 [SECONDS] | 2 SECONDS [speedruns]'
part=${1:?$usage}
case $part in
  1) seconds=${2:-570};;
  2) seconds=${2:-}  # the seconds the session has left, less the machine's start
     again=${3:-}
     if [ -z "$seconds" ] || { [ -n "$again" ] && [ "$again" != speedruns ]; }; then echo "$usage" >&2; exit 2; fi;;
  *) echo "$usage" >&2; exit 2;;
esac
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
  bounded 120 python3 -m experiments.study.run_study --root=$GPU_SCRATCH/precise-bn --models=cnn4 \
    --seeds=$(seeds 3) --set=precise_batch_norm=True --set=checkpoint_every_epochs=10 --set=report.plots=False \
    "${TRY_SET[@]}" 2>&1 | quiet
  pack_runs precise-bn precise-bn.tgz
}
if [ "$part" = 1 ]; then
  stage headline bash experiments/gpu/gpu_headline.sh 450
  stage speedruns bash experiments/gpu/gpu_speedrun.sh 600
else
  [ -n "$again" ] && stage speedruns bash experiments/gpu/gpu_speedrun.sh 200
  stage cnn4-plus bash experiments/gpu/gpu_plus.sh 130 cnn4
  stage vgg19 bash experiments/gpu/gpu_vgg.sh 120
  stage precise-bn precise_bn
  stage recipes bash experiments/gpu/gpu_recipes.sh 600
fi
echo "=== done ($(date -u +%T))" >> "$log"
