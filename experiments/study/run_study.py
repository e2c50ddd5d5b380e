"""The reproduction study: each model with the article's full protocol, for several seeds.

  python -m experiments.study.run_study --root=runs/study --models=cnn1,cnn3,cnn4 --seeds=3

Each (model, seed) trains in its own workdir, `<root>/<model>-seed<seed>`, with all devices available.
Rerunning skips finished runs and resumes interrupted ones (each workdir resumes from its checkpoint).
Runs go seed by seed (every model's seed 0 first), so a study cut short still covers every model.
Then `python -m experiments.study.study_report --root=<root>` writes the report.
"""

import importlib
import os
import sys
import time

from absl import app, flags, logging

from experiments import lab
from fashion_jax import train
from fashion_jax.errors import UserError

FLAGS = flags.FLAGS


def define_flags():
  """Defined when run as a script: other experiments define flags of the same names (--models, --root),
  and absl refuses a name defined twice in one process."""
  flags.DEFINE_string('root', 'runs/study', 'Folder that holds one workdir per run.')
  flags.DEFINE_list('models', ['cnn1', 'cnn3', 'cnn4'], 'Models (configs/<model>.py).')
  flags.DEFINE_integer('seeds', 3, 'How many seeds: seed_offset .. seed_offset + seeds - 1.')
  flags.DEFINE_integer('seed_offset', 0, 'The first seed.')
  flags.DEFINE_multi_string('set', [], 'Config overrides, key=value (e.g. report.plots=False).')


def study_config(model, seed, overrides=()):
  config = importlib.import_module(f'configs.{model}').get_config()
  config.seed = seed
  for assignment in overrides:
    lab.apply_override(config, assignment)
  return config


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  # Later runs of the same model load their compiled programs instead of compiling again.
  jax.config.update('jax_compilation_cache_dir', os.path.join(FLAGS.root, '.jax_cache'))
  for seed in range(FLAGS.seed_offset, FLAGS.seed_offset + FLAGS.seeds):
    for model in FLAGS.models:
      workdir = os.path.join(FLAGS.root, f'{model}-seed{seed}')
      start = time.time()
      print(f'=== {workdir}', flush=True)
      try:
        results = train.train_and_evaluate(study_config(model, seed, FLAGS.set), workdir)
      except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
      print(f'=== {workdir}: {[round(p["test_accuracy"], 4) for p in results["phases"]]} '
            f'in {time.time() - start:.1f} s', flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
