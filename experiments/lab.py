"""What the experiment scripts share: their output files, the command line, the article's numbers, the
timing of forms against each other and the flags that several scripts define.

Output files: <out>.jsonl holds a header (the machine, the command) and then one JSON line a measurement
or run, which the scripts' tables are rendered from.
"""

import json
import os
import platform
import shlex
import statistics
import sys
import time

from absl import flags

from fashion_jax.cpu_info import cpu_description, cpu_identity, peak_gflops, usable_cpus

# The article's published numbers (docs/article.md), for the reports that compare with them: test loss /
# accuracy after phase 1 and phase 2, and parameters.
ARTICLE = {
    'cnn1': {'phase1': (0.2485, 0.9104), 'phase2': (0.2210, 0.9229), 'parameters': 693_962},
    'cnn3': {'phase1': (0.2497, 0.9079), 'phase2': (0.2291, 0.9117), 'parameters': 241_546},
    'cnn4': {'phase1': (0.2657, 0.9052), 'phase2': (0.1777, 0.9352), 'parameters': 1_221_546},
    # VGG19: one phase (the head's 50 epochs); the article reported it after that phase.
    'vgg19': {'phase1': (0.6238, 0.7664), 'parameters': None},
}


def command():
  """The command line that is running, as typed from the repository's root: `python -m <module> ...`
  for a script run as a module (sys.argv[0] would be the module's absolute path)."""
  spec = getattr(sys.modules.get('__main__'), '__spec__', None)
  program = ['-m', spec.name] if spec is not None and spec.name else sys.argv[:1]
  return shlex.join(['python'] + program + sys.argv[1:])


def machine():
  """The header's description of this machine and of the command that is running."""
  import jax  # pylint: disable=g-import-not-at-top  # only once a script measures
  device = jax.devices()[0]
  cpu_model, cpu_flags = cpu_description()
  peak, peak_basis = peak_gflops()
  return {'backend': jax.default_backend(), 'device_kind': device.device_kind, 'devices': jax.device_count(),
          'cpu_count': usable_cpus(), 'processor': platform.processor() or platform.machine(),
          'cpu_model': cpu_model, 'cpu_identity': cpu_identity(), 'cpu_flags': cpu_flags,
          'cpu_peak_gflops': peak, 'cpu_peak_basis': peak_basis,
          'jax': jax.__version__, 'command': command()}


def write_json_lines(out, header, records):
  """Writes <out>.jsonl (the header, then the records), making its folder if needed."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + '.jsonl', 'w') as f:
    f.writelines(json.dumps(line) + '\n' for line in [header] + records)


def write_records_and_table(out, header, records, table):
  """Writes <out>.jsonl (`write_json_lines`) and <out>.md, the `table` rendered from those records."""
  write_json_lines(out, header, records)
  with open(out + '.md', 'w') as f:
    f.write(table)


def read_json_lines(out):
  """(header, records) of <out>.jsonl, as write_json_lines wrote them."""
  with open(out + '.jsonl') as f:
    header, *records = [json.loads(line) for line in f if line.strip()]
  return header, records


def render_table(out, markdown):
  """Rewrites <out>.md from <out>.jsonl with `markdown(header, records)` (a script's --render_only)."""
  header, records = read_json_lines(out)
  with open(out + '.md', 'w') as f:
    f.write(markdown(header, records))


def mean_std_text(values, runs=None):
  """'mean +/- std' over runs to 4 decimals: the one value itself for one run, '-' for none; with `runs`
  (how many runs the row has), ' (k of n runs)' where only k of them have the number."""
  if not values:
    return '-'
  text = (f'{values[0]:.4f}' if len(values) == 1
          else f'{statistics.mean(values):.4f} +/- {statistics.stdev(values):.4f}')
  return text if runs is None or len(values) == runs else f'{text} ({len(values)} of {runs} runs)'


def alternate(calls, repeats, untimed=0):
  """{name: median seconds of a call}: each of `calls` ({name: fn(i) for call i}, returning what to wait
  for) once in turn, `untimed` rounds first and then `repeats` timed ones, so that the machine's drift
  between minutes touches every form alike. Only ratios within one such run are compared."""
  import jax  # pylint: disable=g-import-not-at-top  (the lab's other helpers run without JAX)
  times = {name: [] for name in calls}
  for i in range(untimed + repeats):
    for name, fn in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(i))
      if i >= untimed:
        times[name].append(time.perf_counter() - start)
  return {name: statistics.median(values) for name, values in times.items()}


def typed_override(config, assignment):
  """(key, value) of `key=value` from a script's command line, the value converted to the type of
  config[key]'s current value (dotted keys for nested settings)."""
  key, value = assignment.split('=', 1)
  node = config
  *parents, leaf = key.split('.')
  for parent in parents:
    node = node[parent]
  current = node[leaf]
  if isinstance(current, bool):
    return key, value.lower() in ('1', 'true', 'yes')
  return key, type(current)(value)


def apply_override(config, assignment):
  """`key=value` from a script's command line (`--set`): sets config[key] (dotted for nested settings) to
  value, converted to the current value's type."""
  key, value = typed_override(config, assignment)
  config.update_from_flattened_dict({key: value})


# Flags that several measuring scripts define at import time (speed/benchmark.py, layer_shares.py,
# step_profile.py, conv_libraries.py, recipes/speedrun.py; baselines/twin_settings.py when run). One
# process may import several of them (a test, a notebook, a script using another's functions) and absl
# refuses a flag defined twice, so the first call defines each and the later ones return it.


def _shared_flag(define, name, default, help_text, **kwargs):
  if name not in flags.FLAGS:
    define(name, default, help_text, **kwargs)
  return flags.FlagHolder(flags.FLAGS, flags.FLAGS[name])


def out_flag():
  """--out: the output path without extension (<out>.jsonl and <out>.md); required."""
  return _shared_flag(flags.DEFINE_string, 'out', None, 'Output path without extension (.jsonl and .md).',
                      required=True)


def models_flag():
  """--models: the configs (configs/<model>.py) a script times."""
  return _shared_flag(flags.DEFINE_list, 'models', ['cnn1', 'cnn3', 'cnn4'],
                      'Models (configs/<model>.py) to time.')


def rounds_flag():
  """--rounds: how many times a script measures everything, each round all of it in turn (a shared
  machine's speed drifts: a ratio pairs the sides of one round)."""
  return _shared_flag(flags.DEFINE_integer, 'rounds', 1,
                      'Rounds, each timing every side of every measurement once, in turn.')


def repeats_flag():
  """--repeats: timed calls per measurement."""
  return _shared_flag(flags.DEFINE_integer, 'repeats', 20,
                      'Timed calls per measurement (after untimed ones).')
