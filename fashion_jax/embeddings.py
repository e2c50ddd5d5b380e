"""Embedding views of the test set: TensorBoard Projector files and static PCA, t-SNE and custom views.

Two embeddings of the first N test images (N = config.report.embedding_examples, 2,500 as the article):
'pixels', the raw images the article showed (784-d for Fashion-MNIST), and 'features', the trained
model's penultimate layer. Files in the workdir (so `tensorboard --logdir=<workdir>` shows them in the Projector tab):
projector_config.pbtxt, pixels.tsv, features.tsv, metadata.tsv (header Index<TAB>Label), sprite.png.
Pictures: pca.png, tsne.png, projection.png.
"""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from fashion_jax import plots
from fashion_jax.progress import Progress
from fashion_jax.errors import UserError

COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
           '#bcbd22', '#17becf']


def colour(k, num_classes):
  """Class k's colour: the ten above for up to ten classes, evenly spaced hues beyond."""
  if num_classes <= len(COLOURS):
    return COLOURS[k]
  return plots.plt.get_cmap('hsv')(k / num_classes)


@jax.jit
def pca(x):
  """Principal components of rows of `x` on the device: (projections, components, explained_ratio)."""
  centred = x - x.mean(0)
  _, singular, vt = jnp.linalg.svd(centred, full_matrices=False)
  variance = singular ** 2
  return centred @ vt.T, vt, variance / variance.sum()


def projection_axis(x, labels, negative, positive, class_names):
  """Unit vector from the centroid of the `negative` classes to that of the `positive` classes.

  `negative` and `positive` are regular expressions matched (re.search) against the class names, like
  the Projector's custom-projection search boxes.
  """
  def members(pattern):
    try:
      matched = [i for i, name in enumerate(class_names) if re.search(pattern, name)]
    except re.error as e:
      raise UserError(f'projection regular expression {pattern!r} is invalid ({e})') from None
    if not matched:
      raise UserError(f'projection regular expression {pattern!r} matches no class of {list(class_names)}')
    present = np.isin(labels, matched)
    if not present.any():
      raise UserError(f'projection regular expression {pattern!r}: no example of those classes')
    return present
  axis = x[members(positive)].mean(0) - x[members(negative)].mean(0)
  return axis / np.linalg.norm(axis)


def sprite(images):
  """A square grid of the (N, H, W, C) uint8 images; grey ones inverted (dark objects on white), as the
  article's sprite."""
  n, h, w, c = images.shape
  side = int(np.ceil(np.sqrt(n)))
  canvas = np.full((side * h, side * w, c), 255, np.uint8)
  for i, image in enumerate(images):
    r, col = divmod(i, side)
    canvas[r * h:(r + 1) * h, col * w:(col + 1) * w] = 255 - image if c == 1 else image
  return canvas[..., 0] if c == 1 else canvas


def write_projector(workdir, images, labels, features, class_names):
  """The TensorBoard Projector files for 'pixels' and 'features' of the same examples ('pixels' alone
  where `features` is None)."""
  n, h, w, _ = images.shape
  with open(os.path.join(workdir, 'metadata.tsv'), 'w') as f:
    f.write('Index\tLabel\n')
    f.writelines(f'{i}\t{class_names[label]}\n' for i, label in enumerate(labels))
  np.savetxt(os.path.join(workdir, 'pixels.tsv'), images.reshape(n, -1) / 255.0, fmt='%.4g', delimiter='\t')
  names = ('pixels',)
  if features is not None:
    np.savetxt(os.path.join(workdir, 'features.tsv'), features, fmt='%.5g', delimiter='\t')
    names += ('features',)
  Image.fromarray(sprite(images)).save(os.path.join(workdir, 'sprite.png'))
  entries = []
  for name in names:
    entries.append(
        'embeddings {\n'
        f'  tensor_name: "{name}"\n  tensor_path: "{name}.tsv"\n  metadata_path: "metadata.tsv"\n'
        f'  sprite {{\n    image_path: "sprite.png"\n'
        f'    single_image_dim: {w}\n    single_image_dim: {h}\n  }}\n'
        '}\n')
  with open(os.path.join(workdir, 'projector_config.pbtxt'), 'w') as f:
    f.writelines(entries)


def _scatter(ax, points, labels, class_names, title):
  for k, name in enumerate(class_names):
    chosen = labels == k
    ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=colour(k, len(class_names)), label=name,
               alpha=0.7)
  ax.set_title(title, fontsize=10)
  ax.set_xticks([])
  ax.set_yticks([])


def _legend(fig, axes):
  handles, names = axes.flat[0].get_legend_handles_labels()
  fig.legend(handles, names, loc='center right', markerscale=4, fontsize=9, frameon=False)


