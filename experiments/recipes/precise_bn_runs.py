"""Precise BatchNorm (and, with --tta_crops, multi-crop TTA) measured on checkpoints of runs trained without
them: one table.

  python -m experiments.recipes.precise_bn_runs --out=experiments/results/recipes/precise-bn-cnn4-plus \
      --run="seed 0, end=/tmp/abl-cnn4/full/seed0" --run="seed 1, end of phase 1=/tmp/cnn4-s1-phase1"
  python -m experiments.recipes.precise_bn_runs --out=experiments/results/recipes/precise-bn-cnn4-plus \
      --render_only

Each --run is label=workdir: the newest checkpoint in that workdir is tested by fashion_jax.evaluate with
the running statistics the run kept and with every BatchNorm's statistics recomputed over the training set,
for the weights and (where the run keeps one) their EMA, with and without flip TTA (where the run uses it).
Writes <out>.jsonl (a header with the machine and the command, then one record a run: the label and the
evaluation) and <out>.md, the table rendered from it; where two or more runs were tested at the same step of
the same model (several seeds' ends: give the script one recipe's runs), also each column's mean +/- std
over them.
"""

import collections
import sys

from absl import app, flags, logging

from experiments import lab
from fashion_jax.cpu_info import cpu_text

FLAGS = flags.FLAGS

# (column title, the key's part after the statistics' prefix)
VIEWS = (('test accuracy', 'test_accuracy'), ('flip TTA', 'tta_flip_test_accuracy'))
CROPS = ('crops TTA', 'tta_crops_test_accuracy')  # a column where any run was tested with --tta_crops


def views_of(records):
  """The tables' views: VIEWS, and multi-crop TTA where a run has its numbers."""
  crops = any(f'{p}{CROPS[1]}' in r['evaluation']['results'] for r in records for p in ('', 'ema_'))
  return VIEWS + ((CROPS,) if crops else ())


def statistics_of(records):
  """The BatchNorm statistics the tables show: the kept ones, and the recomputed ones where a run has them
  (none with --noprecise_batch_norm)."""
  precise = any(key.startswith('precise_bn_') for r in records for key in r['evaluation']['results'])
  return ('', 'precise_bn_') if precise else ('',)


def columns_of(views, statistics_kinds):
  """The tables' number columns: (the statistics' prefix, the view's key), the kept statistics first."""
  return tuple((statistics, view) for statistics in statistics_kinds for _, view in views)


def _titles(views, statistics_kinds):
  return ' | '.join(('precise BN, ' if statistics else '') + title for statistics in statistics_kinds
                    for title, _ in views)


def define_flags():
  """The command line's flags; defined only when the script runs, so tests can import it."""
  flags.DEFINE_multi_string('run', [], 'label=workdir: a run whose newest checkpoint is tested.')
  flags.DEFINE_string('out', None, 'Output path without extension (.jsonl and .md).', required=True)
  flags.DEFINE_bool('render_only', False, 'Only rewrite <out>.md from <out>.jsonl.')
  flags.DEFINE_bool('tta_crops', False, 'Also test with multi-crop TTA (a column where any run has it).')
  flags.DEFINE_bool('precise_batch_norm', True, 'Test with recomputed BatchNorm statistics too (models with '
                    'BatchNorm only; --noprecise_batch_norm for a table of multi-crop TTA alone).')


def parse_runs(assignments):
  """['label=workdir', ...] -> [(label, workdir)]; a ValueError names a malformed one."""
  runs = []
  for assignment in assignments:
    label, sep, workdir = assignment.partition('=')  # the label has no '='; a path may
    if not sep or not label or not workdir:
      raise ValueError(f'--run={assignment}: expected label=workdir')
    runs.append((label, workdir))
  return runs


def _accuracy(results, key):
  return f'{results[key]:.4f}' if key in results else '-'


