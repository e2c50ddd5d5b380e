#!/usr/bin/env bash
# Prepares what the device scripts (experiments/gpu/gpu_*.sh) expect to be carried to the GPU machine,
# whose Python 3.12 image has jax, flax, optax, orbax-checkpoint and torch but no TensorFlow, clu or
# ml_collections, and no network:
#   .whl/          wheels for Python 3.12 of what the image lacks, at the versions this machine runs
#   .device_data/  the four Fashion-MNIST IDX files (FASHION_MNIST_DIR there)
# Both folders are ignored by git; pass them to the device tool's carry list. Run here, before the call:
#   bash experiments/gpu/gpu_prepare.sh [IDX_DIR]  (IDX_DIR: where the four files are; default as the loader)
set -euo pipefail
cd "$(dirname "$0")/../.."
idx_dir=${1:-${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}}
packages="ml-collections clu"
pins=$(python -c "import importlib.metadata as m, sys; print(' '.join(f'{p}=={m.version(p)}' for p in sys.argv[1:]))" $packages)
# Into a fresh folder first: a failed download leaves the previous wheels in place.
rm -rf .whl.new && mkdir -p .whl.new .device_data
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --dest .whl.new $pins
rm -rf .whl && mv .whl.new .whl
cp "$idx_dir"/*-ubyte* .device_data/
ls .whl .device_data
du -sh .whl .device_data