def draw_pca(sources, labels, class_names, path):
  fig, axes = plots.plt.subplots(len(sources), 2, figsize=(12, 5 * len(sources)), squeeze=False,
                                 gridspec_kw={'width_ratios': [1.3, 1]})
  for row, (name, x) in enumerate(sources.items()):
    projected, _, ratio = (np.asarray(a) for a in pca(jnp.asarray(x, jnp.float32)))
    _scatter(axes[row, 0], projected[:, :2], labels, class_names,
             f'{name}: the first two principal components')
    axes[row, 0].set_xlabel(f'PC1 ({ratio[0]:.1%} of the variance)')
    axes[row, 0].set_ylabel(f'PC2 ({ratio[1]:.1%})')
    top = min(10, len(ratio))  # a narrow penultimate layer (a user's model) may have fewer
    axes[row, 1].bar(range(1, top + 1), ratio[:top], color='#4c72b0')
    axes[row, 1].plot(range(1, top + 1), np.cumsum(ratio[:top]), marker='o', color='#dd8452',
                      label='cumulative')
    axes[row, 1].set_xticks(range(1, top + 1))
    axes[row, 1].set_xlabel('principal component')
    axes[row, 1].set_ylabel('fraction of the variance explained')
    axes[row, 1].set_title(f'{name}: the top {top} components', fontsize=10)
    axes[row, 1].legend(fontsize=9)
  _legend(fig, axes[:, :1])
  fig.subplots_adjust(right=0.85)
  plots._save(fig, path)  # pylint: disable=protected-access


def draw_tsne(sources, labels, class_names, path, seed=0):
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  fig, axes = plots.plt.subplots(1, len(sources), figsize=(6.5 * len(sources), 6), squeeze=False)
  # t-SNE reports no progress of its own: the stage counts its embeddings (a minute or more each for the
  # 2,500 test images on a 2-core CPU).
  progress = Progress(f't-SNE of {len(labels):,} test images as {" and ".join(sources)}', len(sources))
  for done, (ax, (name, x)) in enumerate(zip(axes[0], sources.items()), start=1):
    # PCA to 50 dimensions first, as is usual for t-SNE on images (and much faster).
    reduced = np.asarray(pca(jnp.asarray(x, jnp.float32))[0])[:, :50]
    perplexity = min(30.0, (len(x) - 1) / 3)
    points = TSNE(2, perplexity=perplexity, init='pca', random_state=seed).fit_transform(reduced)
    _scatter(ax, points, labels, class_names, f'{name}: t-SNE (2-D)')
    progress.update(done)
  progress.done()
  _legend(fig, axes)
  fig.subplots_adjust(right=0.86)
  plots._save(fig, path)  # pylint: disable=protected-access


def draw_projection(sources, labels, class_names, negative, positive, path):
  """x: the custom axis (centroid of `negative` -> centroid of `positive`); y: the top principal
  component of what the axis leaves unexplained."""
  fig, axes = plots.plt.subplots(1, len(sources), figsize=(6.5 * len(sources), 5.5), squeeze=False)
  for ax, (name, x) in zip(axes[0], sources.items()):
    x = np.asarray(x, np.float64)
    axis = projection_axis(x, labels, negative, positive, class_names)
    along = (x - x.mean(0)) @ axis
    residual = (x - x.mean(0)) - np.outer(along, axis)
    across = np.asarray(pca(jnp.asarray(residual, jnp.float32))[0])[:, 0]
    _scatter(ax, np.stack([along, across], 1), labels, class_names, f'{name}: custom projection')
    ax.set_xlabel(f'<- {negative}    |    {positive} ->', fontsize=9)
    ax.set_ylabel('first principal component of the rest')
  _legend(fig, axes)
  fig.subplots_adjust(right=0.86)
  plots._save(fig, path)  # pylint: disable=protected-access


def export_all(workdir, dataset, features, negative, positive, count):
  """Projector files and the three pictures for the first `count` test images, as pixels and as the
  model's `features` (None for a model that returns none: then as pixels only).

  `negative` and `positive` are the custom projection's class patterns (see `projection_axis`).
  """
  n = len(features) if features is not None else min(count, len(dataset.test_labels))
  images, labels, names = dataset.test_images[:n], dataset.test_labels[:n], dataset.class_names
  sources = {'pixels': images.reshape(n, -1).astype(np.float32) / 255.0}
  if features is not None:
    sources['features'] = features = np.asarray(features, np.float32)
  write_projector(workdir, images, labels, features, names)
  draw_pca(sources, labels, names, os.path.join(workdir, 'pca.png'))
  draw_projection(sources, labels, names, negative, positive, os.path.join(workdir, 'projection.png'))
  draw_tsne(sources, labels, names, os.path.join(workdir, 'tsne.png'))
