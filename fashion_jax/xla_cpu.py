"""Which of XLA:CPU's kernel libraries runs the convolutions: XLA's own, asked for before JAX starts.

This jaxlib hands matrix products, reductions and convolutions to YNNPACK by default. Its products and
reductions are the fastest XLA:CPU has for this package's models, but its convolutions were 2-8x slower
than XLA's own (Eigen's) on CNN-4's layers in float32, forward passes and weight gradients
(docs/lab_notes.md, "XLA's own convolutions"). The flag below keeps YNNPACK for the rest and takes the
convolutions back; programs without convolutions of their own (the patch products of kernels/conv.py
and the speedruns' fused layers) compile to the same program with or without it.

XLA reads its flags once, when JAX starts its CPU backend (at the first computation), so importing
fashion_jax sets the flag in XLA_FLAGS if that has not happened yet and the user's XLA_FLAGS do not
choose YNNPACK's work themselves. Only with the jaxlib releases it was measured on (`MEASURED_JAXLIB`):
the flag is experimental, and XLA refuses to start on a flag it does not know. `ynnpack_convolutions()`
tells kernels/conv.py which case holds, since the fastest way to compute a convolution depends on it.
"""

import importlib.metadata
import os
import sys

FLAG = '--xla_cpu_experimental_ynn_fusion_type'
# This jaxlib's default set less 'individual_convolution' (the same program where there is no
# convolution: tests/test_xla_cpu.py compares them).
WITHOUT_CONVOLUTIONS = 'individual_dot,reduce'
# The jaxlib release series whose XLA has the flag and these names (a newer one keeps its defaults).
MEASURED_JAXLIB = ('0.10.',)


def _jaxlib_measured():
  try:
    return importlib.metadata.version('jaxlib').startswith(MEASURED_JAXLIB)
  except importlib.metadata.PackageNotFoundError:
    return False


def _backend_started():
  jax = sys.modules.get('jax')
  if jax is None:
    return False  # no JAX yet: nothing has started
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return xla_bridge.backends_are_initialized()


def _chosen_types(xla_flags):
  """The YNNPACK work types `xla_flags` set (the last setting wins, as in XLA's parser), or None."""
  chosen = None
  for flag in xla_flags.split():
    name, _, value = flag.partition('=')
    if name == FLAG:
      chosen = set(filter(None, value.split(',')))
  return chosen


def prefer_xla_convolutions():
  """Adds the flag to XLA_FLAGS, unless XLA_FLAGS already choose, the backend has started or the jaxlib
  is not one it was measured on."""
  xla_flags = os.environ.get('XLA_FLAGS', '')
  if _chosen_types(xla_flags) is None and _jaxlib_measured() and not _backend_started():
    os.environ['XLA_FLAGS'] = f'{xla_flags} {FLAG}={WITHOUT_CONVOLUTIONS}'.strip()


def ynnpack_convolutions():
  """Whether XLA:CPU hands convolutions to YNNPACK in this process, as its XLA_FLAGS say."""
  chosen = _chosen_types(os.environ.get('XLA_FLAGS', ''))
  return chosen is None or 'individual_convolution' in chosen
