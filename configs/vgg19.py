"""VGG19 transfer learning as the article: the frozen ImageNet base's features, a Dense512 head trained 50
epochs with Adam, batch 256, no augmentation.

  python -m fashion_jax.main --config=configs/vgg19.py --workdir=runs/vgg19
  python -m fashion_jax.main --config=configs/vgg19.py --workdir=runs/vgg19-cpu \
      --config.vgg.weights=random --config.vgg.input_size=32          # no weights file, CPU-sized

Weights: config.vgg.weights = a path to vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras),
vgg19-dcbb9e9d.pth (torchvision), a timm safetensors file, or 'keras'/'torchvision' to download into
~/.cache/fashion_jax/weights. No accuracy with pretrained weights has been measured (none could be
downloaded where the project ran); the article got 0.7664 with its doubly scaled inputs
(config.vgg.article_preprocessing=True reproduces them). The second command took 816 s for the features
and 77 s for the head on a 2-core AMD EPYC CPU (experiments/results/study/vgg19-random-cpu32/).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model = 'vgg19'
  config.num_epochs = 50
  config.augment_epochs = 0
  return config
