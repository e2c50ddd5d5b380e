# Sourced by the experiments/gpu/gpu_*.sh scripts, from the repository's root on the GPU machine: installs
# the carried wheels (once a machine) and sets what every run there needs, then gives each script a share
# of the device call's time. Expects .whl/ and .device_data/, made here by experiments/gpu/gpu_prepare.sh.
#
#   source experiments/gpu/gpu_env.sh SECONDS  # the script ends within SECONDS, or at $GPU_DEADLINE if sooner
#   bounded 60 python3 ...                     # at most 60 s, and never past the script's end
#
# The device tool kills the whole call at its time limit and returns only what is then under $OUT, so
# every stage is bounded here, one `timeout` deep (a `timeout` inside another escapes its kill), and
# experiments/gpu/gpu_pending.sh packs what came back after each stage.
#
# GPU_TRY=1 tries every stage on the CPU, for real but on tiny sizes (experiments/tests/test_gpu_scripts.py),
# so that the one real attempt does not fail on a typo: the packages are this machine's (no wheels), and
# the trainer's commands get TRY_CONFIG (as --config.KEY=VALUE) or TRY_SET (as --set=KEY=VALUE), the
# Wide-ResNets TRY_WRN_CONFIG or TRY_WRN_SET too, and `seeds K` gives one seed.
export GPU_SCRATCH=${GPU_SCRATCH:-/tmp}  # the runs' workdirs and the installed wheels
try=() try_wrn=()
if [ -n "${GPU_TRY:-}" ]; then
  # Three epochs in all: the modern recipes warm up for two.
  try=(data.train_limit=64 data.eval_limit=64 batch_size=32 eval_batch_size=64 num_epochs=1 augment_epochs=2
       parallel=single)
  try_wrn=(model_kwargs.depth=10 model_kwargs.widen_factor=1)
fi
TRY_CONFIG=("${try[@]/#/--config.}") TRY_SET=("${try[@]/#/--set=}")
TRY_WRN_CONFIG=("${try_wrn[@]/#/--config.}") TRY_WRN_SET=("${try_wrn[@]/#/--set=}")
seeds() { if [ -n "${GPU_TRY:-}" ]; then echo 1; else echo "$1"; fi; }
if [ -z "${GPU_TRY:-}" ] && [ ! -f $GPU_SCRATCH/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $GPU_SCRATCH/site .whl/*.whl || exit 1
  mkdir -p $GPU_SCRATCH/site && touch $GPU_SCRATCH/site/.installed
fi
export PYTHONPATH=$GPU_SCRATCH/site:$PWD PYTHONUNBUFFERED=1
[ -n "${GPU_TRY:-}" ] || export FASHION_MNIST_DIR=$PWD/.device_data
export TF_CPP_MIN_LOG_LEVEL=3
_share_end=$(( $(date +%s) + ${1:?usage: source experiments/gpu/gpu_env.sh SECONDS} ))
[ -z "${GPU_TRY:-}" ] || _share_end=${GPU_DEADLINE:-$_share_end}  # and a stage's share neither
STAGE_END=$(( ${GPU_DEADLINE:-$_share_end} < _share_end ? ${GPU_DEADLINE:-$_share_end} : _share_end ))

# Runs "$@" for at most $1 seconds and never past STAGE_END (SIGTERM, then SIGKILL 10 s later: the
# trainer checkpoints on SIGTERM); skips it, saying so, when fewer than 20 seconds are left.
bounded() {
  local limit=$1 left=$(( STAGE_END - $(date +%s) ))
  shift
  # A try on the CPU runs slower than the GPU these limits are sized for: only the call's end bounds it.
  [ "$left" -lt "$limit" ] || [ -n "${GPU_TRY:-}" ] && limit=$left
  if [ "$limit" -lt 20 ]; then
    echo "skipped, out of time: $*"
    return 124
  fi
  timeout -k 10 "$limit" "$@"
  local status=$?
  case $status in 124|137) echo "cut at the time limit ($limit s): $*";; esac
  return $status
}

# Packs the workdirs under $GPU_SCRATCH/$1 into $OUT/$2 (if any ran), without what a later call cannot
# use and the tool could not return: checkpoints, best weights, event files, compiled programs.
pack_runs() {
  [ -d "$GPU_SCRATCH/$1" ] || return 0
  (cd "$GPU_SCRATCH" && tar czf "$OUT/$2" --exclude=checkpoints --exclude=best --exclude='events.*' \
    --exclude=.jax_cache "$1")
}

# Keeps the lines a log needs: JAX and XLA print warnings by the hundred on a GPU.
quiet() { grep -v -i warn; }
