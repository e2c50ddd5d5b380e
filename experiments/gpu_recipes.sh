#!/usr/bin/env bash
# The beyond-the-article runs that wait for a GPU, in one prepared call of the device tool: the
# WRN-16-4 and pre-activation ResNet-18 recipes (configs/wrn.py, configs/resnet.py), 3 seeds each, in
# bfloat16 compute, seed by seed until RECIPE_SECONDS are spent (a device call may run 10 minutes).
# The VGG19 extractor measurements need a second call: bash experiments/gpu_vgg.sh (about 5 minutes).
# Expects the wheels in .whl/ and the four IDX files in .device_data/ (both carried, ignored by git);
# writes what comes back into $OUT. Usage: bash experiments/gpu_recipes.sh [RECIPE_SECONDS]
# Nothing here has run on a GPU yet: the first session that has one runs it and commits what it returns.
set -uo pipefail
recipe_seconds=${1:-450}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data TF_CPP_MIN_LOG_LEVEL=3
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, jax, flax, optax; print(sys.version); print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__); print(jax.devices())"
} 2>&1 | tee $OUT/versions.txt
# Smoke first: a config or API problem shows in seconds, with its error in the log.
python3 experiments/run_study.py --root=/tmp/smoke --models=wrn --seeds=1 --set=num_epochs=1 \
  --set=augment_epochs=2 --set=data.train_limit=2048 --set=report.plots=False 2>&1 | grep -v -i warn | tail -5 \
  | tee -a $OUT/versions.txt
pack() {
  (cd /tmp/recipes && tar czf $OUT/recipes.tgz --exclude=checkpoints --exclude=best --exclude='events.*' --exclude=.jax_cache */ 2>/dev/null)
}
deadline=$((SECONDS + recipe_seconds))
for seed in 0 1 2; do
  for model in wrn resnet; do
    left=$((deadline - SECONDS))
    [ $left -gt 10 ] || break 2
    # SIGTERM at the deadline: the trainer checkpoints and exits; a later call resumes.
    timeout $left python3 experiments/run_study.py --root=/tmp/recipes --models=$model --seeds=1 \
      --seed_offset=$seed --set=dtype=bfloat16 --set=checkpoint_every_epochs=10 2>&1 | grep -v -i warn \
      | tee -a $OUT/recipes.log
    pack
  done
done
