"""experiments/speed/conv_libraries.py: its table, from records as its processes write them."""

from experiments.speed import conv_libraries

HEADER = {'cpu_count': 2, 'cpu_model': 'AMD EPYC', 'cpu_identity': 'family 25 model 17', 'cpu_flags': ['avx2'],
          'jax': '0.10.2', 'command': 'python -m experiments.speed.conv_libraries --models=cnn4'}


def test_each_row_is_the_median_of_its_rounds_against_before_and_against_im2col_in_its_process():
  ms = {('YNNPACK convolutions', 'im2col'): [300.0, 330.0, 310.0],
        ('YNNPACK convolutions', 'auto'): [700.0, 720.0, 690.0],
        ("XLA's convolutions", 'im2col'): [305.0, 320.0, 300.0],
        ("XLA's convolutions", 'auto'): [270.0, 280.0, 240.0]}
  records = [{'setting': setting, 'round': r, 'model': 'cnn4', 'impl': impl, 'ms': values[r]}
             for (setting, impl), values in ms.items() for r in range(3)]
  rows = [line for line in conv_libraries.markdown(HEADER, records).splitlines() if line.startswith('| cnn4')]
  assert rows == [
      '| cnn4 | YNNPACK convolutions | im2col | 310.0 | 1.000 | 1.000 | 300.0, 330.0, 310.0 |',
      '| cnn4 | YNNPACK convolutions | auto | 700.0 | 2.258 | 2.226 | 700.0, 720.0, 690.0 |',
      "| cnn4 | XLA's convolutions | im2col | 305.0 | 0.984 | 1.000 | 305.0, 320.0, 300.0 |",
      "| cnn4 | XLA's convolutions | auto | 270.0 | 0.871 | 0.875 | 270.0, 280.0, 240.0 |"]
