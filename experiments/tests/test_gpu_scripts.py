"""The GPU session's scripts (experiments/gpu/gpu_pending.sh and the stages it runs), run here with
stand-ins for python3 and nvidia-smi: a device call returns at most 8 files from $OUT, so what comes back
must be the packed stages, holding every stage's outputs, and a call must end by its time limit with
what its stages had done by then. The stand-in refuses a config file or script module that does not
exist. Each test runs the scripts for seconds to a minute: slow tests. The last tries every stage for
real, on the CPU, on tiny sizes (GPU_TRY=1, gpu_env.sh): a few minutes."""

import json
import os
import re
import subprocess
import tarfile
import time

import pytest

from conftest import REPO
from experiments.gpu import fit_epochs

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
  for name in ['versions.txt', 'headline-fit.txt', 'headline-wrn40-4-h200.tgz', 'speedrun-h200-wrn-8epochs.md',
               'speedrun-h200-wrn.md', 'speedrun-h200-convnet.md']:
    assert name in packed, (name, packed)
  # The headline first: two epochs timed, the epochs fitted to the time left, then the run.
  headline = re.findall(r'configs/wrn40_4\.py .*?--config\.augment_epochs=(\S*) --workdir=\S+/(headline\S*)', calls)
  assert headline == [('2', 'headline-timing'), ('', 'headline/wrn40-4-seed0')]  # the stand-in fits no epochs
  assert calls.index('experiments.gpu.fit_epochs') < calls.index('headline/wrn40-4-seed0')
  # The speedruns: the WRN-16-4 toward 0.94 (the shortest) and 0.95 before the ConvNet, which the CPU found
  # short of 0.94.
  speedruns = re.findall(r'--config=configs/(speedrun_gpu_\w+)\.py (.*?)--seeds=5 --target=([\d.]+)', calls)
  assert speedruns == [('speedrun_gpu_wrn', '--config.augment_epochs=8 ', '0.94'),
                       ('speedrun_gpu_wrn', '', '0.95'),
                       ('speedrun_gpu_convnet', '', '0.94')]
  assert calls.index('wrn40_4') < calls.index('speedrun_gpu_wrn')


@pytest.mark.slow
def test_the_second_call_returns_every_stage_packed(tmp_path, stand_ins):
  out, _, calls = _run_part(tmp_path, stand_ins, 2, 300)
  assert sorted(_returned_files(out)) == ['log-2.txt', 'results-2.tgz']
  assert 'missing' not in calls
  packed = _packed(out, 2)
  for name in ['recipe-cnn4-plus-h200.md', 'ablation-cnn4-plus-h200.md', 'benchmark-h200-vgg19-pipelined.md',
               'benchmark-h200-vgg19-pipelined-batch1000.md', 'vgg19-random-h200-pipelined.tgz', 'precise-bn.tgz',
               'recipes.tgz']:
    assert name in packed, (name, packed)
  assert re.search(r'configs/cnn4_plus.py --seeds=3 --only=full ', calls)
  assert '--set=precise_batch_norm=True' in calls
  assert 'speedrun' not in calls and 'keras' not in calls  # the speedruns only when asked; no Keras stage
  # The modern models: both models' seed 0 before any seed 1.
  recipes = re.findall(r'--models=(\w+) --seeds=1 --seed_offset=(\d)', calls)
  assert recipes == [('wrn', '0'), ('resnet', '0'), ('wrn', '1'), ('resnet', '1'), ('wrn', '2'), ('resnet', '2')]


