"""experiments/recipes/precise_bn_runs.py: its table and its --runs entries."""

import re

import pytest

from experiments.recipes import precise_bn_runs


def test_the_precise_bn_table_has_a_row_per_run_and_weights_and_says_whether_the_record_matches():
  header = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC', 'jax': '0.10.2',
            'command': 'python -m experiments.recipes.precise_bn_runs ...', 'notes': ['a note']}
  results = {'test_accuracy': 0.91, 'ema_test_accuracy': 0.25, 'precise_bn_test_accuracy': 0.92,
             'precise_bn_ema_test_accuracy': 0.9117}
  records = [
      {'label': 'phase end', 'evaluation': {'model': 'cnn4', 'step': 1870, 'phase': 'phase1', 'epoch': 10,
                                            'results': results,
                                            'recorded': {'test_accuracy': 0.91, 'ema_test_accuracy': 0.26}}},
      {'label': 'mid-phase', 'evaluation': {'model': 'cnn1', 'step': 12, 'phase': 'phase1', 'epoch': 1,
                                            'results': {'test_accuracy': 0.5}, 'recorded': None}}]
  table = precise_bn_runs.markdown(header, records)
  rows = [line for line in table.splitlines() if line.startswith('| ') and '---' not in line][1:]
  assert rows == [
      '| phase end | cnn4 | step 1870 (phase1, 10 epochs) | weights | 0.9100 | - | 0.9200 | - | yes |',
      '| phase end | cnn4 | step 1870 (phase1, 10 epochs) | EMA | 0.2500 | - | 0.9117 | - | no |',
      '| mid-phase | cnn1 | step 12 (phase1, 1 epochs) | weights | 0.5000 | - | - | - | - |']
  assert 'Note: a note' in table and '2 CPU cores (AMD EPYC)' in table
  assert 'Mean +/- std' not in table  # no two runs share a step


def test_the_precise_bn_table_averages_the_runs_tested_at_the_same_step():
  header = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC', 'jax': '0.10.2',
            'command': 'python -m experiments.recipes.precise_bn_runs ...'}

  def run_end(label, plain, precise, step=11220):
    results = {'test_accuracy': plain, **({'precise_bn_test_accuracy': precise} if precise else {})}
    return {'label': label, 'evaluation': {'model': 'cnn4', 'step': step, 'phase': 'phase2', 'epoch': 60,
                                           'recorded': None, 'results': results}}

  records = [run_end('seed 0', 0.93, 0.94), run_end('seed 1', 0.92, 0.95), run_end('other', 0.5, 0.6, step=9)]
  table = precise_bn_runs.markdown(header, records)
  means = table.split('Mean +/- std over the runs tested at the same step')[1].splitlines()
  rows = [line for line in means if line.startswith('| cnn4')]
  assert rows == ['| cnn4 | step 11220 (phase2, 60 epochs) | weights | 2 | 0.9250 +/- 0.0071 | - '
                  '| 0.9450 +/- 0.0071 | - |']
  # A run without precise BN: the cell names the runs its mean is over.
  table = precise_bn_runs.markdown(header, records + [run_end('seed 2', 0.94, None)])
  assert ('| cnn4 | step 11220 (phase2, 60 epochs) | weights | 3 | 0.9300 +/- 0.0100 | - '
          '| 0.9450 +/- 0.0071 (2 of 3 runs) | - |') in table.splitlines()


def test_each_run_is_a_label_and_a_workdir():
  runs = precise_bn_runs.parse_runs(['seed 0, end=/tmp/a=b', 'x=y'])
  assert runs == [('seed 0, end', '/tmp/a=b'), ('x', 'y')]
  for bad in ('/tmp/run', '=/tmp/run', 'label='):
    with pytest.raises(ValueError, match=f'--run={re.escape(bad)}: expected label=workdir'):
      precise_bn_runs.parse_runs([bad])
