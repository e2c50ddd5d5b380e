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
export GPU_SCRATCH=${GPU_SCRATCH:-/tmp}  # the runs' workdirs and the installed wheels
if [ ! -f $GPU_SCRATCH/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $GPU_SCRATCH/site .whl/*.whl || exit 1
  mkdir -p $GPU_SCRATCH/site && touch $GPU_SCRATCH/site/.installed
fi
export PYTHONPATH=$GPU_SCRATCH/site:$PWD PYTHONUNBUFFERED=1 FASHION_MNIST_DIR=$PWD/.device_data
export TF_CPP_MIN_LOG_LEVEL=3
_share_end=$(( $(date +%s) + ${1:?usage: source experiments/gpu/gpu_env.sh SECONDS} ))
STAGE_END=$(( ${GPU_DEADLINE:-$_share_end} < _share_end ? ${GPU_DEADLINE:-$_share_end} : _share_end ))

# Runs "$@" for at most $1 seconds and never past STAGE_END (SIGTERM, then SIGKILL 10 s later: the
# trainer checkpoints on SIGTERM); skips it, saying so, when fewer than 20 seconds are left.
bounded() {
  local limit=$1 left=$(( STAGE_END - $(date +%s) ))
  shift
  [ "$left" -lt "$limit" ] && limit=$left
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