@pytest.mark.slow
def test_the_second_call_runs_the_speedruns_first_when_asked_and_needs_its_seconds(tmp_path, stand_ins):
  env = dict(os.environ, PATH=f'{stand_ins}:{os.environ["PATH"]}', OUT=str(tmp_path),
             GPU_SCRATCH=str(tmp_path / 'scratch'), STUB_LOG=str(tmp_path / 'python3.log'))
  for arguments in (['2'], ['2', '300', 'speedrun'], ['3', '300']):
    done = subprocess.run(['bash', 'experiments/gpu/gpu_pending.sh', *arguments], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and 'usage: bash experiments/gpu/gpu_pending.sh' in done.stderr, arguments
  assert not (tmp_path / 'python3.log').exists()  # refused before anything ran
  out = tmp_path / 'out'
  out.mkdir()
  subprocess.run(['bash', 'experiments/gpu/gpu_pending.sh', '2', '300', 'speedruns'], cwd=REPO,
                 env=dict(env, OUT=str(out)), check=True, capture_output=True, timeout=360)
  calls = (tmp_path / 'python3.log').read_text()
  assert calls.index('speedrun_gpu_wrn') < calls.index('cnn4_plus')


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
  assert 'skipped, out of time: python3 -m experiments.recipes.speedrun' in log
  assert calls.count('fashion_jax.main') == 1  # the headline's timing run; its fit and run were skipped


def test_the_headline_trains_the_most_epochs_that_fit_after_compiling_again():
  # Two timed epochs: 40 s (compiling) and 2 s. The run compiles again: 300 - 30 reserved - 38 = 232 s.
  assert fit_epochs.fit_epochs([40.0, 2.0], seconds=300, most=200, reserve=30)[0] == 116
  assert fit_epochs.fit_epochs([40.0, 2.0, 2.0], seconds=10_000, most=200, reserve=30)[0] == 200  # the recipe's
  with pytest.raises(ValueError, match='no epoch fits 69 s'):
    fit_epochs.fit_epochs([40.0, 2.0], seconds=69, most=200, reserve=30)
  with pytest.raises(ValueError, match='two or more'):
    fit_epochs.fit_epochs([40.0], seconds=300, most=200, reserve=30)


def _tgz_members(path):
  with tarfile.open(path) as archive:
    return {name: archive.extractfile(name).read() for name in archive.getnames() if archive.getmember(name).isfile()}


@pytest.mark.slow
@pytest.mark.parametrize('part', [1, 2])
def test_every_stage_runs_for_real_on_tiny_sizes(tmp_path, part):
  """GPU_TRY=1: the real commands, on the CPU, with the data and models cut down (gpu_env.sh): a typo in
  a script, a config or a flag fails here, not in the one call a GPU session gets."""
  out = tmp_path / 'out'
  out.mkdir()
  env = dict(os.environ, OUT=str(out), GPU_SCRATCH=str(tmp_path / 'scratch'), GPU_TRY='1')
  env.pop('GPU_DEADLINE', None)
  arguments = ['1', '1500'] if part == 1 else ['2', '1500', 'speedruns']
  subprocess.run(['bash', 'experiments/gpu/gpu_pending.sh', *arguments], cwd=REPO, env=env, check=True,
                 capture_output=True, timeout=1600)
  log = (out / f'log-{part}.txt').read_text()
  assert 'cut at the time limit' not in log and 'skipped, out of time' not in log, log
  packed = _tgz_members(out / f'results-{part}.tgz')
  inner = {}  # the stages' own archives, unpacked
  for name, data in packed.items():
    if name.endswith('.tgz'):
      (tmp_path / 'inner.tgz').write_bytes(data)
      inner.update(_tgz_members(tmp_path / 'inner.tgz'))
  def runs_of(jsonl):  # a table's records (after its header line): each stage's runs all finished
    return [json.loads(line) for line in packed[f'gpu-pending-{part}/{jsonl}'].decode().splitlines()[1:]]
  if part == 1:
    assert b'epochs fit' in packed['gpu-pending-1/headline-fit.txt']
    config = json.loads(inner['headline/wrn40-4-seed0/config.json'])
    assert (config['model'], config['model_kwargs']['depth'], config['augment_epochs']) == ('wrn', 10, 2)
    assert json.loads(inner['headline/wrn40-4-seed0/results.json'])['phases'][-1]['epochs'] == 2
  for name in (['speedrun-h200-wrn-8epochs', 'speedrun-h200-wrn', 'speedrun-h200-convnet'] if part == 1 else
               ['speedrun-h200-wrn', 'recipe-cnn4-plus-h200', 'ablation-cnn4-plus-h200']):
    assert runs_of(f'{name}.jsonl'), name
  if part == 2:
    ablation = {r['variant']: r for r in runs_of('ablation-cnn4-plus-h200.jsonl')}
    assert {'no EMA', 'no flip TTA'} <= set(ablation) and ablation['no EMA'].get('read_from') == 'full'
    assert 'benchmark-h200-vgg19-pipelined.md' in ' '.join(packed)
    for run in ['vgg19-random/results.json', 'precise-bn/cnn4-seed0/results.json', 'recipes/wrn-seed0/results.json',
                'recipes/resnet-seed0/results.json']:
      assert run in inner, (run, sorted(inner))
