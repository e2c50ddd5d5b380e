"""Every setting, with its default: the article's protocol (docs/article.md).

Phase 1: `num_epochs` (10) epochs, batch 256, Adam with Keras' defaults and a constant learning rate.
Phase 2: `augment_epochs` (50) more epochs with the article's ImageDataGenerator ranges, continuing the
same parameters and optimizer state. Everything added beyond the article (other models, data sets,
optimizers, schedules, label smoothing, EMA, test-time flips, more augmentations) is off by default, so
the article's configs compute what they always did. Override anything on the command line:
`--config.num_epochs=2 --config.augment_epochs=0 --config.optimizer.name=sgd`.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  # A registered name (cnn1, cnn3, cnn4, vgg19, preact_resnet18, preact_resnet, wrn, convnet), or
  # 'package.module:Class' or 'path/to/file.py:Class' for a model of your own
  # (fashion_jax/models/__init__.py says what it takes).
  config.model = 'cnn3'
  # The model's own options, e.g. wrn's depth=16, widen_factor=4.
  config.model_kwargs = ml_collections.ConfigDict()
  config.seed = 0

  config.batch_size = 256
  config.eval_batch_size = 1000
  # Epochs may be fractional (floats, as Flax's examples count them): a run's last phase then ends
  # inside its last epoch, after that fraction of the epoch's steps.
  config.num_epochs = 10.0  # phase 1
  config.augment_epochs = 50.0  # phase 2 (augmented)
  # The protocol: phases in order, each {'name', 'epochs' (a number, or the setting above that holds it),
  # 'augment' (False, True for config.augment, or a dict of config.augment settings for this phase)}
  # (fashion_jax/phases.py). A curriculum, for example:
  #   config.phases = ({'name': 'plain', 'epochs': 2}, {'name': 'warped', 'epochs': 2, 'augment': True},
  #                    {'name': 'flipped', 'epochs': 2, 'augment': {'flip': True, 'rotation_range': 0.0}})
  config.phases = ({'name': 'phase1', 'epochs': 'num_epochs', 'augment': False},
                   {'name': 'phase2', 'epochs': 'augment_epochs', 'augment': True})
  config.learning_rate = 1e-3  # the peak learning rate of the schedule
  # > 1: each update's batch (batch_size) is computed as this many micro-batches, one after the other, and
  # their gradients averaged: a batch larger than memory holds. The same numbers, to float rounding, for a
  # model without BatchNorm (which normalises each micro-batch with its own statistics).
  config.grad_accum_steps = 1

  config.optimizer = ml_collections.ConfigDict(dict(
      name='adam',  # 'adam', 'adamw' or 'sgd'
      b1=0.9, b2=0.999, eps=1e-7,  # adam/adamw; eps is Keras' default (optax's is 1e-8)
      momentum=0.9, nesterov=False,  # sgd (momentum 0 = plain SGD)
      weight_decay=0.0,  # adamw: decoupled; sgd: L2 added to the gradient; applies to kernels only
      grad_clip_norm=0.0,  # > 0: clip gradients to this global norm first
  ))
  config.schedule = ml_collections.ConfigDict(dict(
      name='constant',  # 'constant', 'step', 'cosine' or 'onecycle'
      over='run',  # 'run': one schedule over both phases' steps; 'phase': restarted for each phase
      warmup_epochs=0.0,  # linear warm-up from 0 (constant, step, cosine; onecycle has its own)
      step_epochs=(),  # step: epochs (within the schedule) after which the rate is multiplied by...
      step_factor=0.1,  # ... this factor
      final_fraction=0.0,  # cosine and onecycle: the last step's rate, as a fraction of the peak
      onecycle_peak_fraction=0.25,  # onecycle: where the rate peaks, as a fraction of the schedule
  ))
  config.label_smoothing = 0.0  # the loss trained on; history's train_loss stays plain cross-entropy
  config.ema_decay = 0.0  # > 0: also keep and evaluate an exponential moving average of the weights
  config.tta_flip = False  # also evaluate the test set averaging each image's and its mirror's softmax
  # also test averaging each image's softmax with those of its mirror and of both moved one pixel up-left
  # and down-right (airbench's multi-crop TTA): 6 forward passes a test image
  config.tta_crops = False
  # Also test after each phase with every BatchNorm's statistics recomputed over the training images
  # (dropout off; fashion_jax/precise_bn.py), reported beside the plain numbers as precise_bn_test_*
  # (and precise_bn_ema_*, precise_bn_tta_flip_* where the run has an EMA or flip TTA).
  config.precise_batch_norm = False
  # float32 matmuls and convolutions: 'default' (the backend's choice: TF32 on recent NVIDIA GPUs) or
  # 'highest' (full float32 everywhere; the same as 'default' on CPUs).
  config.precision = 'default'

  # The article's ImageDataGenerator: degrees, fractions of the size, degrees, zoom in [1-z, 1+z].
  # They apply in the augmented phases (the article's phase 2), in this order: the policy, the affine warp,
  # flip, crop, erasing.
  config.augment = ml_collections.ConfigDict(dict(
      rotation_range=8.0, width_shift_range=0.08, height_shift_range=0.08, shear_range=0.3,
      zoom_range=0.08, fill_mode='nearest',
      flip=False,  # mirror left-right with probability 1/2
      crop_padding=0,  # > 0: pad by this many zero pixels on each side, then crop back at random
      erasing_probability=0.0,  # random erasing: the chance to blank one rectangle of an image
      erasing_scale=(0.02, 0.25),  # its area, as a fraction of the image's, drawn uniformly
      erasing_ratio=(0.3, 3.3),  # its aspect ratio, drawn log-uniformly
      # First of all: '' (none), 'randaugment' (policy_ops operations a picture, each at bin policy_magnitude
      # of 31) or 'trivialaugment' (one, at a bin drawn uniformly): fashion_jax/policies.py. Costly: every
      # image computes all 14 operations, a third to two thirds of a small model's augmented step on a CPU
      # (docs/lab_notes.md, the research kit).
      policy='', policy_ops=2, policy_magnitude=9,
  ))
  # Batch mixing in the augmented phases, as timm's --mixup, --cutmix, --mixup-prob, --mixup-switch-prob
  # (fashion_jax/mixing.py): each batch mixed with itself reversed, the targets mixed alike. It can cost
  # a sixth of a cheap model's augmented step on a CPU (CNN-1's; nothing measurable in the ConvNet's).
  config.mix = ml_collections.ConfigDict(dict(
      mixup_alpha=0.0,  # > 0: mixup, lam ~ Beta(alpha, alpha)
      cutmix_alpha=0.0,  # > 0: CutMix, lam ~ Beta(alpha, alpha)
      prob=1.0,  # the chance that a batch is mixed at all
      switch_prob=0.5,  # with both on, the chance of CutMix rather than mixup
  ))
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
      name='fashion_mnist',  # 'fashion_mnist', 'mnist', 'kmnist', 'cifar10', or a TFDS name with source='tfds'
      # 'files': the data set's official files (IDX; CIFAR-10's python archive); 'tfds'; 'folder': `dir`
      # holds one sub-folder of images per class (or train/ and test/, each so).
      source='files',
      dir='',  # '' = search the data set's usual places (fashion_mnist: $FASHION_MNIST_DIR, the user
               # cache, /usr/share/datasets/fashion-mnist), else download into the user cache
      url='',  # '' = the data set's official address
      verify_checksums=True,
      image_size=28,  # folder: images are resized to image_size x image_size...
      channels=1,  # ... and converted to 1 (grey) or 3 (RGB) channels
      test_fraction=0.2,  # folder without train/ and test/: the share of each class held out for testing
      val_fraction=0.2,  # the training images held out for validation; 0: none (every one trains, the last
                         # epoch's weights are the 'best' that predict and export use)
      split_seed=13,  # the article's train_test_split(random_state=13)
      train_limit=0,  # > 0: train on the first N training images only (smoke runs, tests)
      eval_limit=0,  # > 0: validate and test on the first N images only
      # How the images reach the devices (fashion_jax/feeds.py): 'device' reads them all once and keeps
      # them on every device (fast; the data must fit), 'stream' reads each batch with Grain as it trains
      # (any size; each host reads its share), 'auto' keeps them on the devices when they fit in half
      # the memory at hand.
      pipeline='auto',
      stream_threads=0,  # 'stream': batches read at once, each by a thread; 0 = one per usable CPU
  ))

  # Execution: none of these changes the results beyond float rounding.
  config.parallel = 'auto'  # 'auto' (jit over a device mesh), 'pmap' or 'single'
  config.conv_impl = 'auto'  # 'auto', 'xla' or 'im2col' (fashion_jax/models/kernels/conv.py)
  config.dtype = 'float32'  # compute dtype: 'float32' or 'bfloat16' (parameters stay float32)
  config.steps_per_call = 0  # 0 = auto: 1 on the CPU, a whole epoch per compiled call elsewhere
  config.checkpoint_every_epochs = 1  # 0 = only at the end of each phase (fast GPUs: epochs take < 1 s)
  config.checkpoint_every_steps = 0  # > 0: also inside epochs (slow machines, long epochs)
  # (first, stop): a jax.profiler trace of global steps first..stop-1 into the workdir, for TensorBoard's
  # profile plugin (`tensorboard --logdir=WORKDIR`, its Profile tab); () = none.
  config.profile_steps = ()

  config.report = ml_collections.ConfigDict(dict(
      writer='tensorboard',  # 'tensorboard' (no TensorFlow needed), 'clu' (needs TensorFlow) or 'none'
      progress_seconds=30.0,  # print progress inside an epoch at most this often
      plots=True,  # draw curves, confusion matrix, mistakes, embeddings after the run
      embedding_examples=2500,  # test images whose penultimate features are saved (the article: 2,500)
  ))
  return config
