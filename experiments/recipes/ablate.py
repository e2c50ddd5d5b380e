"""What each choice of a recipe is worth: the recipe, and the recipe without each choice (or with each
addition), over seeds.

  python -m experiments.recipes.ablate --config=configs/cnn3_plus.py --seeds=3 \
      --out=experiments/results/recipes/ablation-cnn3-plus
  python -m experiments.recipes.ablate --config=configs/speedrun_cpu_convnet_093.py --seeds=1 \
      '--variant=mixup:mix.mixup_alpha=0.2' --out=...

The config file defines `get_config()` and may define `ablations()`: a name for each choice and the
overrides that take it away; `--variant=name:key=value,key=value` adds a variant of the command line's.
Every (variant, seed) trains in `<root>/<variant>/seed<k>` (a rerun skips finished runs and resumes
interrupted ones), seed by seed, so a study cut short still covers every variant. `--set`
applies overrides to every variant (e.g. a smoke run's `--set=data.train_limit=2048`); `--seeds_for`
gives a variant its own number of seeds (`--seeds=3 --seeds_for="no EMA=1"`). A variant that only turns
tests off (no EMA, no flip TTA: `EVALUATION_ONLY`) is not trained: its row is read from the full recipe's
runs, which report every test with and without them.

Writes <out>.jsonl (the command and machine, then one line a run: variant, seed, every phase's test
numbers, seconds) and <out>.md: per variant, the last phase's test accuracy plain, of the EMA and with
flip TTA (where the recipe keeps them) as mean +/- std over seeds, the difference of its number (the most
complete of these) from the full recipe's, and the article's number for the model; for runs with
`--set=precise_batch_norm=True`, also that number with the BatchNorm statistics recomputed over the
training set. `--render_only` rewrites <out>.md from <out>.jsonl.
"""

import importlib.util
import os
import re
import statistics
import sys

from absl import app, flags, logging

