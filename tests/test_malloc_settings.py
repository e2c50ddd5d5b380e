"""The allocator experiment runs each (setting, config) in a fresh process with only that setting's
glibc variables, rotates the settings' order, and tables the median of the rounds."""

import json
import subprocess

from experiments import malloc_settings


class _FakeChild:
  """Stands in for subprocess.run: records each child's command and environment, answers a step time
  that depends on the setting (so the table's medians can be checked)."""

  def __init__(self):
    self.calls = []

  def __call__(self, command, env, capture_output, text):
    del capture_output, text
    self.calls.append((command, env))
    config = next(a for a in command if a.startswith('--child=')).split('=', 1)[1]
    seconds = 0.1 + 0.01 * len(self.calls) if 'MALLOC_MMAP_MAX_' in env else 0.2
    record = {'config': config, 'batch': 256, 'seconds': seconds, 'faults_per_step': 7.0}
    return subprocess.CompletedProcess(command, 0, stdout='log line\n' + json.dumps(record) + '\n', stderr='')


def test_each_child_gets_only_its_settings_variables_in_rotating_order(monkeypatch):
  child = _FakeChild()
  monkeypatch.setattr(malloc_settings.subprocess, 'run', child)
  monkeypatch.setenv('MALLOC_ARENA_MAX', '4')  # the caller's own setting must not leak into any child
  records = malloc_settings.measure(['cnn3'], ['defaults', 'keep'], rounds=2, repeats=5, out='/tmp/x')
  environments = [{k: v for k, v in env.items() if k.startswith('MALLOC_')} for _, env in child.calls]
  keep = malloc_settings.SETTINGS['keep'][1]
  assert environments == [{}, keep, keep, {}]  # round 0: defaults first; round 1: keep first
  assert all('--repeats=5' in command and '--child=cnn3' in command for command, _ in child.calls)
  assert [r['setting'] for r in records] == ['glibc defaults', 'no mmap, no trim', 'no mmap, no trim',
                                             'glibc defaults']
  table = malloc_settings.markdown({'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2,
                                    'cpu_model': 'AMD EPYC', 'cpu_flags': ['avx2'], 'jax': '0.0',
                                    'command': 'python experiments/malloc_settings.py'}, records)
  # keep's two rounds took 0.12 and 0.13 s: median 125 ms; defaults 200 ms both times.
  assert '| cnn3 | 256 | 200.0 (200.0-200.0), 7 faults | 125.0 (120.0-130.0), 7 faults |' in table
  assert 'MALLOC_MMAP_MAX_=0' in table


def test_the_xla_experiment_gives_each_child_only_its_settings_xla_flags(monkeypatch):
  from experiments import xla_cpu_flags  # pylint: disable=g-import-not-at-top
  child = _FakeChild()
  monkeypatch.setattr(malloc_settings.subprocess, 'run', child)
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=8')  # must not reach a child
  records = malloc_settings.measure(['cnn4'], ['defaults', 'onednn'], rounds=1, repeats=3, out='/tmp/x',
                                    table=xla_cpu_flags.SETTINGS, script=xla_cpu_flags.__file__,
                                    cleared='XLA_FLAGS')
  assert [env.get('XLA_FLAGS') for _, env in child.calls] == [
      None, xla_cpu_flags.SETTINGS['onednn'][1]['XLA_FLAGS']]
  assert all(command[1].endswith('experiments/xla_cpu_flags.py') for command, _ in child.calls)
  table = xla_cpu_flags.markdown({'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC',
                                  'jax': '0.0', 'command': 'python experiments/xla_cpu_flags.py'}, records)
  assert 'under each XLA:CPU setting, 1 rounds' in table and '| XLA defaults (YNNPACK) | oneDNN |' in table
