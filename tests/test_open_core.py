"""The core opened: a model from a file outside the package, and a user's own folder of RGB photos, each
trained end to end (pictures and predict included) with no change to fashion_jax/."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, small_config
from fashion_jax import predict, train

TINY_MODEL = textwrap.dedent('''
    """A user's model, outside the package: what fashion_jax/models/__init__.py asks of one."""
    import jax.numpy as jnp
    from flax import linen as nn


    class TinyNet(nn.Module):
      num_classes: int = 10
      conv_impl: str = 'xla'
      dtype: jnp.dtype = jnp.float32
      hidden: int = 16

      @nn.compact
      def __call__(self, x, train=False, return_features=False):
        x = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))
        features = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
        logits = nn.Dense(self.num_classes)(features)
        return (logits, features) if return_features else logits
''')


def test_a_model_from_a_file_outside_the_package_trains_end_to_end(tmp_path, real_data_dir):
  (tmp_path / 'my_models').mkdir()
  (tmp_path / 'my_models' / 'tiny.py').write_text(TINY_MODEL)
  config = small_config(f'{tmp_path}/my_models/tiny.py:TinyNet', num_epochs=2)
  config.model_kwargs.hidden = 24
  results = train.train_and_evaluate(config, str(tmp_path / 'run'))
  # conv 3*3*1*8 + 8; 'SAME' with stride 2 leaves 14x14x8 -> dense 1568*24 + 24 (hidden=24 from
  # model_kwargs); dense 24*10 + 10.
  assert results['parameters'] == 80 + 1568 * 24 + 24 + 250
  assert results['phases'][0]['test_accuracy'] > 0.4  # 2 epochs on 512 images: far above chance


PLAIN_MODEL = textwrap.dedent('''
    """A plain Flax module: only the number of classes and __call__(x, train)."""
    from flax import linen as nn


    class Plain(nn.Module):
      num_classes: int

      @nn.compact
      def __call__(self, x, train=False):
        x = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))
        x = nn.Dropout(0.1, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))
