"""Writes the study's report from its runs' files: experiments/results/study/README.md and its figures.

  python -m experiments.study.study_report --root=experiments/results/study/study-h200 \
      --keras_root=experiments/results/study/keras-cpu --out=experiments/results/study

Reads each `<root>/<model>-seed<k>/` (results.json, history.jsonl, test_predictions.npz), and the same
files of the article's Keras code run by experiments/baselines/keras_study.py under `--keras_root`, and
puts them beside the article's numbers (docs/article.md): every run as a distribution (mean, standard
deviation, range, each run's last 5 validation epochs) and a picture per model. Nothing in it is typed
in by hand: the sentences under "Reading the numbers" are generated from the same files.
"""

import collections
import glob
import json
import os
import sys

import numpy as np
from absl import app, flags

from experiments import lab
from fashion_jax import plots, run_files
from fashion_jax.data import CLASS_NAMES

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags; defined only when the script runs, so tests can import it."""
  flags.DEFINE_string('root', 'experiments/results/study/study-h200', 'The study\'s runs.')
  flags.DEFINE_string('out', 'experiments/results/study', 'Where README.md and the figures go.')
  flags.DEFINE_string('keras_root', 'experiments/results/study/keras-cpu',
                      'The Keras runs of experiments/baselines/keras_study.py ("" for none).')
  flags.DEFINE_string('recipes_root', 'experiments/results/recipes',
                      "The plus recipes' ablation tables, for the README's table.")


def load_runs(root, with_config=True):
  """model -> its runs under `root` (one <model>-seed<k>/ each); Keras runs have no config.json."""
  runs = collections.defaultdict(list)
  for results_path in sorted(glob.glob(os.path.join(root, '*-seed*', 'results.json'))):
    workdir = os.path.dirname(results_path)
    results = run_files.read_json(results_path)
    config = run_files.read_json(os.path.join(workdir, 'config.json')) if with_config else None
    predictions = np.load(os.path.join(workdir, 'test_predictions.npz'))
    runs[results['model']].append({'workdir': workdir, 'results': results, 'config': config,
                                   'history': run_files.read_history(workdir),
                                   'probabilities': predictions['probabilities'],
                                   'labels': predictions['labels']})
  return runs


def mean_std(values):
  values = np.asarray(values, np.float64)
  return values.mean(), (values.std(ddof=1) if len(values) > 1 else 0.0)


def validation_figure(runs, keras_runs, path):
  """Validation accuracy and loss per epoch: our mean over seeds with its min-max band, Keras' mean dashed."""
  fig, axes = plots.plt.subplots(1, 2, figsize=(13, 4.5))
  colours = {'cnn1': '#1f77b4', 'cnn3': '#2ca02c', 'cnn4': '#d62728'}
  for model, model_runs in sorted(runs.items()):
    epochs = [h['epoch'] for h in model_runs[0]['history']]
    keras_group = keras_runs.get(model, [])
    for ax, metric in zip(axes, ('val_accuracy', 'val_loss')):
      values = np.array([[h[metric] for h in run['history']] for run in model_runs])
      mean = values.mean(0)
      ax.plot(epochs, mean, color=colours.get(model), label=f'{model} (mean of {len(model_runs)} seeds)')
      ax.fill_between(epochs, values.min(0), values.max(0), color=colours.get(model), alpha=0.15)
      if keras_group:
        keras_values = np.array([[h[metric] for h in run['history']] for run in keras_group])
        ax.plot([h['epoch'] for h in keras_group[0]['history']], keras_values.mean(0), color=colours.get(model),
                linestyle='--', linewidth=1, label=f'{model}, Keras (mean of {len(keras_group)} seeds)')
  boundary = max(h['epoch'] for h in next(iter(runs.values()))[0]['history'] if h['phase'] == 'phase1')
  axes[0].set_ylim(0.85, 0.945)
  axes[1].set_ylim(0.15, 0.45)
  for ax, label in zip(axes, ('validation accuracy', 'validation loss')):
    ax.axvline(boundary + 0.5, color='grey', linestyle='--')
    ax.text(boundary + 1, 0.02, 'augmentation starts', color='grey', va='bottom', fontsize=9,
            transform=ax.get_xaxis_transform())
    ax.set_xlabel('epoch')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
  fig.suptitle('Validation curves of every model (band: min to max over seeds)')
  plots._save(fig, path)  # pylint: disable=protected-access