from experiments import lab
from fashion_jax.cpu_info import cpu_text

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags; defined only when the script runs, so tests can import it."""
  flags.DEFINE_string('config', None, 'A config file with get_config() and ablations().', required=True)
  flags.DEFINE_integer('seeds', 3, 'Seeds 0 .. seeds - 1.')
  flags.DEFINE_string('root', '/tmp/ablate', 'Workdirs of the runs.')
  flags.DEFINE_list('only', [], 'Run just these variants ("full" is the recipe), e.g. for a first look.')
  flags.DEFINE_multi_string('seeds_for', [], 'variant=k: seeds 0 .. k - 1 for that variant instead of --seeds '
                            '(e.g. one seed of an ablation beside three of the recipe).')
  flags.DEFINE_multi_string('set', [], 'Overrides for every variant, key=value.')
  flags.DEFINE_multi_string('variant', [], 'name:key=value,key=value: a variant beside the ablations() '
                            'of the config (an addition to the recipe, say).')
  flags.DEFINE_string('out', None, 'Output path without extension (.jsonl and .md).', required=True)
  flags.DEFINE_bool('render_only', False, 'Only rewrite <out>.md from <out>.jsonl.')

FULL = 'full'


def load_config_module(path):
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def variants(module, extra=()):
  """[(name, overrides)]: the full recipe first, then one per ablation, then the `extra` variants
  ('name:key=value,key=value', the values typed as the config's)."""
  named = [(FULL, {})] + list(getattr(module, 'ablations', dict)().items())
  config = module.get_config()
  for text in extra:
    name, colon, assignments = text.partition(':')
    if not colon or not name or not assignments:
      raise ValueError(f'--variant={text}: expected name:key=value[,key=value...]')
    try:
      named.append((name, dict(lab.typed_override(config, a) for a in assignments.split(','))))
    except (KeyError, AttributeError, ValueError) as e:
      raise ValueError(f'--variant={text}: {e}') from None
  return named


# Settings that change only how the trained weights are tested, with the value that turns each test off
# and the prefix of the numbers it adds: the full recipe's run of a seed reports its test with and without
# them, so a variant of these alone is read from that run, not trained again.
EVALUATION_ONLY = {'ema_decay': (0.0, 'ema_'), 'tta_flip': (False, 'tta_flip_')}


def evaluation_only_prefixes(overrides):
  """The prefixes of the test numbers a variant takes away, if all it does is turn tests off; else None."""
  if not overrides or any(key not in EVALUATION_ONLY or value != EVALUATION_ONLY[key][0]
                          for key, value in overrides.items()):
    return None
  return [EVALUATION_ONLY[key][1] for key in overrides]


def read_from_full(full_record, name, overrides, prefixes):
  """The record of an evaluation-only variant: the full run's, without the numbers the variant turns off."""
  phases = [{k: v for k, v in phase.items() if not any(prefix in k for prefix in prefixes)}
            for phase in full_record['phases']]
  return {'variant': name, 'overrides': overrides, 'seed': full_record['seed'], 'phases': phases,
          'seconds': full_record['seconds'], 'read_from': FULL}


def variant_config(module, overrides, seed, extra=()):
  config = module.get_config()
  config.update_from_flattened_dict(overrides)
  for assignment in extra:
    lab.apply_override(config, assignment)
  config.seed = seed
  return config


def run_plan(names, seeds, seeds_for=()):
  """[(seed, variant)] in training order, seed by seed, each variant up to its own seed count.

  `seeds_for` holds 'variant=k' assignments that replace `seeds` for those variants; a name that is not
  among `names` or a count that is not an integer >= 0 raises a ValueError naming the assignment.
  """
  counts = dict.fromkeys(names, seeds)
  for assignment in seeds_for:
    name, equals, count = assignment.rpartition('=')
    if not equals or not count.isdigit():
      raise ValueError(f'--seeds_for={assignment}: expected variant=k with k an integer >= 0')
    if name not in counts:
      raise ValueError(f'--seeds_for={assignment}: no variant {name!r} is chosen (variants: {", ".join(names)})')
    counts[name] = int(count)
  return [(seed, name) for seed in range(max(counts.values(), default=0)) for name in names
          if seed < counts[name]]


def slug(name):
  return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


# A phase's test evaluations, in the order the table shows them; a run's number is the last it has (the
# recipe's full evaluation: a variant without EMA or without TTA is scored by what it keeps).
EVALUATIONS = (('plain', 'test_accuracy'), ('tta', 'tta_flip_test_accuracy'), ('ema', 'ema_test_accuracy'),
               ('ema_tta', 'ema_tta_flip_test_accuracy'))


def run_number(phase, prefix=''):
  """A run's number: its most complete test evaluation (EMA with flip TTA, else EMA, else TTA, else plain);
  with prefix='precise_bn_', the same with recomputed BatchNorm statistics (None if the run has none)."""
  numbers = [phase[prefix + key] for _, key in EVALUATIONS if prefix + key in phase]
  return numbers[-1] if numbers else None


def summarize(records):
  """Variant -> {'plain', 'tta', 'ema', 'ema_tta', 'number', 'seconds': [one per seed]} (last phase)."""
  table = {}
  for r in records:
    last = r['phases'][-1]
    entry = table.setdefault(r['variant'], {'overrides': r['overrides'], 'number': [], 'seconds': [],
                                            'precise_bn_number': [], 'read_from_full': 'read_from' in r,
                                            **{name: [] for name, _ in EVALUATIONS}})
    for name, key in EVALUATIONS:
      if key in last:
        entry[name].append(last[key])
    entry['number'].append(run_number(last))
    precise = run_number(last, 'precise_bn_')
    if precise is not None:  # runs with config.precise_batch_norm
      entry['precise_bn_number'].append(precise)
    entry['seconds'].append(r['seconds'])
  return table


def markdown(header, records):
  table = summarize(records)
  model = header['model']
  article = lab.ARTICLE.get(model, {}).get('phase2', (None, None))[1]
  # Runs tested with recomputed BatchNorm statistics get a column of their own (older tables have none).
  precise = any(entry['precise_bn_number'] for entry in table.values())
  lines = [f'# Ablation of `{header["config"]}` ({model})', '',
           f'Machine: {header["device_kind"]} ({header["backend"]}), {cpu_text(header)}, JAX {header["jax"]}.',
           'Each row: the recipe, or the recipe without one choice (its overrides), over seeds; the last '
           'phase\'s test accuracy, plain, with flip TTA, of the EMA of the weights, and of the EMA with flip TTA '
           '(where the variant keeps them). A variant\'s number is its most complete of these; the difference is '
           'taken between numbers' + (f'; the article\'s {model} reached {article:.4f}.' if article else '.')
           + (' "Precise BN": the number with every BatchNorm\'s statistics recomputed over the training set.'
              if precise else ''), '',
           '| variant | overrides | seeds | test accuracy | flip TTA | EMA | EMA + flip TTA | number minus the full '
           'recipe\'s | ' + ('precise BN | ' if precise else '') + 'seconds a run |',
           '| --- | --- | --- | --- | --- | --- | --- | --- | ' + ('--- | ' if precise else '') + '--- |']
  full = table.get(FULL)
  full_number = statistics.mean(full['number']) if full else None
  for name, entry in table.items():
    difference = (f'{statistics.mean(entry["number"]) - full_number:+.4f}' if full_number is not None
                  and name != FULL else '-')
    overrides = ', '.join(f'{k}={v}' for k, v in entry['overrides'].items()) or '(the recipe)'
    if entry['read_from_full']:
      overrides += ' (read from the full runs: it changes only their tests)'
    accuracies = ' | '.join(lab.mean_std_text(entry[name]) for name, _ in EVALUATIONS)
    # Over the runs tested so, named when not all the variant's are (seeds trained before the recipe had it).
    precise_cell = (f'{lab.mean_std_text(entry["precise_bn_number"], len(entry["number"]))} | '
                    if precise else '')
    lines.append(f'| {name} | {overrides} | {len(entry["plain"])} | {accuracies} | {difference} | {precise_cell}'
                 f'{statistics.mean(entry["seconds"]):.0f} |')
  lines += [''] + [f'Note: {note}' for note in header.get('notes', [])]
  lines += [f'Command: `{header["command"]}`']
  return '\n'.join(lines) + '\n'


def _write(out, header, records):
  lab.write_json_lines(out, header, records)
  with open(out + '.md', 'w') as f:
    f.write(markdown(header, records))


def main(argv):
  del argv
  if FLAGS.render_only:
    lab.render_table(FLAGS.out, markdown)
    return
  logging.set_verbosity(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  from fashion_jax import train  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', os.path.join(FLAGS.root, '.jax_cache'))
  module = load_config_module(FLAGS.config)
  # The machine as every benchmark records it (its processor's family, model and vector extensions too).
  header = {'config': FLAGS.config, 'model': module.get_config().model, **lab.machine()}
  try:
    every = variants(module, FLAGS.variant)
    unknown = [name for name in FLAGS.only if name not in dict(every)]
    if unknown:  # a misspelt name would otherwise leave its variant out without a word
      raise ValueError(f'--only={",".join(unknown)}: not a variant of {FLAGS.config} (its variants: '
                       f'{", ".join(name for name, _ in every)})')
    chosen = [(name, overrides) for name, overrides in every if not FLAGS.only or name in FLAGS.only]
    plan = run_plan([name for name, _ in chosen], FLAGS.seeds, FLAGS.seeds_for)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  overrides_of = dict(chosen)
  records = []
  for seed, name in plan:
    prefixes = evaluation_only_prefixes(overrides_of[name])
    # The full recipe comes first in each seed's runs, if it is among them.
    full = next((r for r in records if r['variant'] == FULL and r['seed'] == seed), None)
    if prefixes is not None and full is not None:
      records.append(read_from_full(full, name, overrides_of[name], prefixes))
      _write(FLAGS.out, header, records)
      continue
    workdir = os.path.join(FLAGS.root, slug(name), f'seed{seed}')
    results = train.train_and_evaluate(variant_config(module, overrides_of[name], seed, FLAGS.set), workdir)
    records.append({'variant': name, 'overrides': overrides_of[name], 'seed': seed, 'phases': results['phases'],
                    'seconds': results['seconds']})
    print(f'{name}, seed {seed}: {results["phases"][-1]}', flush=True)
    _write(FLAGS.out, header, records)


if __name__ == '__main__':
  define_flags()
  app.run(main)