''')


def test_a_plain_flax_module_trains_from_the_command_line(tmp_path, real_data_dir):
  (tmp_path / 'plain.py').write_text(PLAIN_MODEL)
  workdir = tmp_path / 'run'
  out = subprocess.run([sys.executable, '-m', 'fashion_jax.main', '--config=configs/cnn1.py',
                        f'--workdir={workdir}', f'--config.model={tmp_path}/plain.py:Plain',
                        '--config.parallel=single', '--config.batch_size=64', '--config.num_epochs=2',
                        '--config.augment_epochs=1', '--config.data.train_limit=512',
                        '--config.data.eval_limit=200', '--config.eval_batch_size=200',
                        '--config.report.embedding_examples=100'],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((workdir / 'results.json').read_text())
  assert results['parameters'] == 3 * 3 * 8 + 8 + 14 * 14 * 8 * 10 + 10
  assert results['phases'][-1]['test_accuracy'] > 0.4  # 3 epochs on 512 images: far above chance
  # No return_features: the embedding pictures show the pixels alone, and say so once.
  assert out.stdout.count('returns no features') == 1
  assert (workdir / 'pca.png').exists() and not (workdir / 'features.tsv').exists()
  assert 'tensor_name: "features"' not in (workdir / 'projector_config.pbtxt').read_text()


def _write_folder_dataset(root, per_class=40, size=40, seed=0):
  """Three classes of RGB photos that differ in colour and shape, with noise; PNG and JPEG mixed."""
  rng = np.random.default_rng(seed)
  for k, name in enumerate(('circles', 'squares', 'stripes')):
    (root / name).mkdir(parents=True)
    for i in range(per_class):
      image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
      yy, xx = np.mgrid[:size, :size]
      if k == 0:
        mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
      elif k == 1:
        mask = (abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4)
      else:
        mask = (xx // 4) % 2 == 0
      image[mask, k] = 200 + rng.integers(0, 55)
      Image.fromarray(image).save(root / name / f'{i}.{"png" if i % 2 else "jpg"}')
  return root


def test_a_folder_of_rgb_photos_trains_draws_and_predicts(tmp_path):
  folder = _write_folder_dataset(tmp_path / 'photos')
  config = small_config('cnn3', num_epochs=6, batch_size=16, eval_batch_size=8, learning_rate=3e-3,
                        **{'data.source': 'folder', 'data.dir': str(folder), 'data.image_size': 32,
                           'data.channels': 3, 'data.train_limit': 0, 'data.eval_limit': 0})
  config.report.plots = True
  config.report.embedding_examples = 24
  workdir = tmp_path / 'run'
  results = train.train_and_evaluate(config, str(workdir))
  assert results['data'] == {'name': 'photos', 'image_shape': [32, 32, 3],
                             'class_names': ['circles', 'squares', 'stripes']}
  assert np.array(results['confusion_matrix']).shape == (3, 3)
  assert set(results['per_class_accuracy']) == {'circles', 'squares', 'stripes'}
  assert results['phases'][0]['test_accuracy'] > 0.6  # colours and shapes: easy to tell apart
  for picture in ('curves.png', 'confusion_matrix.png', 'mistakes.png', 'augment_examples.png', 'pca.png',
                  'tsne.png', 'projection.png', 'sprite.png'):
    assert (workdir / picture).exists(), picture
  assert np.asarray(Image.open(workdir / 'sprite.png')).shape == (5 * 32, 5 * 32, 3)  # 24 tiles: 5 a side
  assert 'single_image_dim: 32' in (workdir / 'projector_config.pbtxt').read_text()

  # predict, as a user calls it: a new photo of each class, of another size.
  new = _write_folder_dataset(tmp_path / 'new', per_class=2, size=64, seed=1)
  paths = [str(new / name / '0.jpg') for name in ('circles', 'squares', 'stripes')]
  out = subprocess.run([sys.executable, '-m', 'fashion_jax.predict', f'--workdir={workdir}', '--json',
                        *paths], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  predictions = json.loads(out.stdout)['predictions']
  assert [p['top'][0]['class'] for p in predictions] == ['circles', 'squares', 'stripes']
  image = predict.to_dataset_form(paths[0], (32, 32, 3), light_on_dark=False)
  assert image.shape == (32, 32, 3) and image.dtype == np.uint8


@pytest.mark.parametrize('name, small_model', [
    ('resnet', {'stage_sizes': (1, 1, 1, 1), 'widths': (8, 16, 16, 32)}),
    ('wrn', {'depth': 10, 'widen_factor': 1}),
])
def test_the_resnet_and_wrn_recipes_run(tmp_path, real_data_dir, name, small_model):
  # The configs as they are (SGD with Nesterov, warm-up and cosine, label smoothing, EMA, flip TTA,
  # flips, crops and erasing in phase 2), on a narrower model and 128 images to stay fast on 2 cores.
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f'configs.{name}').get_config()
  config.parallel = 'single'
  config.num_epochs, config.augment_epochs = 1, 2
  config.batch_size, config.eval_batch_size = 32, 100
  config.data.train_limit, config.data.eval_limit = 128, 200
  config.report.plots = False
  config.report.progress_seconds = 0.0
  for key, value in small_model.items():
    config.model_kwargs[key] = value
  results = train.train_and_evaluate(config, str(tmp_path))
  history = [json.loads(line) for line in open(tmp_path / 'history.jsonl')]
  assert [h['phase'] for h in history] == ['phase1', 'phase2', 'phase2']
  assert all(np.isfinite(h['train_loss']) for h in history)
  rates = [h['learning_rate'] for h in history]
  assert rates[0] < rates[1] and rates[2] < rates[1]  # warm-up over the first two epochs, then the decay
  for key in ('test_accuracy', 'ema_test_accuracy', 'tta_flip_test_accuracy'):
    assert 0 <= results['phases'][-1][key] <= 1


def test_every_config_file_is_valid_and_builds_its_model():
  # Configs that only a GPU runs in full (the speedruns, the recipes) are otherwise checked nowhere on CPU.
  import glob  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import linen as nn  # pylint: disable=g-import-not-at-top
  from fashion_jax import models, validate  # pylint: disable=g-import-not-at-top
  names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 if not os.path.basename(p).startswith('_') and os.path.basename(p) not in ('plus.py',))
  assert {'cnn3', 'speedrun_gpu_convnet', 'speedrun_gpu_wrn', 'wrn', 'wrn40_4'} <= set(names)
  for name in names:
    config = importlib.import_module(f'configs.{name}').get_config()
    validate.validate(config)
    model = models.create_model(config)
    assert isinstance(model, nn.Module), name
    if config.model != 'vgg19':  # the transfer head's input is the frozen base's features, not images
      shapes = jax.eval_shape(lambda m=model: m.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)), train=False))
      assert jax.tree.leaves(shapes['params']), name  # the model builds on Fashion-MNIST's images


def test_the_guide_names_every_setting():
  # docs/guide.md names each key of configs/default.py: dotted (`data.dir`, `config.vgg.weights`), or as a
  # bare name in a `group.*` entry, so a new setting cannot go undocumented there.
  sys.path.insert(0, REPO)
  from configs import default  # pylint: disable=g-import-not-at-top
  guide = open(os.path.join(REPO, 'docs', 'guide.md')).read()

  def keys(tree, prefix=''):
    for name, value in tree.items():
      if isinstance(value, dict) and value:
        yield from keys(value, f'{prefix}{name}.')
      else:
        yield prefix + name

  def group_entries(group):
    """The guide's text from each `group.*` to the end of its bullet (where its bare names stand)."""
    return [guide[start:guide.find('\n- ', start)] for start in
            (m.start() for m in re.finditer(re.escape(f'`{group}.*`'), guide))]

  def named(key):
    group, _, leaf = key.rpartition('.')
    return (f'`{key}`' in guide or f'`{key}.*`' in guide
            or re.search(rf'config\.{re.escape(key)}(?![\w.])', guide) is not None
            or any(f'`{leaf}`' in entry for entry in group_entries(group)))

  settings = list(keys(default.get_config().to_dict()))
  assert len(settings) > 50 and 'augment.fill_mode' in settings
  assert [key for key in settings if not named(key)] == []
