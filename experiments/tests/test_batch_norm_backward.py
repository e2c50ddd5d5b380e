"""experiments/speed/batch_norm_backward.py: its table, from the records it writes."""

from experiments.speed import batch_norm_backward

HEADER = {'cpu_count': 2, 'cpu_model': 'AMD EPYC', 'cpu_identity': 'family 25 model 17', 'cpu_flags': ['avx2'],
          'jax': '0.10.2', 'command': 'python -m experiments.speed.batch_norm_backward --rounds=2'}


def test_batch_norms_own_time_is_the_median_of_each_rounds_difference_from_the_block_without_it():
  ms = {'flax': [130.0, 120.0], 'written out': [118.0, 121.0], 'none': [116.0, 100.0]}
  records = [{'input': [256, 26, 26, 32], 'features': 32, 'round': r, 'form': form, 'ms': values[r]}
             for form, values in ms.items() for r in range(2)]
  rows = [line for line in batch_norm_backward.markdown(HEADER, records).splitlines()
          if line.startswith('| 256x26x26x32')]
  assert rows == ['| 256x26x26x32 | 32 | flax | 125.0 | 17.0 | 130.0, 120.0 |',
                  '| 256x26x26x32 | 32 | written out | 119.5 | 11.5 | 118.0, 121.0 |',
                  '| 256x26x26x32 | 32 | none | 108.0 | 0.0 | 116.0, 100.0 |']


def test_a_tiny_measurement_times_every_form_in_its_round():
  records = batch_norm_backward.measure((2, 6, 6, 3), 4, round_index=0, repeats=2)
  assert [r['form'] for r in records] == list(batch_norm_backward.FORMS)
  assert all(r['input'] == [2, 6, 6, 3] and r['features'] == 4 and r['round'] == 0 and r['ms'] > 0
             for r in records)