def per_class_figure(per_class, path):
  fig, ax = plots.plt.subplots(figsize=(12, 4.5))
  models = sorted(per_class)
  width = 0.8 / len(models)
  for i, model in enumerate(models):
    ax.bar(np.arange(10) + (i - (len(models) - 1) / 2) * width, per_class[model], width, label=model)
  ax.set_xticks(range(10), CLASS_NAMES, rotation=30, ha='right')
  ax.set_ylim(0.6, 1.0)
  ax.set_ylabel('test accuracy of the class (mean over seeds)')
  ax.grid(axis='y', alpha=0.3)
  ax.legend()
  ax.set_title('Per-class test accuracy after phase 2: shirts are everyone\'s weak spot')
  plots._save(fig, path)  # pylint: disable=protected-access


def _phase_values(model_runs, phase_index, key):
  return [r['results']['phases'][phase_index][key] for r in model_runs]


def _last_epochs_val_accuracy(run, phase, last=5):
  """The mean validation accuracy of a run's last `last` epochs of `phase`: steadier than the last epoch."""
  values = [h['val_accuracy'] for h in run['history'] if h['phase'] == phase]
  return float(np.mean(values[-last:]))


def _spread(values):
  if not values:
    return '-', '-'
  if len(values) == 1:
    return f'{values[0]:.4f} (one run)', f'{values[0]:.4f}'
  mean, std = mean_std(values)
  return f'{mean:.4f} +/- {std:.4f}', f'{min(values):.4f}-{max(values):.4f}'


def _article_among(article, values):
  """Where the article's single number falls among the Keras runs, in words."""
  if not values:
    return '-'
  above = sum(article > v for v in values)
  return f'above {above} of {len(values)}'


def distributions_figure(runs, keras_runs, path):
  """One panel per model: each run's test accuracy (a dot per seed) per phase, ours and Keras', and
  the article's single number as a line."""
  models = sorted(runs)
  fig, axes = plots.plt.subplots(1, len(models), figsize=(4.8 * len(models), 4.6), squeeze=False)
  for ax, model in zip(axes[0], models):
    for k, phase in enumerate(('phase1', 'phase2')):
      for offset, (label, group, colour) in zip((-0.12, 0.12), (
          ('ours (a dot per run)', runs.get(model, []), '#1f77b4'),
          ('Keras, the article\'s code (a dot per run)', keras_runs.get(model, []), '#ff7f0e'))):
        values = _phase_values(group, k, 'test_accuracy')
        ax.scatter(np.full(len(values), k + offset), values, color=colour, s=28, zorder=3,
                   label=label if k == 0 else None)
      ax.hlines(lab.ARTICLE[model][phase][1], k - 0.3, k + 0.3, color='black', linewidth=1.5,
                label='the article (one run)' if k == 0 else None)
    ax.set_xticks([0, 1], ['after phase 1\n(10 epochs)', 'after phase 2\n(+50 augmented)'])
    ax.set_xlim(-0.5, 1.5)
    ax.set_title(model)
    ax.grid(axis='y', alpha=0.3)
  axes[0][0].set_ylabel('test accuracy')
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='lower center', ncol=3, fontsize=9)
  fig.suptitle('Every run\'s test accuracy: ours, the article\'s Keras code, and the article\'s number')
  fig.subplots_adjust(bottom=0.24, wspace=0.3)
  plots._save(fig, path)  # pylint: disable=protected-access


def _describe_our_runs(runs):
  any_run = next(iter(runs.values()))[0]
  results = any_run['results']
  precisions = sorted({r['config'].get('precision', 'default') for group in runs.values() for r in group})
  return (f'{results["device_kind"]} ({results["backend"]}, {results["devices"]} device), JAX '
          f'{results["jax_version"]}, float32 with matmul precision {", ".join(precisions)}'
          + (' (the backend\'s choice: TF32 on this GPU)' if results['backend'] == 'gpu'
             and precisions == ['default'] else ''))


def _describe_keras_runs(keras_runs):
  """Where and with what the Keras runs ran, one clause per distinct setting (runs may mix machines)."""
  settings = collections.defaultdict(list)
  for model, group in sorted(keras_runs.items()):
    for r in group:
      results = r['results']
      versions, backend = results['versions'], results.get('backend', 'tensorflow')
      where = (f'on one {results["device"]}' if results.get('device', 'cpu') != 'cpu'
               else f'on a {results["cpu_count"]}-core {results["cpu_model"]} CPU')
      batches = results.get('phase2_batches', 'ImageDataGenerator.flow')
      key = (f'Keras {versions["keras"]} on {backend} {versions.get(backend, "")}, keras-preprocessing '
             f'{versions["keras_preprocessing"]}, {where}, phase 2 through {batches}, validation on '
             f'{"augmented" if results["augment_validation"] else "plain"} images')
      settings[key].append(f'{model} seed {results["seed"]}')
  return '; '.join(f'{key} ({", ".join(runs)})' for key, runs in settings.items())


