"""Every `experiments/...` path that the README, the docs, the configs and the library's comments cite
exists: the lab is regrouped from time to time, and a guide that sends a reader to a missing file is
wrong."""

import glob
import os
import re

from conftest import REPO

# A path as prose cites it: letters, digits, '_', '-', '.', '/', '*' (a glob), up to punctuation; after
# `--out=` it is an output to be written, whose folder must exist.
CITED = re.compile(r'(--out=)?(experiments/[\w./*<>-]*[\w/*])')


def _citing_files():
  patterns = ['README.md', 'docs/*.md', 'configs/*.py', 'fashion_jax/**/*.py', '.ci/run']
  return sorted({p for pattern in patterns for p in glob.glob(os.path.join(REPO, pattern), recursive=True)})


def cited_paths():
  """{(citing file, cited path)} of every experiments/ path cited outside experiments/."""
  found = set()
  for path in _citing_files():
    with open(path) as f:
      for out, cited in CITED.findall(f.read()):
        found.add((os.path.relpath(path, REPO), os.path.dirname(cited) + '/' if out else cited))
  return found


def _exists(path):
  """A file or folder, a glob's matches, or an output prefix (`--out=.../x` writes x.jsonl and x.md)."""
  return bool(glob.glob(path) or glob.glob(path + '.*'))


def test_every_cited_experiments_path_exists():
  found = cited_paths()
  assert len(found) > 10, 'the README and the docs cite the lab'
  missing = sorted((citing, cited) for citing, cited in found
                   if '<' not in cited  # a template (`--out=experiments/results/x-<processor>`)
                   and not _exists(os.path.join(REPO, cited.rstrip('/'))))
  assert missing == []
