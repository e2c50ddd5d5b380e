"""The study report is computed from the runs' files: ours, the Keras runs and the article's numbers."""

import json
import os

import numpy as np

from conftest import REPO
from experiments.study import study_report


def _write_run(root, model, seed, accuracies, val_accuracies, keras=False, notes=None):
  workdir = os.path.join(root, f'{model}-seed{seed}')
  os.makedirs(workdir)
  phases = [{'name': f'phase{k + 1}', 'epochs': 1, 'augmented': bool(k), 'test_loss': 0.3 - 0.01 * k,
             'test_accuracy': a} for k, a in enumerate(accuracies)]
  results = {'model': model, 'phases': phases, 'parameters': 1000, 'seconds': 10.0 + seed}
  if keras:
    results.update(framework='keras', seed=seed, augment_validation=False, backend='tensorflow',
                   versions={'keras': '3.0', 'tensorflow': '2.0', 'keras_preprocessing': '1.1.2'},
                   cpu_model='AMD EPYC', cpu_count=2, device='cpu', phase2_batches='BatchedFlow')
  else:
    results.update(device_kind='cpu', backend='cpu', devices=1, jax_version='0.0')
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      json.dump({'seed': seed, 'model': model}, f)
  if notes:
    results['notes'] = notes
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f)
  with open(os.path.join(workdir, 'history.jsonl'), 'w') as f:
    for epoch, (phase, value) in enumerate(val_accuracies, 1):
      f.write(json.dumps({'phase': phase, 'epoch': epoch, 'val_accuracy': value, 'val_loss': 1 - value}) + '\n')
  labels = np.arange(10).repeat(3)
  np.savez(os.path.join(workdir, 'test_predictions.npz'), probabilities=np.eye(10)[labels], labels=labels)


def test_the_report_puts_keras_runs_and_the_article_beside_ours(tmp_path):
  ours, keras, out = (str(tmp_path / name) for name in ('ours', 'keras', 'out'))
  os.makedirs(out)
  history = [('phase1', 0.80), ('phase2', 0.90), ('phase2', 0.92)]
  for seed, accuracy in enumerate((0.910, 0.914, 0.912)):
    _write_run(ours, 'cnn1', seed, (0.90, accuracy), history)
  keras_history = [('phase1', 0.81), ('phase2', 0.93), ('phase2', 0.95)]
  for seed, accuracy in enumerate((0.920, 0.925)):
    _write_run(keras, 'cnn1', seed, (0.905, accuracy), keras_history, keras=True,
               notes=['its time was shared.'] if seed == 1 else None)
  study_report.write_report(study_report.load_runs(ours), out, ours,
                            study_report.load_runs(keras, with_config=False), keras)
  report = open(os.path.join(out, 'README.md')).read()
  # Phase 2: ours 0.912 +/- 0.002 over 3 runs; Keras 0.9225 over 2; the article's 0.9229 between them.
  assert ('| cnn1 | phase2 | 3 | 0.9120 +/- 0.0020 | 0.9100-0.9140 | 2 | 0.9225 +/- 0.0035 | '
          '0.9200-0.9250 | 0.9229 | above 1 of 2 |') in report
  assert '| cnn1 | phase1 | 3 | 0.9000 +/- 0.0000 | 0.9000-0.9000 | 2 | 0.9050 +/- 0.0000' in report
  # The last-5-epoch validation mean of each phase (here all of phase 2's two epochs: 0.91).
  assert '| cnn1 | phase2 | 0.9100 +/- 0.0000 | 0.9100-0.9100 | 0.9400 +/- 0.0000 | 0.9400-0.9400 |' in report
  # The README's table: phase 2, each side's mean over its runs.
  summary = study_report.summary_table(study_report.load_runs(ours), study_report.load_runs(keras, False))
  assert summary.splitlines()[2] == '| cnn1 | 0.9120 +/- 0.0020 (3 runs) | 0.9225 +/- 0.0035 (2 runs) | 0.9229 |'
  # The generated reading: ours minus Keras' mean, and whether the ranges overlap.
  assert 'ours minus Keras\' -0.0105, and the two ranges do not overlap' in report
  assert 'last 5 validation epochs, ours 0.9100 and Keras\' 0.9400 (-0.0300)' in report
  assert 'Keras 3.0 on tensorflow 2.0' in report and '(cnn1 seed 0, cnn1 seed 1)' in report
  assert os.path.exists(os.path.join(out, 'test_accuracy_distributions.png'))
  # A run's own note (added after it ran) is quoted beside the times, and only that run's.
  assert '- Keras, cnn1 seed 1: its time was shared.' in report
  assert 'seed 0: ' not in report


def test_the_committed_report_and_the_readmes_table_are_what_the_committed_runs_give(tmp_path, monkeypatch):
  # The committed report's command, run again from the repository root: a run added, a number typed into
  # experiments/results/study/README.md or README.md, or a renderer changed without regenerating, fails
  # here.
  # (The pictures are redrawn into tmp_path; their pixels are not compared.)
  monkeypatch.chdir(REPO)
  root, keras_root = 'experiments/results/study/study-h200', 'experiments/results/study/keras-cpu'
  runs = study_report.load_runs(root)
  keras_runs = study_report.load_runs(keras_root, with_config=False)
  study_report.write_report(runs, str(tmp_path), root, keras_runs, keras_root)
  with open(tmp_path / 'README.md') as f, open('experiments/results/study/README.md') as committed:
    assert f.read() == committed.read()
  with open('README.md') as f:
    readme = f.read()
  assert study_report.readme_table(runs, keras_runs, study_report.plus_numbers('experiments/results/recipes')) in readme
