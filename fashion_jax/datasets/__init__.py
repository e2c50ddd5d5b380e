"""Where the data sets come from: one module per source; `fashion_jax.data.load` is the front door.

- `idx`: the MNIST family's official IDX files (Fashion-MNIST, MNIST, KMNIST),
- `cifar`: CIFAR-10's official python archive,
- `folder`: a folder of image files per class,
- `tfds_source`: any TensorFlow Datasets name,
- `common`: what they share (checksums, the user cache, verified downloads, reading possibly gzipped files).

Each source's `load(data_config)` returns `(arrays, class_names)`: arrays is a dict with uint8
'train_images' and 'test_images' ((N, H, W, C), or (N, H, W) for grey images: data.load adds the channel
axis) and integer 'train_labels' and 'test_labels' (N,). The folder's images, and TFDS's when asked for
lazily and prepared in array_record files, are `records.Records`: read image by image when asked for. Nothing
here imports JAX.
"""