def write_report(runs, out, root, keras_runs, keras_root):
  command = (f'python -m experiments.study.study_report --root={root}'
             + (f' --keras_root={keras_root}' if keras_root else ''))
  lines = ['# The reproduction study', '',
           f'Generated by `{command}` from the runs\' files (config.json, history.jsonl, results.json and '
           f'test_predictions.npz of each run, committed under `{root}/`'
           + (f' and `{keras_root}/`' if keras_runs else '') + ').', '',
           f'- **Ours**: {_describe_our_runs(runs)}. The article\'s protocol (10 epochs plain, then 50 '
           'augmented, batch 256, Adam with Keras\' defaults), validation on the 12,000 held-out training '
           'images (never augmented), test on the 10,000 test images.']
  if keras_runs:
    lines.append(f'- **Keras**: the article\'s notebook code (`experiments/baselines/keras_study.py`, '
                 f'command in each results.json): {_describe_keras_runs(keras_runs)}.')
  lines += ['- **The article**: one run per model, its last epoch (docs/article.md).', '',
            '## Test accuracy after each phase', '',
            '| model | phase | ours: runs | mean +/- std | min-max | Keras: runs | mean +/- std | min-max | '
            'article | the article against the Keras runs |',
            '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  cnn_runs = {m: r for m, r in runs.items() if m != 'vgg19'}
  for model, model_runs in sorted(cnn_runs.items()):
    for k, phase in enumerate(('phase1', 'phase2')):
      ours = _phase_values(model_runs, k, 'test_accuracy')
      theirs = _phase_values(keras_runs.get(model, []), k, 'test_accuracy')
      article = lab.ARTICLE[model][phase][1]
      lines.append(f'| {model} | {phase} | {len(ours)} | {" | ".join(_spread(ours))} | {len(theirs)} | '
                   f'{" | ".join(_spread(theirs))} | {article:.4f} | {_article_among(article, theirs)} |')
  distributions_figure(cnn_runs, keras_runs, os.path.join(out, 'test_accuracy_distributions.png'))
  lines += ['', '![test accuracy of every run](test_accuracy_distributions.png)', '',
            '## Validation accuracy, mean of each run\'s last 5 epochs of the phase', '',
            'Steadier than one epoch\'s number: phase-2 validation accuracy moves by several thousandths '
            'from epoch to epoch.', '',
            '| model | phase | ours: mean +/- std | min-max | Keras: mean +/- std | min-max |',
            '| --- | --- | --- | --- | --- | --- |']
  for model, model_runs in sorted(cnn_runs.items()):
    for phase in ('phase1', 'phase2'):
      ours = [_last_epochs_val_accuracy(r, phase) for r in model_runs]
      theirs = [_last_epochs_val_accuracy(r, phase) for r in keras_runs.get(model, [])]
      lines.append(f'| {model} | {phase} | {" | ".join(_spread(ours))} | {" | ".join(_spread(theirs))} |')
  lines += ['', '## Test loss after each phase', '',
            '| model | phase | ours: mean +/- std | Keras: mean +/- std | article |', '| --- | --- | --- | --- | --- |']
  for model, model_runs in sorted(cnn_runs.items()):
    for k, phase in enumerate(('phase1', 'phase2')):
      ours = _spread(_phase_values(model_runs, k, 'test_loss'))[0]
      theirs = _spread(_phase_values(keras_runs.get(model, []), k, 'test_loss'))[0]
      lines.append(f'| {model} | {phase} | {ours} | {theirs} | {lab.ARTICLE[model][phase][0]:.4f} |')
  for model, model_runs in sorted(runs.items()):
    if model != 'vgg19':
      continue
    # Weights and preprocessing change the meaning of the number: one row per variant.
    lines += ['', '## VGG19 transfer', '', '| weights; preprocessing | runs | test accuracy | test loss | article |',
              '| --- | --- | --- | --- | --- |']
    variants = collections.defaultdict(list)
    for r in model_runs:
      variants[(r['results']['vgg19']['weights'], r['results']['vgg19']['preprocessing'])].append(r)
    for (weights, preprocessing), group in sorted(variants.items()):
      lines.append(f'| {weights}; {preprocessing} | {len(group)} | {_spread(_phase_values(group, 0, "test_accuracy"))[0]} | '
                   f'{_spread(_phase_values(group, 0, "test_loss"))[0]} | 0.7664 / 0.6238 |')
  lines += ['', '## Parameters and time', '',
            'Training time is results.json\'s `seconds`: from the start of training to the last test; '
            'loading the data, setting up and drawing pictures are not in it. It includes compiling, '
            'except where a run loaded its compiled programs from the compilation cache that an earlier '
            'run of the same study filled (the study\'s later seeds).', '',
            '| model | parameters | the article\'s | our seeds | our training seconds | Keras seeds | '
            'Keras training seconds |', '| --- | --- | --- | --- | --- | --- | --- |']
  for model, model_runs in sorted(cnn_runs.items()):
    seconds = mean_std([r['results']['seconds'] for r in model_runs])
    keras_group = keras_runs.get(model, [])
    keras_seconds = (f'{mean_std([r["results"]["seconds"] for r in keras_group])[0]:.0f}'
                     if keras_group else '-')
    lines.append(f'| {model} | {model_runs[0]["results"]["parameters"]:,} | '
                 f'{lab.ARTICLE[model]["parameters"]:,} | '
                 f'{", ".join(str(r["config"]["seed"]) for r in model_runs)} | {seconds[0]:.1f} +/- {seconds[1]:.1f} | '
                 f'{", ".join(str(r["results"]["seed"]) for r in keras_group) or "-"} | {keras_seconds} |')
  # A note a run's results.json carries (added after the run, e.g. that its time was shared) stays beside it.
  noted = [(label, model, r) for label, group in (('ours', cnn_runs), ('Keras', keras_runs))
           for model, model_runs in sorted(group.items()) for r in model_runs if r['results'].get('notes')]
  if noted:
    lines.append('')
  for label, model, r in noted:
    seed = r['results'].get('seed', r['config']['seed'] if r['config'] else '?')
    lines.append(f'- {label}, {model} seed {seed}: ' + ' '.join(r['results']['notes']))
  per_class = {model: np.mean([[np.mean(r['probabilities'][r['labels'] == c].argmax(1) == c) for c in range(10)]
                               for r in model_runs], axis=0)
               for model, model_runs in sorted(cnn_runs.items())}
  validation_figure(cnn_runs, keras_runs, os.path.join(out, 'validation_curves.png'))
  per_class_figure(per_class, os.path.join(out, 'per_class_accuracy.png'))
  lines += ['', '![validation curves](validation_curves.png)', '', '![per-class accuracy](per_class_accuracy.png)',
            '', '| model | ' + ' | '.join(CLASS_NAMES) + ' |', '| --- |' + ' --- |' * 10]
  for model in sorted(per_class):
    lines.append(f'| {model} | ' + ' | '.join(f'{v:.3f}' for v in per_class[model]) + ' |')
  lines += ['', '## Reading the numbers', ''] + reading(cnn_runs, keras_runs) + ['', NOTES]
  with open(os.path.join(out, 'README.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')


def summary_table(runs, keras_runs):
  """The study's table: phase-2 test accuracy, ours and Keras' (mean +/- std over runs) and the article's."""
  lines = ['| model | ours | Keras (the article\'s code) | the article |', '| --- | --- | --- | --- |']
  for model, model_runs in sorted(runs.items()):
    if model == 'vgg19':
      continue
    lines.append(f'| {model} | {_cell(model_runs)} | {_cell(keras_runs.get(model, []))} | '
                 f'{lab.ARTICLE[model]["phase2"][1]:.4f} |')
  return '\n'.join(lines)


def _cell(group):
  return (_spread(_phase_values(group, 1, 'test_accuracy'))[0] + ('' if len(group) == 1 else f' ({len(group)} runs)')
          if group else 'not run yet')


def plus_numbers(recipes_dir):
  """{model: [each seed's number]} of the plus recipes: the 'full' rows of recipes/ablate.py's tables
  (<recipes_dir>/ablation-<model>-plus.jsonl), each run scored by its most complete test evaluation."""
  from experiments.recipes import ablate  # pylint: disable=g-import-not-at-top
  numbers = {}
  for path in sorted(glob.glob(os.path.join(recipes_dir, 'ablation-*-plus.jsonl'))):
    header, records = lab.read_json_lines(path[:-len('.jsonl')])
    if header['config'] == f'configs/{header["model"]}_plus.py':
      numbers[header['model']] = [ablate.run_number(r['phases'][-1]) for r in records if r['variant'] == ablate.FULL]
  return numbers


def readme_table(runs, keras_runs, plus):
  """The README's results table: the article, our reproduction and the Keras runs of its code (as
  `summary_table`), and the plus recipes (`plus_numbers`), phase-2 test accuracy."""
  lines = ['| model | the article | ours, the article\'s protocol | Keras, the article\'s code | plus recipe |',
           '| --- | --- | --- | --- | --- |']
  for model, model_runs in sorted(runs.items()):
    if model == 'vgg19':
      continue
    plus_cell = _spread(plus[model])[0] + f' ({len(plus[model])} runs)' if plus.get(model) else 'not run yet'
    lines.append(f'| {model} | {lab.ARTICLE[model]["phase2"][1]:.4f} | {_cell(model_runs)} | '
                 f'{_cell(keras_runs.get(model, []))} | {plus_cell} |')
  return '\n'.join(lines)


def _runs(n):
  return f'{n} run' + ('' if n == 1 else 's')


def reading(runs, keras_runs):
  """One generated sentence per model and phase: ours against Keras' runs and the article."""
  lines = []
  for model, model_runs in sorted(runs.items()):
    for k, phase in enumerate(('phase1', 'phase2')):
      ours = _phase_values(model_runs, k, 'test_accuracy')
      theirs = _phase_values(keras_runs.get(model, []), k, 'test_accuracy')
      article = lab.ARTICLE[model][phase][1]
      sentence = (f'- **{model}, {phase}**: test accuracy, ours {np.mean(ours):.4f} ({_runs(len(ours))}), the '
                  f'article {article:.4f} ({np.mean(ours) - article:+.4f}).')
      if theirs:
        overlap = min(ours) <= max(theirs) and min(theirs) <= max(ours)
        ranges = ('the Keras run lies within our range' if len(theirs) == 1 and overlap else
                  'the Keras run lies outside our range' if len(theirs) == 1 else
                  f'the two ranges {"overlap" if overlap else "do not overlap"}')
        ours_val = np.mean([_last_epochs_val_accuracy(r, phase) for r in model_runs])
        theirs_val = np.mean([_last_epochs_val_accuracy(r, phase) for r in keras_runs[model]])
        sentence += (f' The article\'s own code, run here: {np.mean(theirs):.4f} ({_runs(len(theirs))}); ours '
                     f'minus Keras\' {np.mean(ours) - np.mean(theirs):+.4f}, and {ranges}. Over each run\'s '
                     f'last 5 validation epochs, ours {ours_val:.4f} and Keras\' {theirs_val:.4f} '
                     f'({ours_val - theirs_val:+.4f}). The article\'s number is {_article_among(article, theirs)} '
                     'Keras runs.')
      lines.append(sentence)
  return lines


NOTES = """\
## What the article got wrong or left unclear, and what we did

- **Validation batches were augmented in phase 2** (the notebook passed the augmenting generator as
  validation data). That makes validation curves in phase 2 incomparable with phase 1. We validate on
  plain images; `--config.augment_validation=True` reproduces the article's choice.
- **VGG19's inputs were scaled twice** (pixels / 255, then Keras' caffe `preprocess_input`, which
  expects 0..255): the base saw nearly constant inputs around -104..-124, which likely explains its
  0.7664. The VGG19 model is not part of this study: no pretrained weights could be fetched where it
  ran (the README's VGG19 section says what was measured).
- **50 vs 10 epochs for VGG19**: the article's text speaks of 10 epochs, its notebook trained the head
  for 50. The VGG19 config follows the notebook.
- **Steps per epoch**: the article's phase 1 used `model.fit`, which runs 188 steps an epoch (the last
  with 128 images); phase 2 used 187 (`48000 // 256`) from an endless generator whose every 188th batch
  holds the 128 images left over from a pass. We run 187 full batches in both phases (one compiled
  program, a new permutation every epoch, so every image is seen); the Keras runs keep the notebook's.
- **Keras' augmentation centre** is size / 2 + 0.5 (14.5 for 28 pixels, not the true centre 13.5); we
  reproduce it exactly, since it is what the article's images went through.
"""


def main(argv):
  del argv
  runs = load_runs(FLAGS.root)
  if not runs:
    print(f'error: no runs under {FLAGS.root}', file=sys.stderr)
    sys.exit(2)
  keras_runs = load_runs(FLAGS.keras_root, with_config=False) if FLAGS.keras_root else {}
  write_report(runs, FLAGS.out, FLAGS.root, keras_runs, FLAGS.keras_root if keras_runs else '')
  print(json.dumps({m: len(r) for m, r in runs.items()}))
  print('The README\'s table:\n' + readme_table(runs, keras_runs, plus_numbers(FLAGS.recipes_root)))


if __name__ == '__main__':
  define_flags()
  app.run(main)
