"""What a model is fed: the data set's images, or what a frozen network computes from them once.

Most models take the images: uint8 on the device, made floats in [0, 1] inside each step (and augmented
there). A model class may instead declare an input stage, `input_stage = 'vgg19_features'`: a frozen
network whose outputs are computed once for every image, before training, and then are the model's
data set (the article's VGG19 head, transfer.FeatureStage). The trainer, the evaluators and predict see
only `ModelInputs`, whatever produced them.
"""

import dataclasses
from typing import Callable

import numpy as np

from fashion_jax import steps
from fashion_jax.errors import UserError
from fashion_jax.models import resolve


def _stages():
  from fashion_jax import transfer  # pylint: disable=g-import-not-at-top  # the VGG19 port, only where used
  return {'vgg19_features': transfer.FeatureStage}


@dataclasses.dataclass
class ModelInputs:
  """Each split's model inputs (train, val, test) and labels, and how a gathered batch becomes the
  model's input on the device (`prepare`)."""
  train: np.ndarray
  train_labels: np.ndarray
  val: np.ndarray
  val_labels: np.ndarray
  test: np.ndarray
  test_labels: np.ndarray
  class_names: tuple
  shape: tuple  # one example's
  prepare: Callable = steps.to_float_images
  augmentable: bool = True  # images can be augmented and mirrored in the step; features cannot
  stage: object = None  # the input stage that computed them, or None for images

  @property
  def num_classes(self):
    return len(self.class_names)

  def results(self):
    """What results.json records of the stage ({'vgg19': ...}), and the stage's frozen parameters."""
    if self.stage is None:
      return {}, 0
    return {self.stage.results_key: self.stage.results()}, self.stage.frozen_parameters


def stage_class(config):
  """The input stage class that config.model declares, or None (it takes the images)."""
  name = getattr(resolve(config.model), 'input_stage', None)
  if name is None:
    return None
  stages = _stages()
  if name not in stages:
    raise UserError(f'config.model={config.model!r}: its input_stage {name!r} is not one of {sorted(stages)}')
  return stages[name]


def check(config, phases):
  """Refuses settings the model's input stage cannot serve, before any data is read."""
  stage = stage_class(config)
  if stage is not None:
    stage.check(config, phases)


def model_inputs(config, dataset):
  """The `ModelInputs` of `dataset` for config.model: its images, or its input stage's outputs."""
  splits = dict(train=dataset.train_images, train_labels=dataset.train_labels, val=dataset.val_images,
                val_labels=dataset.val_labels, test=dataset.test_images, test_labels=dataset.test_labels,
                class_names=dataset.class_names)
  stage = stage_class(config)
  if stage is None:
    return ModelInputs(**splits, shape=dataset.image_shape)
  stage = stage(config)
  for split in ('train', 'val', 'test'):
    splits[split] = stage(splits[split], f'{split} images\' features')
  return ModelInputs(**splits, shape=tuple(stage.shape), prepare=lambda x: x, augmentable=False, stage=stage)


class _Images:
  """The stage of a model that takes the images themselves."""

  def __call__(self, images, what=''):
    del what
    return images

  def traceable(self):
    return lambda images: images


def for_prediction(config, conv_impl=None):
  """(the stage from uint8 images to model inputs: called on the host, or `traceable()` inside a jitted
  function; the shape of one input, None for the images' own; `prepare`) for classifying new images
  with the model of `config`; `conv_impl` replaces config.conv_impl in the stage."""
  stage = stage_class(config)
  if stage is None:
    return _Images(), None, steps.to_float_images
  if conv_impl:
    config = config.copy_and_resolve_references()
    config.conv_impl = conv_impl
  stage = stage(config)
  return stage, tuple(stage.shape), lambda x: x
