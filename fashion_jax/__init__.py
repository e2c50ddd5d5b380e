"""fashion_jax: the article's Fashion-MNIST classifiers in JAX/Flax (see README.md)."""
