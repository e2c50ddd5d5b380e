"""Time to a target test accuracy: one config, several seeds, measured as the trainer runs it.

  python -m experiments.recipes.speedrun --config=configs/speedrun_cpu.py --seeds=5 --target=0.92 \
      --out=experiments/results/speedruns/speedrun-cpu

Each seed is a full run of the config (train.train_and_evaluate) in `<root>/seed<k>`; <out>.jsonl and
<out>.md are rewritten after every run, so a speedrun stopped early keeps the runs it finished. A run's
time is its own `seconds` in results.json: from the data on the device to the final test accuracy (the last phase's
test evaluation included; loading the data and drawing pictures excluded). The first seed compiles
every step function; it fills JAX's persistent compilation cache (in `<root>/.jax_cache`), so later
seeds load the compiled programs. The table gives both: the first seed's time with compilation, and
each seed's time with the cache warm (the first seed is run a second time for that).

The accuracy is the one the config designates: with `config.tta_flip` the flip-averaged test accuracy,
else the plain one (never the better of several, which would pick on the test set). A seed reaches
the target when that accuracy is >= --target.

`--torch_twin` and `--keras_twin` then train the same recipe in PyTorch and in Keras
(experiments/baselines/torch_speedrun.py, keras_speedrun.py) for the same seeds, in the same process on
the same machine (on the CPU only), seed by seed after ours, and the table adds their runs and the ratio
of their mean seconds to ours. `--torch_channels_last` and `--keras_jit_compile` run them at the
settings that suit them best on the machine (experiments/baselines/twin_settings.py measures them);
`--torch_batch_size` and `--keras_batch_size` change the recipe's batch size for them (the schedule's
steps follow).
"""

import functools
import json
import os
import shutil
import statistics

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import lab
from fashion_jax.cpu_info import cpu_text

# pylint: disable=g-import-not-at-top  # the frameworks and the trainer load only where a run needs them

_CONFIG = config_flags.DEFINE_config_file('config', None, 'The speedrun\'s config file.')
_SEEDS = flags.DEFINE_integer('seeds', 5, 'Seeds 0 .. seeds - 1.')
_TARGET = flags.DEFINE_float('target', 0.92, 'Target test accuracy.')
_ROOT = flags.DEFINE_string('root', '/tmp/speedrun', 'Workdirs of the runs (replaced).')
_RENDER_ONLY = flags.DEFINE_bool('render_only', False, 'Only rewrite <out>.md from an existing <out>.jsonl.')
_TORCH = flags.DEFINE_bool('torch_twin', False, 'Also train the recipe\'s PyTorch twin for the same seeds.')
_KERAS = flags.DEFINE_bool('keras_twin', False, 'Also train the recipe\'s Keras twin for the same seeds.')
_TORCH_BATCH_SIZE = flags.DEFINE_integer('torch_batch_size', 0, 'The PyTorch twin\'s batch size (0: the config\'s).')
_KERAS_BATCH_SIZE = flags.DEFINE_integer('keras_batch_size', 0, 'The Keras twin\'s batch size (0: the config\'s).')
_TORCH_CHANNELS_LAST = flags.DEFINE_bool('torch_channels_last', False, 'The PyTorch twin keeps activations NHWC.')
_KERAS_JIT_COMPILE = flags.DEFINE_bool('keras_jit_compile', False, 'The Keras twin compiles with XLA '
                                       '(jit_compile=True; else Keras\' default, \'auto\').')
_OUT = lab.out_flag()  # .jsonl and .md; shared with the speed scripts


def final_accuracy(config, results):
  phase = results['phases'][-1]
  return phase['tta_flip_test_accuracy'] if config.tta_flip else phase['test_accuracy']


def run(config, seed, workdir):
  from fashion_jax import train
  config = config.copy_and_resolve_references()
  config.seed = seed
  shutil.rmtree(workdir, ignore_errors=True)
  results = train.train_and_evaluate(config, workdir)
  return {'seed': seed, 'seconds': results['seconds'], 'accuracy': final_accuracy(config, results),
          'test_accuracy': results['phases'][-1]['test_accuracy'],
          'epochs': sum(p['epochs'] for p in results['phases'])}


# (framework, its name in the table, the module that trains it): the twins `--torch_twin`/`--keras_twin` add.
TWINS = (('pytorch', 'PyTorch', 'torch_speedrun'), ('keras', 'Keras', 'keras_speedrun'))


def _spread(values):
  std = statistics.stdev(values) if len(values) > 1 else 0.0
  return f'mean {statistics.mean(values):.4f} +/- {std:.4f}, min {min(values):.4f}, max {max(values):.4f}'


def _seconds(values):
  std = statistics.stdev(values) if len(values) > 1 else 0.0
  return f'mean {statistics.mean(values):.1f} +/- {std:.1f}, min {min(values):.1f}, max {max(values):.1f}'


