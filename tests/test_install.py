"""`pip install -e .` and `pip install -r requirements.txt` install the same packages."""

import os

import pytest

from conftest import REPO


def requirement_lines(path):
  """The requirement specifiers of a requirements file, comments and blank lines left out."""
  with open(path) as f:
    return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


def test_pyproject_declares_what_requirements_txt_installs():
  tomllib = pytest.importorskip('tomllib')  # Python 3.11+
  with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
    project = tomllib.load(f)['project']
  assert sorted(project['dependencies']) == sorted(requirement_lines(os.path.join(REPO, 'requirements.txt')))
  # The optional readers: TensorFlow for TFDS and clu's writers, torch for torchvision's .pth weights.
  assert project['optional-dependencies'] == {'tensorflow': ['tensorflow-cpu', 'tensorflow-datasets'],
                                             'torch': ['torch']}
