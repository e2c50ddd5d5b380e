"""fashion_jax.export: a run's best checkpoint served without the package, its predictions predict's."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, small_config
from fashion_jax import export, predict, train
from fashion_jax.datasets import idx

# Runs `load_exported.py` (or the given code) with fashion_jax impossible to import: the export must
# stand alone.
WITHOUT_FASHION_JAX = '''
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name == 'fashion_jax' or name.startswith('fashion_jax.'):
      raise ImportError('fashion_jax is blocked in this process')
sys.meta_path.insert(0, _Blocked())
sys.path = [p for p in sys.path if p not in ('', %(repo)r)]
sys.argv = %(argv)r
exec(compile(open(sys.argv[0]).read(), sys.argv[0], 'exec'), {'__name__': '__main__', '__file__': sys.argv[0]})
'''


def _run_standalone(argv, tmp_path):
  code = WITHOUT_FASHION_JAX % {'repo': REPO, 'argv': argv}
  return subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), capture_output=True, text=True,
                        timeout=300, env=dict(os.environ, JAX_PLATFORMS='cpu'))


@pytest.fixture(scope='module')
def exported_run(tmp_path_factory, real_data_dir):
  workdir = tmp_path_factory.mktemp('run')
  train.train_and_evaluate(small_config('cnn1', num_epochs=1), str(workdir))
  return workdir, export.export(str(workdir))


def test_the_exported_classifier_runs_without_the_package_and_predicts_as_predict(exported_run, real_data_dir,
                                                                                  tmp_path):
  workdir, out = exported_run
  images = idx.read_idx_dir(real_data_dir, verify_checksums=False)['test_images'][:37, ..., None]
  np.save(tmp_path / 'images.npy', images)
  script = tmp_path / 'reload.py'
  script.write_text(f'''
import jax, numpy as np
with open({os.path.join(out, 'classifier.jax')!r}, 'rb') as f:
  exported = jax.export.deserialize(bytearray(f.read()))
np.save({str(tmp_path / 'probabilities.npy')!r}, np.asarray(exported.call(np.load({str(tmp_path / 'images.npy')!r}))))
''')
  run = _run_standalone([str(script)], tmp_path)
  assert run.returncode == 0, run.stderr[-3000:]
  reloaded = np.load(tmp_path / 'probabilities.npy')
  expected = predict.Classifier(str(workdir)).probabilities(images)
  assert reloaded.shape == (37, 10) and reloaded.dtype == np.float32
  np.testing.assert_allclose(reloaded, expected, rtol=1e-5, atol=1e-6)
  # Its own loader, as a user runs it: the same classes as predict's.
  loader = _run_standalone([os.path.join(out, 'load_exported.py'), str(tmp_path / 'images.npy')], tmp_path)
  assert loader.returncode == 0, loader.stderr[-3000:]
  classes = json.load(open(os.path.join(out, 'classes.json')))['class_names']
  assert [line.split()[0] for line in loader.stdout.splitlines()] == [
      classes[k].split()[0] for k in expected.argmax(1)]


def test_the_saved_model_reloads_in_tensorflow_and_predicts_as_predict(exported_run, real_data_dir, tmp_path):
  pytest.importorskip('tensorflow')
  workdir, out = exported_run
  images = idx.read_idx_dir(real_data_dir, verify_checksums=False)['test_images'][:20, ..., None]
  np.save(tmp_path / 'images.npy', images)
  script = tmp_path / 'reload_tf.py'
  script.write_text(f'''
import numpy as np, tensorflow as tf
model = tf.saved_model.load({os.path.join(out, 'saved_model')!r})
np.save({str(tmp_path / 'tf.npy')!r}, model.serve(tf.constant(np.load({str(tmp_path / 'images.npy')!r}))).numpy())
''')
  run = _run_standalone([str(script)], tmp_path)
  assert run.returncode == 0, run.stderr[-3000:]
  np.testing.assert_allclose(np.load(tmp_path / 'tf.npy'), predict.Classifier(str(workdir)).probabilities(images),
                             rtol=1e-5, atol=1e-6)


def test_the_vgg19_base_goes_inside_the_export(tmp_path, real_data_dir):
  workdir = tmp_path / 'vgg'
  train.train_and_evaluate(small_config('vgg19', **{'vgg.weights': 'random', 'vgg.input_size': 32,
                                                    'data.train_limit': 128, 'data.eval_limit': 200}),
                           str(workdir))
  out = export.export(str(workdir), saved_model=False)
  import jax  # pylint: disable=g-import-not-at-top
  with open(os.path.join(out, 'classifier.jax'), 'rb') as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  images = idx.read_idx_dir(real_data_dir, verify_checksums=False)['test_images'][:8, ..., None]
  np.testing.assert_allclose(exported.call(images), predict.Classifier(str(workdir)).probabilities(images),
                             rtol=1e-4, atol=1e-6)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
  out = subprocess.run([sys.executable, '-m', 'fashion_jax.export', f'--workdir={tmp_path}'], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [f'error: --workdir={tmp_path}: no config.json there (not a run\'s '
                                             'workdir)']
  assert not os.path.exists(tmp_path / 'export')
