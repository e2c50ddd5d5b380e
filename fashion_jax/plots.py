"""The drawing functions behind pictures.py (curves, confusion matrix, mistakes, image grids).

Every function takes plain numbers and writes one PNG; nothing here reads a run's files, or needs a
model or a device.
"""

import matplotlib

matplotlib.use('Agg')  # files only; no display needed
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

PHASE_COLOURS = {'phase1': '#f2f2f2', 'phase2': '#e6f0fa'}


def _save(fig, path):
  fig.savefig(path, dpi=110, bbox_inches='tight')
  plt.close(fig)


def curves(history, results, path, title=''):
  """Training vs validation accuracy and loss per epoch, phases shaded, test results annotated."""
  epochs = np.array([h['epoch'] for h in history])
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  for ax, metric, label in ((axes[0], 'accuracy', 'accuracy'), (axes[1], 'loss', 'loss')):
    for phase in ('phase1', 'phase2'):
      in_phase = epochs[[h['phase'] == phase for h in history]]
      if len(in_phase):
        ax.axvspan(in_phase.min() - 0.5, in_phase.max() + 0.5, color=PHASE_COLOURS[phase], zorder=0)
    ax.plot(epochs, [h[f'train_{metric}'] for h in history], label=f'training {label}', color='#1f77b4')
    if all(f'val_{metric}' in h for h in history):  # none without a validation split
      ax.plot(epochs, [h[f'val_{metric}'] for h in history], label=f'validation {label}', color='#d62728')
    for phase in results.get('phases', []):
      end = max(h['epoch'] for h in history if h['phase'] == phase['name'])
      value = phase[f'test_{metric}']
      ax.plot([end], [value], marker='*', markersize=12, color='black', zorder=3)
      ax.annotate(f'test {value:.4f}', (end, value), textcoords='offset points', xytext=(-8, 10), ha='right',
                  fontsize=9)
    ax.set_xlabel('epoch (grey: phase 1, plain; blue: phase 2, augmented)')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right' if metric == 'accuracy' else 'upper right', fontsize=9)
  fig.suptitle(title or f'{results.get("model", "")}: training curves')
  _save(fig, path)


def confusion(labels, predictions, num_classes):
  """counts[true, predicted]."""
  counts = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(counts, (labels, predictions), 1)
  return counts


def confusion_matrix(counts, class_names, path, title='Confusion matrix (test set)'):
  fig, ax = plt.subplots(figsize=(8.5, 7.5))
  rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
  image = ax.imshow(rates, cmap='Blues', vmin=0, vmax=1)
  for i in range(len(class_names)):
    for j in range(len(class_names)):
      if counts[i, j]:
        ax.text(j, i, str(counts[i, j]), ha='center', va='center', fontsize=8,
                color='white' if rates[i, j] > 0.5 else 'black')
  ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha='right')
  ax.set_yticks(range(len(class_names)), [f'{n} ({rates[i, i]:.1%})' for i, n in enumerate(class_names)])
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class (per-class accuracy)')
  ax.set_title(title)
  fig.colorbar(image, ax=ax, fraction=0.046, label='fraction of the true class')
  _save(fig, path)


def show_image(ax, image, vmax=None):
  """Draws one (H, W, C) image: grey ones dark on light (as the article's figures), colour ones as is."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    if vmax is None:
      vmax = 255 if image.dtype == np.uint8 else 1
    ax.imshow(image, cmap='gray_r', vmin=0, vmax=vmax)
  else:
    ax.imshow(image if image.dtype == np.uint8 else np.clip(image, 0, 1))


def mistakes(images, labels, probabilities, class_names, path, count=24):
  """The `count` test images the model got wrong with the highest confidence."""
  predicted = probabilities.argmax(1)
  wrong = np.flatnonzero(predicted != labels)
  worst = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count]
  columns = 6
  rows = max(1, int(np.ceil(len(worst) / columns)))
  fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.1, rows * 2.5))
  for ax in np.ravel(axes):
    ax.axis('off')
  for ax, index in zip(np.ravel(axes), worst):
    show_image(ax, images[index])
    ax.set_title(f'#{index} true: {class_names[labels[index]]}\n'
                 f'said: {class_names[predicted[index]]} ({probabilities[index, predicted[index]]:.0%})',
                 fontsize=8)
  fig.suptitle('The most confident mistakes on the test set')
  _save(fig, path)


def image_grid(rows_of_images, row_labels, path, title):
  """A grid: one row per entry of `rows_of_images` (each a list of (H, W, C) float images in [0, 1])."""
  n_rows, n_cols = len(rows_of_images), max(len(r) for r in rows_of_images)
  fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 1.3, n_rows * 1.4), squeeze=False)
  for r, (row, label) in enumerate(zip(rows_of_images, row_labels)):
    for c in range(n_cols):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c < len(row):
        show_image(ax, row[c], vmax=1)
      if c == 0:
        ax.set_ylabel(label, fontsize=8)
  fig.suptitle(title)
  _save(fig, path)
