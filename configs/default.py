"""The article's protocol, shared by every model's config (../shared/ARTICLE_SPEC.md).

Phase 1: `num_epochs` (10) epochs, batch 256, Adam with Keras' defaults. Phase 2: `augment_epochs` (50)
more epochs with the article's ImageDataGenerator ranges, continuing the same parameters and optimizer
state. Override anything on the command line: `--config.num_epochs=2 --config.augment_epochs=0`.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.model = 'cnn3'
  config.seed = 0

  config.batch_size = 256
  config.eval_batch_size = 1000
  config.num_epochs = 10  # phase 1
  config.augment_epochs = 50  # phase 2 (augmented)
  config.learning_rate = 1e-3
  config.adam_b1 = 0.9
  config.adam_b2 = 0.999
  config.adam_eps = 1e-7  # Keras' default (optax's is 1e-8)

  # The article's ImageDataGenerator: degrees, fractions of the size, degrees, zoom in [1-z, 1+z].
  config.augment = ml_collections.ConfigDict(dict(
      rotation_range=8.0, width_shift_range=0.08, height_shift_range=0.08, shear_range=0.3,
      zoom_range=0.08, fill_mode='nearest'))
  # The article also augmented its validation batches in phase 2; off by default (it biases val metrics).
  config.augment_validation = False

  # VGG19 transfer (configs/vgg19.py); ignored by the CNNs.
  config.vgg = ml_collections.ConfigDict(dict(
      weights='keras',  # a file path, 'keras' or 'torchvision' (cached/downloaded), or 'random'
      input_size=150,  # the article's; 32 or 48 make CPU runs practical
      preprocessing='auto',  # 'auto' (what the weights expect), 'caffe' or 'torch'
      article_preprocessing=False,  # True: the article's caffe normalisation of pixels already / 255
      feature_batch_size=500,
  ))

  config.data = ml_collections.ConfigDict(dict(
      source='idx',  # 'idx' (the four IDX files) or 'tfds'
      dir='',  # '' = search $FASHION_MNIST_DIR, the user cache, /usr/share/datasets/fashion-mnist
      url='http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
      verify_checksums=True,
      val_fraction=0.2,
      split_seed=13,  # the article's train_test_split(random_state=13)
      train_limit=0,  # > 0: train on the first N training images only (smoke runs, tests)
      eval_limit=0,  # > 0: validate and test on the first N images only
  ))

  # Execution: none of these changes the results beyond float rounding.
  config.parallel = 'auto'  # 'auto' (jit over a device mesh), 'pmap' or 'single'
  config.conv_impl = 'auto'  # 'auto', 'xla' or 'im2col' (models/fast_conv.py)
  config.dtype = 'float32'  # compute dtype: 'float32' or 'bfloat16' (parameters stay float32)
  config.steps_per_call = 0  # 0 = auto: 1 on the CPU, a whole epoch per compiled call elsewhere
  config.checkpoint_every_epochs = 1  # 0 = only at the end of each phase (fast GPUs: epochs take < 1 s)
  config.checkpoint_every_steps = 0  # > 0: also inside epochs (slow machines, long epochs)

  config.report = ml_collections.ConfigDict(dict(
      writer='tensorboard',  # 'tensorboard' (no TensorFlow needed), 'clu' (needs TensorFlow) or 'none'
      progress_seconds=30.0,  # print progress inside an epoch at most this often
      plots=True,  # draw curves, confusion matrix, mistakes, embeddings after the run
      embedding_examples=2500,  # test images whose penultimate features are saved (the article: 2,500)
  ))
  return config
