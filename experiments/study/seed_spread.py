"""Test accuracy over seeds, per phase, from the workdirs of a run_study.py root.

  python -m experiments.study.run_study --root=runs/cnn3-phase1 --models=cnn3 --seeds=10 \
      --set=augment_epochs=0 --set=report.plots=False
  python -m experiments.study.seed_spread --root=runs/cnn3-phase1 --threshold=0.90 \
      --out=experiments/results/study/cnn3-phase1-cpu

Writes <out>/README.md (every seed's accuracy, mean, standard deviation, range and how many seeds reach
`--threshold`) and copies each run's config.json, history.jsonl and results.json under <out>/<run>/.
"""

import glob
import json
import os
import platform
import shutil
import statistics
import sys

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
  """Defined when run as a script: other experiments define flags of the same names (--root, --out),
  and absl refuses a name defined twice in one process."""
  flags.DEFINE_string('root', None, 'A run_study.py root: one workdir per (model, seed).', required=True)
  flags.DEFINE_string('out', None, 'Folder for README.md and the copied run files.', required=True)
  flags.DEFINE_float('threshold', 0.90, 'Accuracy that each seed is compared with.')
  flags.DEFINE_string('command', '', 'The command that trained the runs, quoted in the README.')


_RUN_FILES = ('config.json', 'history.jsonl', 'results.json')


def load_runs(root):
  runs = {}
  for path in sorted(glob.glob(os.path.join(root, '*', 'results.json'))):
    with open(path) as f:
      runs[os.path.basename(os.path.dirname(path))] = json.load(f)
  if not runs:
    sys.exit(f'error: --root={root}: no <run>/results.json under it (did the runs finish?)')
  return runs


def summary(runs, threshold):
  lines = ['| run | phase | epochs | test loss | test accuracy |', '| --- | --- | --- | --- | --- |']
  by_phase = {}
  for name, results in runs.items():
    for phase in results['phases']:
      by_phase.setdefault(phase['name'], []).append(phase['test_accuracy'])
      lines.append(f'| {name} | {phase["name"]} | {phase["epochs"]} | {phase["test_loss"]:.4f} | '
                   f'{phase["test_accuracy"]:.4f} |')
  lines += ['', f'| phase | seeds | mean | std | min | max | seeds >= {threshold} |',
            '| --- | --- | --- | --- | --- | --- | --- |']
  for phase, accuracies in by_phase.items():
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    reached = sum(a >= threshold for a in accuracies)
    lines.append(f'| {phase} | {len(accuracies)} | {statistics.mean(accuracies):.4f} | {std:.4f} | '
                 f'{min(accuracies):.4f} | {max(accuracies):.4f} | {reached} |')
  return lines


def main(argv):
  del argv
  runs = load_runs(FLAGS.root)
  first = next(iter(runs.values()))
  # The runs' own results.json name their devices; the CPU count is this (summarising) machine's.
  header = [f'# Test accuracy over seeds: {", ".join(sorted({r["model"] for r in runs.values()}))}', '',
            f'Trained on {first.get("devices")} {first.get("device_kind")} device(s), JAX '
            f'{first.get("jax_version")}; summarised on {platform.machine()} with {os.cpu_count()} CPU '
            f'cores. {len(runs)} runs, seconds per run: '
            f'{min(r["seconds"] for r in runs.values()):.0f}-{max(r["seconds"] for r in runs.values()):.0f}.']
  if FLAGS.command:
    header += ['', f'Command: `{FLAGS.command}`']
  os.makedirs(FLAGS.out, exist_ok=True)
  for name in runs:
    os.makedirs(os.path.join(FLAGS.out, name), exist_ok=True)
    for file in _RUN_FILES:
      shutil.copyfile(os.path.join(FLAGS.root, name, file), os.path.join(FLAGS.out, name, file))
  with open(os.path.join(FLAGS.out, 'README.md'), 'w') as f:
    f.write('\n'.join(header + [''] + summary(runs, FLAGS.threshold)) + '\n')
  print(open(os.path.join(FLAGS.out, 'README.md')).read())


if __name__ == '__main__':
  define_flags()
  app.run(main)
