"""The CPU kernels, in one place: the measured winners, with no switches.

- conv.py: 3x3 convolutions as cache-sized patch products on the CPU ('im2col'), XLA's elsewhere, and
  the CNNs' fused convolution -> ReLU -> 2x2 max pooling;
- pooling.py: 2x2 max pooling with Keras' flooring and TensorFlow's first-maximum gradient;
- dropout.py: dropout masks equal to `jax.random.bernoulli`'s bit for bit, in one pass;
- batch_norm.py: BatchNorm's training-mode backward pass in closed form (layers.BatchNorm).

Each form here won, in the training steps, against the alternatives timed on the processors the project
met (docs/lab_notes.md has the tables and the commits the losing forms last existed at). A form that won
on one processor and lost on another would be a config field resolved from the processor at run time.
"""
