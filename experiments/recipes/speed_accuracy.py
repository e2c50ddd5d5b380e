"""Test accuracy against training seconds for every committed recipe: one table and one picture.

  python -m experiments.recipes.speed_accuracy --results=experiments/results

Collects, from the committed files under --results: each speedrun (speedruns/speedrun-*.jsonl: its runs
with the compiled programs loaded from the cache), each full run of the article's protocol with our code
(study/study-h200/, study/cpu-cnn3-seed0/) and with the article's Keras code (study/keras-cpu/), and the
plus recipes for the article's models (recipes/ablation-<model>-plus.jsonl, the recipe's own runs, scored
as the recipe is: its EMA weights with flip TTA; ablate.py's other variants stay in its tables). One row
and one point per (recipe, hardware): the mean test accuracy over its runs (bars: min to max) against the
mean of its runs' `seconds` (results.json: data on the device to the last test; the speedruns' cached
runs and a study's later seeds load their compiled programs from a compilation cache, other runs
compile). Writes <results>/speedruns/speed-accuracy.md and .png.
"""

import collections
import glob
import json
import os
import statistics

from absl import app, flags

from experiments import lab
from fashion_jax import plots, resume

FLAGS = flags.FLAGS
TARGETS = (0.92, 0.94, 0.95)
# Where under --results each kind of run lies: the speedruns' tables (and this script's own output), the
# plus recipes' ablation tables, and the protocol runs (<study>/<folder>/<run>/ or <study>/<run>/).
SPEEDRUNS, RECIPES, STUDY = 'speedruns', 'recipes', 'study'


def hardware(record):
  """'NVIDIA H200', '2-core AMD EPYC (family 25 model 17, AVX-512)', '2-core AMD EPYC (AVX2)': the machine
  as precisely as the record has it (one model name covers processors of different speeds)."""
  device = record.get('device_kind') or record.get('device') or 'cpu'
  if device.lower() != 'cpu':
    return device
  model = record.get('cpu_model')
  if not model:
    return 'CPU (model not recorded)'
  name = f'{record["cpu_count"]}-core {model}' if record.get('cpu_count') else model
  flags = record.get('cpu_flags') or ()
  details = [record['cpu_identity'].split(' stepping')[0]] if record.get('cpu_identity') else []
  details += ['AVX-512'] if 'avx512f' in flags else ['AVX2'] if 'avx2' in flags else []
  return f'{name} ({", ".join(details)})' if details else name


TWIN_NAMES = {'pytorch': 'PyTorch', 'keras': 'Keras'}


def recipe_name(header, path):
  """'configs/x.py augment_epochs=5': a speedrun table's config file and the settings its command line
  overrode (they make another recipe)."""
  parts = header['command'].split()
  config = next((part.split('=', 1)[1] for part in parts if part.startswith('--config=')),
                os.path.basename(path))
  return ' '.join([config] + [part[len('--config.'):] for part in parts if part.startswith('--config.')])


def speedrun_files(results_dir):
  """(path, header, runs) of each committed speedrun table (speedruns/speedrun-*.jsonl, speedrun.py's)."""
  for path in sorted(glob.glob(os.path.join(results_dir, SPEEDRUNS, 'speedrun-*.jsonl'))):
    yield (path, *lab.read_json_lines(path[:-len('.jsonl')]))


def speedrun_points(results_dir):
  points = collections.defaultdict(list)
  for path, header, runs in speedrun_files(results_dir):
    config = recipe_name(header, path)
    for run in runs:
      # The recipe in PyTorch or Keras (speedrun.py --*_twin): a point apart, named by what differs.
      if run.get('framework') in TWIN_NAMES:
        recipe = header.get('config', {})
        batch, init = run.get('batch_size'), run.get('weight_init')
        other = ''.join([f' at batch {batch}' if batch != recipe.get('batch_size', batch) else '',
                         f', {init} init' if init and init != recipe.get('model_kwargs', {}).get('weight_init',
                                                                                               'keras') else ''])
        points[(f'speedrun {config}, {TWIN_NAMES[run["framework"]]} twin{other}', hardware(header))].append(
            (run['seconds'], run['accuracy']))
      elif run.get('cache') == 'warm':
        points[(f'speedrun {config}', hardware(header))].append((run['seconds'], run['accuracy']))
  return points


def plus_points(results_dir):
  """The plus recipes' runs (configs/<model>_plus.py, variant 'full' of recipes/ablate.py's table),
  each scored by its most complete test evaluation, as ablate.py scores it."""
  from experiments.recipes import ablate  # pylint: disable=g-import-not-at-top
  points = collections.defaultdict(list)
  for path in sorted(glob.glob(os.path.join(results_dir, RECIPES, 'ablation-*-plus.jsonl'))):
    header, runs = lab.read_json_lines(path[:-len('.jsonl')])
    for run in runs:
      if run['variant'] == ablate.FULL:
        points[(f'{header["model"]} plus recipe ({header["config"]})', hardware(header))].append(
            (run['seconds'], ablate.run_number(run['phases'][-1])))
  return points


# Settings that change how a run computes, not what it trains: those a run may change on resume, plus the
# seed, the compute dtype and precision and the evaluation batch. A run that differs from
# configs/<model>.py only in these (and its data's location) followed the article's protocol.
EXECUTION_SETTINGS = resume.RESUMABLE_CHANGES + ('seed', 'dtype', 'precision', 'eval_batch_size')


