"""Every committed table under experiments/results/ is what its script renders from the committed records.

The tables are generated, never edited by hand: a number typed into one, or a renderer changed so that an
old run's table would now read differently, fails here. Re-render a table with its script's --render or
--render_only flag (speed/benchmark.py, recipes/ablate.py, recipes/speedrun.py), or with its markdown() as
`renderers()` below calls it; a change that needs saying goes into the header's `notes`. Not covered
here: the study report (its pictures are redrawn with it: test_study_report.py renders it from the
committed runs and compares), study/seed_spread.py's README (pictures too), and
speedruns/speedrun-cpu-trials/torch-init-5epochs/runs.jsonl, an early speedrun's records written without
a header line.
"""

import glob
import os

import pytest

from conftest import REPO
from experiments import lab

RESULTS = os.path.join(REPO, 'experiments', 'results')
# The folders whose .jsonl files are tables' records: each group's, and its trials' (the runs' own folders
# hold history.jsonl, which no table is rendered from).
TABLE_FOLDERS = ('baselines', 'gpu', 'recipes', 'recipes/plus-trials', 'speed', 'speedruns',
                 'speedruns/speedrun-cpu-trials')


def renderers():
  """Path prefix under experiments/results/ -> the function of the script that wrote those files, as
  (header, records) -> table."""
  # pylint: disable=g-import-not-at-top
  from experiments.baselines import twin_settings
  from experiments.recipes import ablate, precise_bn_runs, speedrun
  from experiments.speed import (batch_norm_backward, benchmark, conv_libraries, layer_shares, step_profile,
                                 stream_benchmark, versus_pytorch, vgg_conv_impls)

  def speedrun_table(info, records):
    # speedrun.py --render_only: the target and config come from the header (older runs lack them).
    return speedrun.markdown(info, records, info.get('target', 0.92), info.get('config_file', '?'))

  return {
      'recipes/ablation-': ablate.markdown, 'recipes/plus-trials/': ablate.markdown,
      'recipes/kit-': ablate.markdown,  # the research kit's additions to two recipes
      'recipes/precise-bn-': precise_bn_runs.markdown, 'recipes/tta-crops-': precise_bn_runs.markdown,
      'speedruns/speedrun-': speedrun_table,
      'baselines/twin-settings-': twin_settings.markdown,
      'gpu/benchmark-': lambda info, records: benchmark.markdown(records, info),
      'speed/benchmark-': lambda info, records: benchmark.markdown(records, info),
      'speed/layer-shares-': layer_shares.markdown,
      'speed/step-profile-': step_profile.table,
      'speed/stream-': stream_benchmark.markdown,
      'speed/conv-libraries-': conv_libraries.markdown,
      'speed/vgg19-conv-impls-': vgg_conv_impls.markdown,
      'speed/batch-norm-backward-': batch_norm_backward.markdown,
      'speed/versus-pytorch-': versus_pytorch.markdown,
  }


def committed_records():
  """Each table's records (relative paths), the .jsonl files of TABLE_FOLDERS."""
  paths = [path for folder in TABLE_FOLDERS for path in glob.glob(os.path.join(RESULTS, folder, '*.jsonl'))]
  return sorted(os.path.relpath(path, RESULTS) for path in paths)


def test_there_are_tables_to_check():
  assert len(committed_records()) >= 35


@pytest.mark.parametrize('name', committed_records())
def test_committed_table_is_what_its_script_renders(name):
  prefixes = [prefix for prefix in renderers() if name.startswith(prefix)]
  assert prefixes, f'{name}: no script known to render it; add it to renderers()'
  header, records = lab.read_json_lines(os.path.join(RESULTS, name[:-len('.jsonl')]))
  with open(os.path.join(RESULTS, name[:-len('.jsonl')] + '.md')) as f:
    committed = f.read()
  assert renderers()[max(prefixes, key=len)](header, records) == committed


def test_speed_accuracy_table_is_what_its_script_renders():
  # The committed report, rendered again as its own command line says (from the repository's root).
  from experiments.recipes import speed_accuracy  # pylint: disable=g-import-not-at-top
  points = speed_accuracy.points_of(RESULTS)
  with open(os.path.join(RESULTS, speed_accuracy.SPEEDRUNS, 'speed-accuracy.md')) as f:
    assert speed_accuracy.markdown(points, 'experiments/results') == f.read()


def test_records_table_is_what_its_script_renders():
  # The records, as `python -m experiments.recipes.records` writes them from the committed speedruns.
  from experiments.recipes import records, speed_accuracy  # pylint: disable=g-import-not-at-top
  tables = records.speedrun_tables(RESULTS)
  with open(os.path.join(RESULTS, speed_accuracy.SPEEDRUNS, 'records.md')) as f:
    assert records.markdown(tables, 'experiments/results') == f.read()
  with open(os.path.join(REPO, 'README.md')) as f:  # the README's best record per target
    assert records.readme_table(tables) in f.read()