def _means_over_runs(same_point, views, statistics_kinds):
  """A second table: mean +/- std of each column over the runs whose checkpoints sit at the same step of the
  same model (e.g. several seeds' ends), where there are two or more; none if no two runs share one."""
  shared = {point: columns for point, columns in same_point.items() if len(columns[0]) > 1}
  if not shared:
    return []
  lines = ['', 'Mean +/- std over the runs tested at the same step of the same model (one recipe\'s seeds):',
           '',
           f'| model | checkpoint | weights | runs | {_titles(views, statistics_kinds)} |',
           '| --- | --- | --- | --- |' + ' --- |' * (len(statistics_kinds) * len(views))]
  for (model, where, named), columns in shared.items():
    lines.append(f'| {model} | {where} | {named} | {len(columns[0])} | '
                 + ' | '.join(lab.mean_std_text(numbers, len(columns[0])) for numbers in columns)
                 + ' |')
  return lines


def markdown(header, records):
  views, statistics_kinds = views_of(records), statistics_of(records)
  precise = len(statistics_kinds) > 1
  lines = [f'# {"Precise BatchNorm" if precise else "Test-time augmentation"} on checkpoints of runs trained '
           'without it', '',
           f'Machine: {header["device_kind"]} ({header["backend"]}), {cpu_text(header)}, JAX {header["jax"]}.',
           "Each run's newest checkpoint tested again (`python -m fashion_jax.evaluate`)"
           + (': with the BatchNorm running statistics the run kept, and with every BatchNorm\'s statistics '
              'recomputed over the training set (precise BN),' if precise else ',')
           + ' for its weights and for their EMA. "Matches the record": the first '
           "column's number equals the one the run wrote when the checkpoint ended a phase ('-' where it "
           'ended none).', '',
           f'| run | model | checkpoint | weights | {_titles(views, statistics_kinds)} | matches the record |',
           '| --- | --- | --- | --- | ' + '--- | ' * (len(statistics_kinds) * len(views)) + '--- |']
  columns = columns_of(views, statistics_kinds)
  # (model, where, weights) -> each column's numbers over the runs tested there
  same_point = collections.defaultdict(lambda: [[] for _ in columns])
  for record in records:
    evaluation = record['evaluation']
    results, recorded = evaluation['results'], evaluation['recorded']
    where = (f'step {evaluation["step"]} ({evaluation["phase"]}, {evaluation["epoch"]} epochs)'
             if evaluation['phase'] else 'step 0')
    for weights in ('', 'ema_'):
      if f'{weights}test_accuracy' not in results:
        continue
      key = f'{weights}test_accuracy'
      matches = '-' if not recorded else ('yes' if recorded.get(key) == results[key] else 'no')
      keys = [f'{statistics}{weights}{view}' for statistics, view in columns]
      named = 'EMA' if weights else 'weights'
      lines.append(f'| {record["label"]} | {evaluation["model"]} | {where} | {named} | '
                   + ' | '.join(_accuracy(results, key) for key in keys) + f' | {matches} |')
      for numbers, key in zip(same_point[evaluation['model'], where, named], keys):
        if key in results:
          numbers.append(results[key])
  lines += _means_over_runs(same_point, views, statistics_kinds)
  lines += [''] + [f'Note: {note}' for note in header.get('notes', [])]
  lines += [f'Command: `{header["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  if FLAGS.render_only:
    lab.render_table(FLAGS.out, markdown)
    return
  try:
    runs = parse_runs(FLAGS.run)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  if not runs:
    print('error: --run=label=workdir: give at least one run', file=sys.stderr)
    sys.exit(2)
  logging.set_verbosity(logging.WARNING)
  from fashion_jax import evaluate  # pylint: disable=g-import-not-at-top
  from fashion_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  header = lab.machine()
  records = []
  for label, workdir in runs:
    try:
      evaluation = evaluate.evaluate_run(workdir, FLAGS.precise_batch_norm, FLAGS.tta_crops)
    except UserError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
    records.append({'label': label, 'evaluation': evaluation})
    print('\n'.join(evaluate.summary_lines(evaluation)), flush=True)
  lab.write_records_and_table(FLAGS.out, header, records, markdown(header, records))


if __name__ == '__main__':
  define_flags()
  app.run(main)
