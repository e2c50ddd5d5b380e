"""Every committed table under experiments/results/ is what its script renders from the committed records.

The tables are generated, never edited by hand: a number typed into one, or a renderer changed so that an
old run's table would now read differently, fails here. Re-render a table with its script's --render or
--render_only flag (benchmark.py, ablate.py, speedrun.py), or, for the step-timing scripts, with their
markdown() as `renderers()` below calls it; a change that needs saying goes into the header's `notes`.
Not covered here: the study report (its pictures are redrawn with it: tests/test_study_report.py renders
it from the committed runs and compares), seed_spread.py's README (pictures too), and
speedrun-cpu-trials/torch-init-5epochs/runs.jsonl, an early speedrun's records written without a header
line.
"""

import glob
import os

import pytest

from experiments import records as records_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, 'experiments', 'results')


def renderers():
  """File-name prefix -> the function of the script that wrote those files, as (header, records) -> table."""
  # pylint: disable=g-import-not-at-top
  from experiments import (ablate, batch_norm_fusion, benchmark, chunk_loop_forms, input_gradient_routes,
                           layer_shares, malloc_settings, precise_bn_runs, speedrun, step_profile,
                           twin_settings, unpool_forms, vgg_conv_impls, xla_cpu_flags)

  def speedrun_table(info, records):
    # speedrun.py --render_only: the target and config come from the header (older runs lack them).
    return speedrun.markdown(info, records, info.get('target', 0.92), info.get('config_file', '?'))

  return {
      'ablation-': ablate.markdown, 'plus-trials/': ablate.markdown, 'speedrun-cpu-trials/': speedrun_table,
      'batch-norm-fusion-': batch_norm_fusion.markdown,
      'chunk-loop-forms-': chunk_loop_forms.markdown,
      'benchmark-': lambda info, records: benchmark.markdown(records, info),
      'input-gradient-': input_gradient_routes.markdown,
      'layer-shares-': layer_shares.markdown,
      'malloc-settings-': malloc_settings.markdown,
      'precise-bn-': precise_bn_runs.markdown,
      'xla-cpu-flags-': xla_cpu_flags.markdown,
      'speedrun-': speedrun_table,
      'step-profile-': step_profile.table,
      'twin-settings-': twin_settings.markdown,
      'unpool-forms-': unpool_forms.markdown,
      'vgg19-conv-impls-': vgg_conv_impls.markdown,
  }


def committed_records():
  """Each table's records: the .jsonl files at the top of experiments/results/ and of its trials folders
  (the runs' own folders hold history.jsonl, which no table is rendered from)."""
  paths = [path for folder in ('', 'plus-trials', 'speedrun-cpu-trials')
           for path in glob.glob(os.path.join(RESULTS, folder, '*.jsonl'))]
  return sorted(os.path.relpath(path, RESULTS) for path in paths)


def test_there_are_tables_to_check():
  assert len(committed_records()) >= 35


@pytest.mark.parametrize('name', committed_records())
def test_committed_table_is_what_its_script_renders(name):
  prefixes = [prefix for prefix in renderers() if name.startswith(prefix)]
  assert prefixes, f'{name}: no script known to render it; add it to renderers()'
  renderer = renderers()[max(prefixes, key=len)]  # a trials folder's before the file names' ('speedrun-')
  header, records = records_lib.read_json_lines(os.path.join(RESULTS, name[:-len('.jsonl')]))
  with open(os.path.join(RESULTS, name[:-len('.jsonl')] + '.md')) as f:
    committed = f.read()
  assert renderer(header, records) == committed


def test_speed_accuracy_table_is_what_its_script_renders():
  from experiments import speed_accuracy  # pylint: disable=g-import-not-at-top
  points = {**speed_accuracy.protocol_points(RESULTS), **speed_accuracy.speedrun_points(RESULTS),
            **speed_accuracy.plus_points(RESULTS)}
  with open(os.path.join(RESULTS, 'speed-accuracy.md')) as f:
    assert speed_accuracy.table(points) in f.read()