def _changed_settings(workdir, model):
  """The settings of our run in `workdir` that differ from configs/<model>.py, execution aside."""
  import importlib  # pylint: disable=g-import-not-at-top
  with open(os.path.join(workdir, 'config.json')) as f:
    ran = resume.upgraded_config(json.load(f))
  protocol = importlib.import_module(f'configs.{model}').get_config().to_dict()
  # Where the files were found is no setting of the run either.
  ran, protocol = (resume.without_settings(config, EXECUTION_SETTINGS + ('data.dir',)) for config in (ran, protocol))
  return sorted(k for k in set(ran) | set(protocol) if ran.get(k) != protocol.get(k))


def protocol_points(results_dir):
  """Two-phase runs of the article's CNNs: ours (labelled by how their config differs from the article's
  protocol) and the Keras runs of experiments/baselines/keras_study.py."""
  points = collections.defaultdict(list)
  for path in sorted(glob.glob(os.path.join(results_dir, STUDY, '*', '*', 'results.json')) +
                     glob.glob(os.path.join(results_dir, STUDY, '*', 'results.json'))):
    with open(path) as f:
      results = json.load(f)
    if len(results.get('phases', [])) != 2 or results['model'] not in ('cnn1', 'cnn3', 'cnn4'):
      continue  # the article's two-phase protocol of its CNNs only
    if results.get('framework') == 'keras':
      label = f'{results["model"]}, the article\'s protocol (Keras)'
    else:
      changed = _changed_settings(os.path.dirname(path), results['model'])
      label = (f'{results["model"]}, the article\'s protocol (ours)' if not changed
               else f'{results["model"]} ({", ".join(changed)} changed)')
    points[(label, hardware(results))].append(
        (results['seconds'], results['phases'][-1]['test_accuracy']))
  return points


def table(points):
  lines = ['| recipe | hardware | runs | test accuracy | seconds a run | '
           + ' | '.join(f'runs >= {t}' for t in TARGETS) + ' |', '| --- |' + ' --- |' * (5 + len(TARGETS) - 1)]
  for (recipe, hardware), runs in sorted(points.items(), key=lambda item: statistics.mean(s for s, _ in item[1])):
    accuracies = [a for _, a in runs]
    spread = f' +/- {statistics.stdev(accuracies):.4f}' if len(runs) > 1 else ''
    lines.append(f'| {recipe} | {hardware} | {len(runs)} | {statistics.mean(accuracies):.4f}{spread} | '
                 f'{statistics.mean(s for s, _ in runs):,.1f} | '
                 + ' | '.join(f'{sum(a >= t for a in accuracies)} of {len(runs)}' for t in TARGETS) + ' |')
  return '\n'.join(lines)


def figure(points, path):
  fig, ax = plots.plt.subplots(figsize=(13, 5.5))
  markers, drawn = {}, collections.Counter()
  for (recipe, hardware), runs in sorted(points.items()):
    seconds = statistics.mean(s for s, _ in runs)
    accuracies = [a for _, a in runs]
    mean = statistics.mean(accuracies)
    marker = markers.setdefault(hardware, 'os^Dv'[len(markers) % 5])
    # A marker per hardware, and 20 colours within it: no two of one machine's recipes look alike.
    color = plots.plt.cm.tab20(drawn[hardware] % 20)
    drawn[hardware] += 1
    ax.errorbar(seconds, mean, yerr=[[mean - min(accuracies)], [max(accuracies) - mean]], fmt=marker,
                color=color, capsize=3, label=f'{recipe} on {hardware}')
  for target in TARGETS:
    ax.axhline(target, color='grey', linestyle=':', linewidth=0.8)
  ax.set_xscale('log')
  ax.set_xlabel('seconds a run (log scale)')
  ax.set_ylabel('test accuracy (mean; bars: min to max over runs)')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0))
  ax.set_title('Fashion-MNIST: test accuracy against training time, every committed recipe')
  plots._save(fig, path)  # pylint: disable=protected-access


def points_of(results_dir):
  """{(recipe, hardware): [(seconds, accuracy), one a run]} of every committed recipe under `results_dir`."""
  return {**protocol_points(results_dir), **speedrun_points(results_dir), **plus_points(results_dir)}


def markdown(points, results_dir):
  """<results>/speedruns/speed-accuracy.md: the table, with the command that generates it."""
  return ('# Test accuracy against training seconds\n\n'
          f'Generated by `python -m experiments.recipes.speed_accuracy --results={results_dir}` from the '
          'committed runs (see its docstring for what each time covers). Times from different hardware are '
          'not comparable with each other.\n\n' + table(points)
          + '\n\n![accuracy against seconds](speed-accuracy.png)\n')


def main(argv):
  del argv
  points = points_of(FLAGS.results)
  figure(points, os.path.join(FLAGS.results, SPEEDRUNS, 'speed-accuracy.png'))
  with open(os.path.join(FLAGS.results, SPEEDRUNS, 'speed-accuracy.md'), 'w') as f:
    f.write(markdown(points, FLAGS.results))


if __name__ == '__main__':
  flags.DEFINE_string('results', 'experiments/results', 'The folder of committed results.')
  app.run(main)
