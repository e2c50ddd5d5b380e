"""The layout's rules, checked so that they stay true as the code changes: the library keeps decisions,
not experiments; the trainer stays readable; the lab stays beside the library, not inside it."""

import ast
import glob
import os

from conftest import REPO


def _python_files(*patterns):
  return sorted(p for pattern in patterns for p in glob.glob(os.path.join(REPO, pattern), recursive=True))


def test_nothing_outside_the_tests_patches_the_library():
  # A choice that an experiment flips with mock.patch is a switch no config.json records.
  offenders = [os.path.relpath(p, REPO) for p in _python_files('fashion_jax/**/*.py', 'experiments/**/*.py')
               if '/tests/' not in p and ('mock.patch' in open(p).read() or 'monkeypatch' in open(p).read())]
  assert offenders == []


def test_the_models_hold_no_module_level_settings_that_code_assigns():
  # Constants are fine; a module-level name that a function rebinds (`global`) or that the module reads
  # as a switch is not. Any `global` statement in the models marks the first.
  offenders = []
  for path in _python_files('fashion_jax/models/**/*.py'):
    tree = ast.parse(open(path).read())
    offenders += [f'{os.path.relpath(path, REPO)}:{node.lineno}' for node in ast.walk(tree)
                  if isinstance(node, ast.Global)]
  assert offenders == []


def _imported_modules(path):
  names = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      names |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
      names |= {f'{node.module}.{alias.name}' for alias in node.names} | {node.module or ''}
  return names


def test_the_trainer_steps_and_predict_know_nothing_of_vgg19():
  # VGG19's frozen base is an input stage (inputs.py), which only the model that declares it pulls in.
  for name in ('train', 'steps', 'predict'):
    imported = _imported_modules(os.path.join(REPO, 'fashion_jax', f'{name}.py'))
    assert not {m for m in imported if m.endswith(('.vgg', '.transfer', '.vgg_weights'))}, name


def test_the_trainer_stays_short_and_the_readme_a_guide():
  assert len(open(os.path.join(REPO, 'fashion_jax', 'train.py')).read().splitlines()) < 400
  assert len(open(os.path.join(REPO, 'README.md')).read()) < 10_000


def test_the_lab_is_grouped():
  for folder in ('experiments', 'experiments/results'):
    entries = [e for e in os.listdir(os.path.join(REPO, folder)) if e != '__pycache__']
    assert len(entries) < 12, (folder, sorted(entries))
