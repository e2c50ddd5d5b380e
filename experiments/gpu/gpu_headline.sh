#!/usr/bin/env bash
# The headline of a GPU session: configs/wrn40_4.py, the recipe the literature puts at >= 0.96, as one run
# sized to the time this stage has. Two epochs of it are timed first; experiments/gpu/fit_epochs.py turns
# them into the most of the recipe's 200 epochs that fit the time then left, and the run trains that many
# (seed 0; its log says how many and why). A GPU machine stays warm only seconds between calls and returns
# no checkpoints, so the run is planned to finish within this call, not to be resumed.
# Usage, from the repository's root: bash experiments/gpu/gpu_headline.sh [SECONDS]; results under $OUT.
set -uo pipefail
source experiments/gpu/gpu_env.sh "${1:-450}"
recipe=(--config=configs/wrn40_4.py --config.checkpoint_every_epochs=0 --config.report.plots=False
        "${TRY_CONFIG[@]}" "${TRY_WRN_CONFIG[@]}")
most=200
[ -n "${GPU_TRY:-}" ] && most=2  # a try on the CPU fits hundreds of its tiny epochs: two tell that it works
bounded 150 python3 -m fashion_jax.main "${recipe[@]}" --config.augment_epochs=2 \
  --workdir=$GPU_SCRATCH/headline-timing 2>&1 | quiet | tail -3
# A timing run that was cut leaves too little history, and then no time for the run: the stage ends.
epochs=$(bounded 30 python3 -m experiments.gpu.fit_epochs --history=$GPU_SCRATCH/headline-timing/history.jsonl \
  --seconds=$(( STAGE_END - $(date +%s) )) --most=$most 2>> $OUT/headline-fit.txt) || exit 0
cat $OUT/headline-fit.txt
bounded 600 python3 -m fashion_jax.main "${recipe[@]}" --config.augment_epochs=$epochs \
  --workdir=$GPU_SCRATCH/headline/wrn40-4-seed0 2>&1 | quiet | tail -6
pack_runs headline headline-wrn40-4-h200.tgz
exit 0
