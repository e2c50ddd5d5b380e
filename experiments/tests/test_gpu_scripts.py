"""The GPU session's scripts (experiments/gpu/gpu_pending.sh and the stages it runs), run here with
stand-ins for python3 and nvidia-smi: a device call returns at most 8 files from $OUT, so what comes back
must be the packed stages, holding every stage's outputs, and a call must end by its time limit with
what its stages had done by then. The stand-in refuses a config file or script module that does not
exist. Each test runs the scripts for seconds to a minute: slow tests."""

import os
import re
import subprocess
import tarfile
import time

import pytest

from conftest import REPO

_PYTHON3 = r'''#!/usr/bin/env bash
# Stands in for python3: logs its arguments, checks the files they name (a config, or the script of an
# experiments module), writes what --out, --root and --workdir promise, and, if it stands for a run (a
# module, not pip or -c), sleeps $STUB_SLEEP seconds.
echo "python3 $*" >> "$STUB_LOG"
for arg in "$@"; do
  case $arg in
    --config=*|experiments.*)  # experiments.recipes.ablate: experiments/recipes/ablate.py
      case $arg in --config=*) file=${arg#--config=};; *) file=${arg//.//}.py;; esac
      [ -f "$file" ] || { echo "missing: $file" >> "$STUB_LOG"; exit 2; };;
    --out=*) out=${arg#--out=}; echo '{}' > "$out.jsonl"; echo '| table |' > "$out.md";;
    --root=*|--workdir=*) dir=${arg#*=}; mkdir -p "$dir/run"; echo '{}' > "$dir/run/results.json";;
  esac
done
case $1 in -m) [ "$2" = pip ] || sleep "${STUB_SLEEP:-0}";; esac
'''


@pytest.fixture
def stand_ins(tmp_path):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'python3').write_text(_PYTHON3)
  (bin_dir / 'nvidia-smi').write_text('#!/usr/bin/env bash\necho "name, memory.total, driver_version"\n')
  for stub in bin_dir.iterdir():
    stub.chmod(0o755)
  return bin_dir


def _run_part(tmp_path, stand_ins, part, seconds, sleep=0):
  out = tmp_path / f'out{part}'
  out.mkdir()
  env = dict(os.environ, PATH=f'{stand_ins}:{os.environ["PATH"]}', OUT=str(out),
             GPU_SCRATCH=str(tmp_path / 'scratch'), STUB_LOG=str(tmp_path / 'python3.log'),
             STUB_SLEEP=str(sleep))
  env.pop('GPU_DEADLINE', None)
  start = time.time()
  subprocess.run(['bash', 'experiments/gpu/gpu_pending.sh', str(part), str(seconds)], cwd=REPO, env=env,
                 check=True, capture_output=True, timeout=seconds + 60)
  return out, time.time() - start, (tmp_path / 'python3.log').read_text()


def _returned_files(out):
  files = [os.path.relpath(os.path.join(d, f), out) for d, _, names in os.walk(out) for f in names]
  assert len(files) <= 8, files
  assert all(re.fullmatch(r'[A-Za-z0-9._-]+', f) for f in files), files
  return files


def _packed(out, part):
  with tarfile.open(out / f'results-{part}.tgz') as archive:
    return {os.path.relpath(name, f'gpu-pending-{part}') for name in archive.getnames()}


@pytest.mark.slow
def test_the_first_call_returns_every_stage_packed(tmp_path, stand_ins):
  out, _, calls = _run_part(tmp_path, stand_ins, 1, 300)
  assert sorted(_returned_files(out)) == ['log-1.txt', 'results-1.tgz']
  assert 'missing' not in calls
  packed = _packed(out, 1)
  for name in ['versions.txt', 'benchmark-h200-vgg19.md', 'benchmark-h200-vgg19-batch1000.md',
               'vgg19-random-h200.tgz', 'recipe-cnn4-plus-h200.md', 'ablation-cnn4-plus-h200.md',
               'speedrun-h200-wrn.md', 'speedrun-h200-wrn-8epochs.md', 'speedrun-h200-convnet.md',
               'recipes.tgz']:
    assert name in packed, (name, packed)
  assert re.search(r'configs/cnn4_plus.py --seeds=3 --only=full ', calls)
  # The speedruns: the WRN-16-4 toward 0.95 and 0.94 before the ConvNet, which the CPU found short of 0.94.
  speedruns = re.findall(r'--config=configs/(speedrun_gpu_\w+)\.py (.*?)--seeds=5 --target=([\d.]+)', calls)
  assert speedruns == [('speedrun_gpu_wrn', '', '0.95'),
                       ('speedrun_gpu_wrn', '--config.augment_epochs=8 ', '0.94'),
                       ('speedrun_gpu_convnet', '', '0.94')]
  # The modern models: both models' seed 0 before any seed 1.
  recipes = re.findall(r'--models=(\w+) --seeds=1 --seed_offset=(\d)', calls)
  assert recipes == [('wrn', '0'), ('resnet', '0'), ('wrn', '1'), ('resnet', '1'), ('wrn', '2'), ('resnet', '2')]


@pytest.mark.slow
def test_the_second_call_returns_every_stage_packed(tmp_path, stand_ins):
  out, _, calls = _run_part(tmp_path, stand_ins, 2, 300)
  assert sorted(_returned_files(out)) == ['log-2.txt', 'results-2.tgz']
  assert 'missing' not in calls
  assert {'precise-bn.tgz', 'recipes.tgz', 'keras-gpu.tgz'} <= _packed(out, 2)
  assert '--set=precise_batch_norm=True' in calls


@pytest.mark.slow
def test_a_call_ends_by_its_time_limit_with_what_was_done(tmp_path, stand_ins):
  # Every run sleeps far past the call's 50 s: the first stage's first run is cut at the deadline (25 s
  # before the end, kept for packing), every later one is skipped, and the call still packs and returns.
  out, seconds, calls = _run_part(tmp_path, stand_ins, 1, 50, sleep=600)
  assert seconds < 50
  assert sorted(_returned_files(out)) == ['log-1.txt', 'results-1.tgz']
  assert 'versions.txt' in _packed(out, 1)
  log = (out / 'log-1.txt').read_text()
  assert 'cut at the time limit (2' in log
  assert 'skipped, out of time: python3 -m experiments.recipes.ablate' in log
  assert calls.count('experiments.speed.benchmark') == 1
