"""fashion_jax: the article's Fashion-MNIST classifiers in JAX/Flax (see README.md)."""

from fashion_jax import xla_cpu as _xla_cpu

# Before JAX starts its CPU backend, which reads XLA_FLAGS once (xla_cpu.py says why).
_xla_cpu.prefer_xla_convolutions()
