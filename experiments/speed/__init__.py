"""How fast a training step runs and where its time goes: the benchmark against Keras and PyTorch, each
layer's share, the compiled step op by op."""
