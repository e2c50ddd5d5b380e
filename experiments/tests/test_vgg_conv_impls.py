"""experiments/speed/vgg_conv_impls.py: its table, from the records it writes."""

from experiments.speed import vgg_conv_impls

HEADER = {'cpu_count': 2, 'cpu_model': 'AMD EPYC', 'cpu_identity': 'family 25 model 17', 'cpu_flags': ['avx2'],
          'jax': '0.10.2', 'command': 'python -m experiments.speed.vgg_conv_impls --rounds=3'}


def test_each_row_is_the_median_of_its_rounds_against_the_faster_forced_choice():
  speeds = {'im2col': [100.0, 120.0, 110.0], 'xla': [20.0, 25.0, 22.0], 'auto': [180.0, 190.0, 170.0]}
  records = [{'input_size': 32, 'batch': 500, 'images': 1000, 'conv_impl': impl, 'round': r,
              'images_per_second': values[r]} for impl, values in speeds.items() for r in range(3)]
  rows = [line for line in vgg_conv_impls.markdown(HEADER, records).splitlines() if line.startswith('| 32x32')]
  assert rows == ['| 32x32 | 500 | 1,000 | im2col | 110.0 | 1.00 | 100.0, 120.0, 110.0 |',
                  '| 32x32 | 500 | 1,000 | xla | 22.0 | 0.20 | 20.0, 25.0, 22.0 |',
                  '| 32x32 | 500 | 1,000 | auto | 180.0 | 1.64 | 180.0, 190.0, 170.0 |']
