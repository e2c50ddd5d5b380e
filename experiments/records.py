"""The experiments' output files: <out>.jsonl holds a header (the machine, the command) and then one JSON
line a measurement or run, which the scripts' tables are rendered from."""

import json
import os
import platform
import shlex
import statistics
import sys

from fashion_jax.cpu_info import cpu_description, cpu_identity, peak_gflops, usable_cpus


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
          'jax': jax.__version__, 'command': shlex.join(['python'] + sys.argv)}


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
