"""Pictures, embeddings and predict: files, formats, PCA against numpy, the projection axis, bad input."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from conftest import small_config
from fashion_jax import checkpoint, embeddings, run_files, train
from fashion_jax.data import CLASS_NAMES
from fashion_jax.datasets import idx
from fashion_jax.errors import UserError
from fashion_jax.models import create_model


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory, real_data_dir):
  workdir = tmp_path_factory.mktemp('run')
  config = small_config('cnn1', num_epochs=1, augment_epochs=1)
  config.report.plots = True
  config.report.embedding_examples = 300
  results = train.train_and_evaluate(config, str(workdir))
  return workdir, results


def test_a_run_leaves_its_pictures(finished_run):
  workdir, results = finished_run
  for name in ('curves.png', 'confusion_matrix.png', 'mistakes.png', 'augment_examples.png', 'pca.png',
               'tsne.png', 'projection.png', 'sprite.png'):
    image = Image.open(workdir / name)
    assert image.size[0] > 300 and image.size[1] > 200, name
  counts = np.array(results['confusion_matrix'])
  assert counts.shape == (10, 10) and counts.sum() == 400
  accuracy = results['phases'][-1]['test_accuracy']
  assert np.trace(counts) / counts.sum() == pytest.approx(accuracy, abs=1e-6)
  assert set(results['per_class_accuracy']) == set(CLASS_NAMES)


def test_projector_files_have_the_documented_format(finished_run):
  workdir, _ = finished_run
  metadata = (workdir / 'metadata.tsv').read_text().splitlines()
  assert metadata[0] == 'Index\tLabel' and len(metadata) == 301
  assert metadata[1].split('\t')[1] in CLASS_NAMES
  pixels = np.loadtxt(workdir / 'pixels.tsv', delimiter='\t')
  features = np.loadtxt(workdir / 'features.tsv', delimiter='\t')
  assert pixels.shape == (300, 784) and features.shape == (300, 128)
  sprite = np.asarray(Image.open(workdir / 'sprite.png'))
  assert sprite.shape == (18 * 28, 18 * 28)  # ceil(sqrt(300)) = 18 tiles a side
  config = (workdir / 'projector_config.pbtxt').read_text()
  assert config.count('embeddings {') == 2 and 'single_image_dim: 28' in config


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_tensorboard_projector_serves_the_embeddings(finished_run):
  workdir, _ = finished_run
  port = _free_port()
  server = subprocess.Popen([sys.executable, '-m', 'tensorboard.main', f'--logdir={workdir}', '--host=127.0.0.1',
                             f'--port={port}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  base = f'http://127.0.0.1:{port}/data/plugin/projector'
  try:
    deadline = time.time() + 60
    while True:
      try:
        runs = json.load(urllib.request.urlopen(f'{base}/runs', timeout=5))
        if runs:
          break
      except OSError:
        pass
      assert time.time() < deadline, 'TensorBoard did not serve the projector in 60 s'
      time.sleep(1)
    run = runs[0]
    info = json.load(urllib.request.urlopen(f'{base}/info?run={run}', timeout=10))
    assert sorted(e['tensorName'] for e in info['embeddings']) == ['features', 'pixels']
    tensor = urllib.request.urlopen(f'{base}/tensor?run={run}&name=features', timeout=10).read()
    assert len(tensor) == 300 * 128 * 4  # float32 values
    metadata = urllib.request.urlopen(f'{base}/metadata?run={run}&name=pixels', timeout=10).read().decode()
    assert metadata.splitlines()[0] == 'Index\tLabel'
  finally:
    server.terminate()
    server.wait(timeout=30)


def test_pca_matches_numpy_svd():
  x = np.random.default_rng(0).normal(size=(200, 12)) @ np.diag(np.arange(12, 0, -1.0))
  projected, components, ratio = (np.asarray(a) for a in embeddings.pca(jnp.asarray(x, jnp.float32)))
  centred = x - x.mean(0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)
  np.testing.assert_allclose(ratio, s ** 2 / np.sum(s ** 2), rtol=1e-4)
  # Components are defined up to sign.
  signs = np.sign(np.sum(components * vt, axis=1))
  np.testing.assert_allclose(components * signs[:, None], vt, atol=1e-4)
  np.testing.assert_allclose(projected * signs, centred @ vt.T, atol=1e-3)


def test_projection_axis_is_the_normalised_centroid_difference():
  x = np.array([[0., 0.], [2., 0.], [10., 4.], [12., 4.], [5., 5.]])
  labels = np.array([0, 6, 7, 5, 1])  # T-shirt/top, Shirt | Sneaker, Sandal | Trouser
  axis = embeddings.projection_axis(x, labels, 'Shirt|T-shirt/top', 'Sneaker|Sandal', CLASS_NAMES)
  # Centroids (1, 0) and (11, 4): the difference (10, 4), normalised.
  np.testing.assert_allclose(axis, np.array([10., 4.]) / np.hypot(10, 4))


@pytest.mark.parametrize('pattern, message', [('Hat|Scarf', 'matches no class'), ('(', 'is invalid')])
def test_projection_rejects_expressions_that_match_nothing(pattern, message):
  with pytest.raises(UserError, match=message):
    embeddings.projection_axis(np.zeros((3, 2)), np.array([0, 1, 8]), pattern, 'Bag', CLASS_NAMES)


def test_redraw_command_redraws_from_files(finished_run):
  workdir, _ = finished_run
  os.remove(workdir / 'curves.png')
  result = subprocess.run([sys.executable, '-m', 'fashion_jax.redraw', f'--workdir={workdir}',
                           '--noembeddings'], capture_output=True, text=True, check=False, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert (workdir / 'curves.png').exists()
  bad = subprocess.run([sys.executable, '-m', 'fashion_jax.redraw', f'--workdir={workdir}/nothing'],
                       capture_output=True, text=True, check=False, timeout=300)
  assert bad.returncode == 2 and 'no config.json there' in bad.stderr


def test_predict_treats_dataset_pngs_exactly_as_the_evaluation(finished_run, tmp_path, real_data_dir):
  from fashion_jax import data, predict  # pylint: disable=g-import-not-at-top
  workdir, _ = finished_run
  test_images = idx.read_idx_dir(real_data_dir)['test_images'][:12][..., None]
  paths = []
  for i, image in enumerate(test_images):
    paths.append(tmp_path / f'test{i}.png')
    Image.fromarray(image[..., 0]).save(paths[-1])
  converted = np.stack([predict.to_dataset_form(p) for p in paths])
  # The PNG round trip and predict's conversion change nothing: predict sees the evaluation's pixels.
  np.testing.assert_array_equal(converted, test_images)
  probabilities = predict.Classifier(str(workdir)).probabilities(converted)
  assert probabilities.shape == (12, 10)
  # The best checkpoint's softmax of pixels / 255, restored here on its own (the same restore steps as
  # Classifier's; what this adds is the pixels' scaling and that the best weights, not fresh ones, answer).
  model = create_model(ml_collections.ConfigDict(run_files.read_run_config(str(workdir))), num_classes=10)
  initial = model.init(jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32), train=False)
  best, _ = checkpoint.Checkpointer(str(workdir / 'best'), max_to_keep=1).restore_latest(
      jax.device_get({'params': initial['params'], 'batch_stats': initial.get('batch_stats', {})}))
  expected = jax.nn.softmax(model.apply(best, test_images.astype(np.float32) / 255.0, train=False))
  np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_predict_converts_any_photo_to_a_light_object_on_dark(tmp_path):
  from fashion_jax import predict  # pylint: disable=g-import-not-at-top
  photo = np.full((200, 120, 3), 240, np.uint8)  # light backdrop, RGB, not square
  photo[20:180, 30:55] = (20, 30, 90)  # two dark legs: a pair of trousers
  photo[20:180, 65:90] = (20, 30, 90)
  Image.fromarray(photo).save(tmp_path / 'trousers.jpg')
  image = predict.to_dataset_form(tmp_path / 'trousers.jpg')
  assert image.shape == (28, 28, 1) and image.dtype == np.uint8
  image = image[..., 0]
  assert image[:, :3].mean() < 30 and image[12:16, 10:12].mean() > 150  # dark padding, light legs


def test_predict_command_reports_unreadable_files_and_goes_on(finished_run, tmp_path, real_data_dir):
  from fashion_jax import data  # pylint: disable=g-import-not-at-top
  workdir, _ = finished_run
  Image.fromarray(idx.read_idx_dir(real_data_dir)['test_images'][0]).save(tmp_path / 'boot.png')
  (tmp_path / 'notes.png').write_text('not an image')
  result = subprocess.run([sys.executable, '-m', 'fashion_jax.predict', f'--workdir={workdir}', '--json',
                           str(tmp_path / 'notes.png'), str(tmp_path / 'boot.png')],
                          capture_output=True, text=True, check=False, timeout=300)
  assert result.returncode == 2
  assert 'notes.png: cannot read it as an image' in result.stderr
  output = json.loads(result.stdout)
  assert [p['file'] for p in output['predictions']] == [str(tmp_path / 'boot.png')]
  top = output['predictions'][0]['top']
  assert len(top) == 3 and top[0]['probability'] >= top[1]['probability'] >= top[2]['probability']
  assert {t['class'] for t in top} <= set(CLASS_NAMES)