def markdown(info, records, target, config_name):
  ours = [r for r in records if r.get('framework', 'jax') == 'jax']
  cached = [r for r in ours if r['cache'] == 'warm']
  first = next(r for r in ours if r['cache'] == 'cold')
  accuracies = [r['accuracy'] for r in cached]
  reached = sum(a >= target for a in accuracies)
  lines = [
      f'Speedrun of `{config_name}` to {target:g} test accuracy. Machine: {info["device_kind"]} '
      f'({info["backend"]}, {info["devices"]} device(s)), {cpu_text(info)}, JAX {info["jax"]}.', '']
  if cached:
    lines += [
        f'- accuracy over {len(cached)} seed{"s" if len(cached) > 1 else ""}: {_spread(accuracies)}; '
        f'{reached} of {len(cached)} reach {target:g}',
        f'- seconds (compiled programs loaded from the cache): {_seconds([r["seconds"] for r in cached])}']
  else:  # written after the first run, or the speedrun stopped before a second: no run with the cache warm
    lines += [f'- only the first, compiling run has finished: accuracy {first["accuracy"]:.4f}, '
              f'{"reaches" if first["accuracy"] >= target else "short of"} {target:g}']
  lines += [f'- the first run, compiling everything: {first["seconds"]:.1f} s']
  for framework, label, module in TWINS:
    runs = [r for r in records if r.get('framework') == framework]
    if not runs:
      continue
    twin_accuracies, twin_seconds = [r['accuracy'] for r in runs], [r['seconds'] for r in runs]
    lines += [
        f'- {label} {info.get(framework, "")} (the same recipe, experiments/baselines/{module}.py; '
        f'{runs[0]["settings"]}), '
        f'{len(runs)} seed{"s" if len(runs) > 1 else ""}: accuracy {_spread(twin_accuracies)}; '
        f'{sum(a >= target for a in twin_accuracies)} of {len(runs)} reach {target:g}',
        f'- {label} seconds: {_seconds(twin_seconds)}; its mean over ours (cached): '
        f'{statistics.mean(twin_seconds) / statistics.mean([r["seconds"] for r in cached]):.2f}']
  lines += ['', '| framework | seed | compilation | seconds | accuracy | plain test accuracy | epochs |',
            '| --- | --- | --- | --- | --- | --- | --- |']
  lines += [f'| JAX | {r["seed"]} | {"compiled" if r["cache"] == "cold" else "cached"} | {r["seconds"]:.1f} | '
            f'{r["accuracy"]:.4f} | {r["test_accuracy"]:.4f} | {r["epochs"]} |' for r in ours]
  labels = {framework: label for framework, label, _ in TWINS}
  lines += [f'| {labels[r["framework"]]} | {r["seed"]} | {r["compilation"]} | {r["seconds"]:.1f} | '
            f'{r["accuracy"]:.4f} | {r["test_accuracy"]:.4f} | {r["epochs"]} |'
            for r in records if r.get('framework') in labels]
  lines += [''] + [f'Note: {note}' for note in info.get('notes', [])]
  lines += [f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def twin_trainers(config, info):
  """[(framework, seed -> record)] for the twins asked for, each warmed up once (untimed) so that its
  runtime's one-time set-up is not charged to its first seed; their versions go into `info`."""
  if not (_TORCH.value or _KERAS.value):
    return []
  import jax
  from fashion_jax import data as data_lib
  from fashion_jax.errors import UserError
  if jax.default_backend() != 'cpu':
    raise UserError(f'--torch_twin/--keras_twin: the twins train on the CPU; JAX runs on '
                    f'{jax.default_backend()}, which would compare two different machines')
  dataset = data_lib.load(config.data)
  twins = []
  if _TORCH.value:
    import torch
    from experiments.baselines import torch_speedrun
    info['pytorch'] = torch.__version__
    torch_speedrun.images_per_second(config, dataset, _TORCH_BATCH_SIZE.value or config.batch_size,
                                     _TORCH_CHANNELS_LAST.value, steps=5)
    twins.append(('pytorch', lambda seed: torch_speedrun.train(
        config, dataset, seed, _TORCH_BATCH_SIZE.value, _TORCH_CHANNELS_LAST.value)))
  if _KERAS.value:
    import keras
    from experiments.baselines import keras_speedrun
    info['keras'] = keras.__version__
    jit_compile = True if _KERAS_JIT_COMPILE.value else 'auto'
    keras_speedrun.images_per_second(config, dataset, _KERAS_BATCH_SIZE.value or config.batch_size, jit_compile,
                                     steps=5)
    twins.append(('keras', lambda seed: keras_speedrun.train(config, dataset, seed, _KERAS_BATCH_SIZE.value,
                                                              jit_compile)))
  return twins


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if _RENDER_ONLY.value:
    with open(_OUT.value + '.jsonl') as f:
      info, *records = [json.loads(line) for line in f]
    write_markdown(_OUT.value, info, records)
    return
  import jax
  jax.config.update('jax_compilation_cache_dir', os.path.join(_ROOT.value, '.jax_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  shutil.rmtree(os.path.join(_ROOT.value, '.jax_cache'), ignore_errors=True)
  info = lab.machine()
  config = _CONFIG.value
  twins = twin_trainers(config, info)
  header = dict(info, config=config.to_dict(), target=_TARGET.value,
                config_file=config_flags.get_config_filename(flags.FLAGS['config']))
  records = []
  record = functools.partial(keep_record, _OUT.value, header, records)
  record(dict(run(config, 0, os.path.join(_ROOT.value, 'seed0-cold')), cache='cold'))
  for seed in range(_SEEDS.value):  # seed by seed, ours then each twin: a change in the machine's load
    record(dict(run(config, seed, os.path.join(_ROOT.value, f'seed{seed}')), cache='warm'))
    for framework, train_twin in twins:  # shows on every side alike
      record(dict(train_twin(seed), framework=framework))
  write_markdown(_OUT.value, header, records)


def keep_record(out, header, records, entry):
  """Adds a run's record and rewrites <out>.jsonl and <out>.md, so that a speedrun stopped early keeps
  the runs it finished, in both."""
  records.append(entry)
  print(json.dumps(entry), flush=True)
  lab.write_json_lines(out, header, records)
  write_markdown(out, header, records, echo=False)


def write_markdown(out, info, records, echo=True):
  target = info['target'] if 'target' in info else _TARGET.value  # older headers lack the target
  with open(out + '.md', 'w') as f:
    f.write(markdown(info, records, target, info.get('config_file', '?')))
  if echo:
    print(open(out + '.md').read())


if __name__ == '__main__':
  app.run(main)
