"""VGG19 transfer learning: the frozen base's features, computed once per run on the device.

With the base frozen and no augmentation, every epoch would feed the head the same features, so they
are computed once for the train, validation and test images and the head trains on them: `FeatureStage`
is the input stage (inputs.py) of the 'vgg19' model, whose head declares it. The base's parameters are
not part of the training state at all, so they cannot change.
"""

import collections
import time

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import mixing as mixing_lib
from fashion_jax import randomness, steps
from fashion_jax.progress import Progress
from fashion_jax.errors import UserError
from fashion_jax.models import DTYPES, vgg, vgg_weights


def resolve_weights(vgg_config, seed):
  """(base params, preprocessing mode, description) for config.vgg."""
  weights = vgg_config.weights
  if weights == 'random':
    init = jax.jit(vgg.VGG19Features().init)  # compiled: far faster than 16 layers run op by op
    params = init(randomness.stream_key(seed, randomness.VGG_BASE), jnp.zeros((1, 32, 32, 3)))['params']
    params, weights_preprocessing, description = jax.device_get(params), 'caffe', 'random (untrained)'
  else:
    path = vgg_weights.fetch_known(weights) if weights in vgg_weights.KNOWN else weights
    params, weights_preprocessing = vgg_weights.load(path)
    description = f'pretrained, from {path}'
  preprocessing = vgg_config.preprocessing
  if preprocessing == 'auto':
    preprocessing = weights_preprocessing or 'caffe'
  if vgg_config.article_preprocessing:
    if preprocessing != 'caffe':
      raise UserError('config.vgg.article_preprocessing=True reproduces Keras\' caffe normalisation of '
                      f'pixels / 255; the {weights!r} weights use {preprocessing!r}')
    preprocessing = 'article'
  if preprocessing not in vgg.PREPROCESSING:
    raise UserError(f'config.vgg.preprocessing={vgg_config.preprocessing!r}: expected \'auto\' or one of '
                    f'{vgg.PREPROCESSING}')
  return params, preprocessing, description


def features_function(config, preprocessing):
  """fn(base variables, uint8 images) -> float32 features: pure, for jit (or jax.export)."""
  module = vgg.VGG19Transfer(input_size=config.vgg.input_size, preprocessing=preprocessing,
                             dtype=DTYPES[config.dtype], conv_impl=config.conv_impl)
  return lambda v, x: module.apply(v, steps.to_float_images(x), method='features').astype(jnp.float32)


def feature_extractor(config, base_params, preprocessing):
  """fn(uint8 images) -> float32 features, batched, on the default device."""
  # Onto the device once: passed as host arrays, the base's 80 MB of weights would be copied to the
  # device again with every batch.
  variables = jax.device_put({'params': {'base': base_params}})
  extract = jax.jit(features_function(config, preprocessing))

  def run(images, what='VGG19 features'):
    if not len(images):  # a split with no images (config.data.val_fraction=0)
      return np.zeros((0,) + tuple(vgg.features_shape(config.vgg.input_size)), np.float32)
    batch = config.vgg.feature_batch_size
    chunks, in_flight = [], collections.deque()
    progress = Progress(f'{what} ({config.vgg.input_size}x{config.vgg.input_size})', len(images),
                        config.report.progress_seconds)
    for i in range(0, len(images), batch):
      chunk = images[i:i + batch]
      # Pad the last chunk to a whole batch: one compiled program for every call.
      padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], chunk.dtype)])
      features = extract(variables, jax.device_put(padded))
      features.copy_to_host_async()
      in_flight.append((features, len(chunk)))
      # Dispatch is asynchronous: the device computes this batch while the host waits for the
      # previous one's features, instead of idling while they are copied and the next batch is sent.
      if len(in_flight) > 1:
        features, n = in_flight.popleft()
        chunks.append(np.asarray(features)[:n])
        progress.update(sum(len(c) for c in chunks))
    chunks += [np.asarray(features)[:n] for features, n in in_flight]
    progress.done()
    return np.concatenate(chunks)
  return run


class FeatureStage:
  """Images -> the frozen base's features, for the head's training, evaluation and predictions.

  `check` refuses what features computed once cannot do (augmentation, mirrored test images);
  `__call__` computes the features of uint8 images; `results` is what results.json says of the base.
  """
  results_key = 'vgg19'

  def __init__(self, config):
    self.config = config
    base_params, self.preprocessing, self.weights = resolve_weights(config.vgg, config.seed)
    self.frozen_parameters = int(sum(np.size(x) for x in jax.tree.leaves(base_params)))
    self._base_params = base_params
    self._extract = feature_extractor(config, base_params, self.preprocessing)
    self.shape = vgg.features_shape(config.vgg.input_size)
    self.seconds = 0.0
    self.images = 0

  @staticmethod
  def check(config, phases):
    """A UserError for settings that need images, not features computed once (before any weights load)."""
    for phase in phases:
      if phase.augment and phase.epochs:
        raise UserError(f'config.{phase.epochs_setting}={phase.epochs}: the VGG19 transfer model trains its '
                        'head on features computed once, which cannot be augmented; set it to 0')
    if mixing_lib.Mixing.from_config(config.mix).enabled:
      raise UserError('config.mix: the VGG19 head trains on features computed once, not on images that could '
                      'be mixed; set its alphas to 0')
    for setting in ('tta_flip', 'tta_crops'):
      if config[setting]:
        raise UserError(f'config.{setting}=True: the VGG19 head sees features computed once, not images '
                        'that could be mirrored or moved; set it to False')

  def __call__(self, images, what='VGG19 features'):
    start = time.time()
    features = self._extract(images, what)
    self.seconds += time.time() - start
    self.images += len(images)
    return features

  def traceable(self):
    """images -> features as one traceable function, the base's weights inside (for export.py)."""
    fn, variables = features_function(self.config, self.preprocessing), {'params': {'base': self._base_params}}
    return lambda images: fn(variables, images)

  def results(self):
    return {'weights': self.weights, 'preprocessing': self.preprocessing,
            'input_size': self.config.vgg.input_size, 'frozen_parameters': self.frozen_parameters,
            'feature_seconds': self.seconds, 'feature_images_per_second': self.images / max(self.seconds, 1e-9)}
