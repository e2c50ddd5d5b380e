#!/usr/bin/env bash
# One prepared session on a lent GPU machine (the device tool): versions, a smoke run, the study, the
# benchmark. Expects the wheels in .whl/ and the four IDX files in .device_data/ (both carried, ignored by
# git); writes what comes back into $OUT. Usage: bash experiments/gpu_session.sh STUDY_SECONDS BENCH_SECONDS
set -uo pipefail
study_seconds=${1:-320}
bench_seconds=${2:-180}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data
export TF_CPP_MIN_LOG_LEVEL=3
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, jax, flax, optax, orbax.checkpoint as o, numpy; print(sys.version); print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__ if hasattr(o, '__version__') else '?', 'numpy', numpy.__version__); print(jax.devices())"
} 2>&1 | tee $OUT/versions.txt
# Smoke: fail fast, with the error in the log, if an API differs on this image.
python3 experiments/run_study.py --root=/tmp/smoke --models=cnn4 --seeds=1 --set=num_epochs=1 \
  --set=augment_epochs=1 --set=data.train_limit=2048 2>&1 | grep -v -i warn | tail -5 | tee -a $OUT/versions.txt
pack() {
  (cd /tmp/study && tar czf $OUT/study.tgz --exclude=checkpoints --exclude=best --exclude='events.*' --exclude=.jax_cache */ 2>/dev/null)
}
# The study: seed by seed, packed after every run so that a time-out still returns the finished runs.
# Checkpoints every 10 epochs (and at the phase ends): an epoch takes well under a second here.
deadline=$((SECONDS + study_seconds))
for seed in 0 1 2; do
  for model in cnn1 cnn3 cnn4; do
    left=$((deadline - SECONDS))
    [ $left -gt 10 ] || break 2
    # SIGTERM at the deadline: the trainer checkpoints and exits; rerunning resumes.
    timeout $left python3 experiments/run_study.py --root=/tmp/study --models=$model --seeds=1 \
      --seed_offset=$seed --set=checkpoint_every_epochs=10 2>&1 | grep -v -i warn | tee -a $OUT/study.log
    pack
  done
done
timeout $bench_seconds python3 experiments/benchmark.py --models=cnn3,cnn1,cnn4 --dtypes=float32,bfloat16 \
  --protocol=cnn3 --out=$OUT/benchmark-h200 2>&1 | grep -v -i warn | tail -20
