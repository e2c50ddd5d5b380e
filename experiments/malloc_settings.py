"""The C library's allocator against the CPU training step: glibc's defaults, and settings that keep
freed memory in the process.

  python experiments/malloc_settings.py --out=experiments/results/malloc-settings-cpu-<processor>

XLA's CPU runtime takes each step's temporary buffers from malloc and frees them when the step ends.
glibc serves a large request with its own mmap (above a threshold that adapts up to 32 MB) and unmaps
it on free, and gives the top of its heap back to the kernel once more than a threshold is free there,
so the next step touches those pages as new: each first touch is a minor page fault, and the kernel
zeroes the page. The settings below are environment variables glibc reads once, at start-up:
MALLOC_MMAP_MAX_=0 serves every request from the heap (nothing is unmapped on free),
MALLOC_TRIM_THRESHOLD_ (2 GiB - 1) stops the heap's top from being given back, and MALLOC_ARENA_MAX=1
keeps one heap for all threads rather than one per thread that allocates.

Each (setting, config) runs in a process of its own (this script, with --child), `--rounds` times,
the settings' order rotating from round to round, so that a slow spell of the machine falls on every
setting alike. A process times `--repeats` training steps of the config's model (the trainer's compiled
step at the config's batch size) after three untimed ones and prints the median step and the minor
page faults a timed step. The table gives, per config and setting, the median over the rounds of each
round's median step, and the faults.
Writes <out>.jsonl and <out>.md.
"""

import importlib
import json
import os
import statistics
import subprocess
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import records as records_lib
from experiments import benchmark, layer_shares
from fashion_jax.cpu_info import cpu_text

KEEP = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': str(2**31 - 1)}
# name: (the table's column, the environment).
SETTINGS = {
    'defaults': ('glibc defaults', {}),
    'keep': ('no mmap, no trim', KEEP),
    'keep_one_arena': ('no mmap, no trim, one arena', dict(KEEP, MALLOC_ARENA_MAX='1')),
}

_OUT = benchmark._OUT  # pylint: disable=protected-access (--out, without extension, is benchmark.py's flag)
_CONFIGS = layer_shares.STEP_CONFIGS  # --configs (--rounds is benchmark.py's: layer_shares.rounds())
_SETTINGS = flags.DEFINE_list('settings', list(SETTINGS),
                              f'Allocator settings to compare, of {list(SETTINGS)}.')
_CHILD = flags.DEFINE_string('child', '', 'Internal: time this config in this process and print JSON.')
_REPEATS = layer_shares._REPEATS  # pylint: disable=protected-access (--repeats: timed steps a process)


def time_config(config_name, repeats):
  """The median training step of configs/<config_name>.py and its minor page faults, in this process."""
  from fashion_jax import data  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f'configs.{config_name}').get_config()
  _, batch, seconds, faults = layer_shares.time_step(config_name, data.load(config.data), repeats, untimed=3)
  return {'config': config_name, 'batch': batch, 'seconds': seconds, 'faults_per_step': faults}


def measure(configs, settings, rounds, repeats, out, table=SETTINGS, script=__file__, cleared='MALLOC_'):
  """Times each config under each of `settings` (names in `table`, SETTINGS by default: name -> (column,
  environment)), each in a process of `script` (which answers --child) whose environment has the
  variables starting with `cleared` replaced by the setting's."""
  records, names = [], list(settings)
  for round_index in range(rounds):
    order = names[round_index % len(names):] + names[:round_index % len(names)]
    for config_name in configs:
      for setting in order:
        env = {k: v for k, v in os.environ.items() if not k.startswith(cleared)}
        env.update(table[setting][1])
        output = subprocess.run(
            [sys.executable, os.path.abspath(script), f'--child={config_name}', f'--repeats={repeats}',
             f'--out={out}'],  # --out is required by the flag's definition; the child writes nothing
            env=env, capture_output=True, text=True)
        if output.returncode:
          sys.exit(f'{config_name} under {setting!r} failed:\n{output.stderr[-3000:]}')
        record = json.loads(output.stdout.strip().splitlines()[-1])
        record.update(setting=table[setting][0], round=round_index, environment=table[setting][1])
        print(json.dumps(record), flush=True)
        records.append(record)
  return records


def markdown(info, records, subject='allocator setting'):
  settings = list(dict.fromkeys(r['setting'] for r in records))
  rounds = len({r['round'] for r in records})
  lines = [f'Machine: {info["device_kind"]} ({info["backend"]}), {cpu_text(info)}, JAX {info["jax"]}.', '',
           'The training step of each config (ms, the median over rounds of each process\'s median step; '
           f'in brackets, the fastest and the slowest round) and its minor page faults, under each {subject}, '
           f'{rounds} rounds, every (setting, config) in its own process, the settings\' order '
           'rotating.', '',
           '| config | batch | ' + ' | '.join(settings) + ' |', '| --- | --- |' + ' --- |' * len(settings)]
  for config_name in dict.fromkeys(r['config'] for r in records):
    rows = [r for r in records if r['config'] == config_name]
    cells = []
    for setting in settings:
      ms = [r['seconds'] * 1e3 for r in rows if r['setting'] == setting]
      faults = statistics.median(r['faults_per_step'] for r in rows if r['setting'] == setting)
      cells.append(f'{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f}), {faults:,.0f} faults')
    lines.append(f'| {config_name} | {rows[0]["batch"]} | ' + ' | '.join(cells) + ' |')
  environments = {r['setting']: r['environment'] for r in records}
  lines += ['', 'Settings (environment variables): ' + '; '.join(
      f'{name}: {" ".join(f"{k}={v}" for k, v in env.items()) or "none"}'
      for name, env in environments.items()),
            '', f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  if _CHILD.value:
    print(json.dumps(time_config(_CHILD.value, _REPEATS.value)))
    return
  info = records_lib.machine()
  unknown = sorted(set(_SETTINGS.value) - set(SETTINGS))
  if unknown:
    sys.exit(f'--settings: unknown {unknown}; expected some of {list(SETTINGS)}')
  records = measure(_CONFIGS.value, _SETTINGS.value, layer_shares.rounds(), _REPEATS.value, _OUT.value)
  table = markdown(info, records)
  records_lib.write_records_and_table(_OUT.value, info, records, table)
  print(table)


if __name__ == '__main__':
  app.run(main)
