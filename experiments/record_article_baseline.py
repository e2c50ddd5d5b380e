"""Records short seed-0 runs of the article's four configs, for tests/test_article_regression.py.

  python experiments/record_article_baseline.py            # writes tests/data/article_baseline.json

Each run is the article's config (configs/cnn1.py, cnn3.py, cnn4.py, vgg19.py with a random 32x32 base)
shrunk the way the tests shrink it: 512 training images, 400 validation and test images, batch 64, one
plain and one augmented epoch (two plain epochs for VGG19, which has no augmented phase). The recorded
numbers pin what the article's configs compute: a change to the core that alters any of them (an
initialiser, a dropout mask, the optimizer's epsilon, the augmentation's draws) fails the test.
"""

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, 'tests')]

# The tests' environment (8 forced CPU devices, which changes how XLA:CPU splits its work and so the
# rounding of CNN-4's BatchNorm ties), set before JAX starts: record what the test will compute.
import conftest  # pylint: disable=wrong-import-position,unused-import
from article_runs import ARTICLE_RUNS, run_article_config  # pylint: disable=wrong-import-position


def main():
  commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True, text=True).stdout.strip()
  recorded = {'commit': commit, 'runs': {}}
  for name in ARTICLE_RUNS:
    with tempfile.TemporaryDirectory() as workdir:
      recorded['runs'][name] = run_article_config(name, workdir)
    print(name, json.dumps(recorded['runs'][name]['phases']))
  path = os.path.join(REPO, 'tests', 'data', 'article_baseline.json')
  with open(path, 'w') as f:
    json.dump(recorded, f, indent=1)
    f.write('\n')
  print('wrote', path)


if __name__ == '__main__':
  main()
