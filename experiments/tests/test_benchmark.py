"""The benchmark's report: every measurement lands in the table with its ratio to Keras."""

import json

import pytest

from experiments.speed import benchmark
from fashion_jax import cpu_info

INFO = {'device_kind': 'cpu', 'backend': 'cpu', 'devices': 1, 'cpu_count': 2, 'jax': '0.0'}


def test_markdown_rows_ratios_and_feature_lines():
  records = [
      {'model': 'cnn3', 'dtype': 'float32', 'compile_seconds': 7.0, 'plain_images_per_second': 2200.0,
       'augmented_images_per_second': 2000.0, 'augment_time_ratio': 1.1, 'epoch_seconds_augmented': 24.0},
      {'model': 'cnn3', 'measure': 'keras', 'images_per_second': 1000.0},
      {'model': 'vgg19', 'dtype': 'float32', 'compile_seconds': 2.0, 'plain_images_per_second': 4500.0,
       'stand_in_features': True},
      {'model': 'vgg19', 'measure': 'keras', 'images_per_second': 1500.0},
      {'model': 'cnn1', 'dtype': 'bfloat16', 'compile_seconds': 3.0, 'plain_images_per_second': 9000.0,
       'augmented_images_per_second': 8000.0, 'augment_time_ratio': 1.125, 'epoch_seconds_augmented': 6.0},
      {'model': 'vgg19', 'measure': 'features', 'dtype': 'float32', 'input_size': 150, 'images': 100,
       'batch': 25, 'compile_seconds': 9.0, 'images_per_second': 5.0},
      {'model': 'vgg19', 'measure': 'features', 'dtype': 'bfloat16', 'input_size': 150, 'images': 100,
       'batch': 25, 'compile_seconds': 9.0, 'images_per_second': 8.0},
      {'model': 'vgg19', 'measure': 'keras_features', 'input_size': 150, 'images': 100, 'batch': 25,
       'images_per_second': 4.0},
  ]
  info = dict(INFO, command='python -m experiments.speed.benchmark --keras')
  lines = benchmark.markdown(records, info).splitlines()
  rows = {tuple(cell.strip() for cell in line.split('|')[1:3]): line for line in lines if line.startswith('| ')}
  # Ours augmented over Keras plain; the VGG19 head has no augmented phase: plain over plain.
  assert rows['cnn3', 'float32'].endswith('| 1,000 | 2.00 | - | - |')  # no FLOP count recorded
  assert rows['vgg19', 'float32'].endswith('| 4,500 | - | - | - | 1,500 | 3.00 | - | - |')
  assert rows['cnn1', 'bfloat16'].endswith('| - | - | - | - |')  # no Keras measurement for it
  features = [line for line in lines if line.startswith('VGG19 feature extraction')]
  assert len(features) == 2
  assert features[0].endswith('5.0 images/s; Keras\' VGG19 base, the same images after the article\'s host '
                              'preprocessing (model.predict): 4.0 images/s; ours / Keras 1.25.')
  assert features[1].endswith('8.0 images/s.')  # Keras ran in float32 only: no ratio for bfloat16
  assert any('features of zeros' in line for line in lines)
  assert lines[-1] == 'Command: `python -m experiments.speed.benchmark --keras`'


def test_a_run_of_feature_extraction_alone_has_no_empty_training_table():
  records = [{'model': 'vgg19', 'measure': 'features', 'dtype': 'float32', 'input_size': 150, 'images': 100,
              'batch': 25, 'compile_seconds': 9.0, 'images_per_second': 5.0}]
  text = benchmark.markdown(records, dict(INFO, command='python -m experiments.speed.benchmark'))
  assert '| model |' not in text and '| --- ' not in text
  assert 'VGG19 feature extraction at 150x150 (float32' in text


def test_the_table_names_the_processor_and_its_flags(tmp_path, monkeypatch):
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text('processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx avx2 fma avx512f '
                     'avx512_bf16\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9R14\n')
  real_open = open
  monkeypatch.setattr('builtins.open', lambda path, *a, **k: real_open(
      cpuinfo if path == '/proc/cpuinfo' else path, *a, **k))
  model, flags = cpu_info.cpu_description()
  assert model == 'AMD EPYC 9R14' and flags == ['avx', 'avx2', 'fma', 'avx512f', 'avx512_bf16']
  info = dict(INFO, cpu_model=model, cpu_flags=flags, command='python -m experiments.speed.benchmark')
  assert benchmark.markdown([], info).splitlines()[0] == (
      'Machine: cpu (cpu, 1 device(s)), 2 CPU cores (AMD EPYC 9R14; avx, avx2, fma, avx512f, avx512_bf16), '
      'JAX 0.0.')


def test_the_table_tells_processors_of_one_name_apart_by_family_and_model(tmp_path, monkeypatch):
  # A VM names both generations 'AMD EPYC' with the same flags; their family and model differ.
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text('processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n'
                     'model name\t: AMD EPYC\nstepping\t: 1\ncache size\t: 512 KB\nflags\t\t: avx avx2 fma\n\n'
                     'processor\t: 1\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n')
  real_open = open
  monkeypatch.setattr('builtins.open', lambda path, *a, **k: real_open(
      cpuinfo if path == '/proc/cpuinfo' else path, *a, **k))
  identity = cpu_info.cpu_identity()
  assert identity == 'family 25 model 1 stepping 1, 512 KB cache'
  assert cpu_info.cpu_identity('') == ''
  info = dict(INFO, cpu_model='AMD EPYC', cpu_identity=identity, cpu_flags=['avx', 'avx2', 'fma'])
  assert benchmark.markdown([], info).splitlines()[0] == (
      'Machine: cpu (cpu, 1 device(s)), 2 CPU cores (AMD EPYC, family 25 model 1 stepping 1, 512 KB cache; '
      'avx, avx2, fma), JAX 0.0.')


def test_speedrun_table_counts_the_seeds_that_reach_the_target():
  from experiments.recipes import speedrun  # pylint: disable=g-import-not-at-top
  run = lambda seed, cache, seconds, accuracy, plain: {
      'seed': seed, 'cache': cache, 'seconds': seconds, 'accuracy': accuracy, 'test_accuracy': plain,
      'epochs': 6}
  records = [run(0, 'cold', 50.0, 0.921, 0.921), run(0, 'warm', 40.0, 0.921, 0.921),
             run(1, 'warm', 44.0, 0.915, 0.914)]
  lines = speedrun.markdown(dict(INFO, command='python -m experiments.recipes.speedrun'), records, 0.92,
                            'configs/speedrun_cpu.py').splitlines()
  assert lines[0].startswith('Speedrun of `configs/speedrun_cpu.py` to 0.92 test accuracy.')
  assert lines[2] == ('- accuracy over 2 seeds: mean 0.9180 +/- 0.0042, min 0.9150, max 0.9210; '
                      '1 of 2 reach 0.92')
  assert lines[3] == ('- seconds (compiled programs loaded from the cache): mean 42.0 +/- 2.8, min 40.0, '
                      'max 44.0')
  assert lines[4] == '- the first run, compiling everything: 50.0 s'
  assert '| JAX | 1 | cached | 44.0 | 0.9150 | 0.9140 | 6 |' in lines


def test_a_speedrun_keeps_its_table_from_the_first_run_on(tmp_path):
  # After the first, compiling run (the only one a speedrun stopped during its second has), both files.
  from experiments.recipes import speedrun  # pylint: disable=g-import-not-at-top
  out, records = str(tmp_path / 'speedrun'), []
  first = {'seed': 0, 'cache': 'cold', 'seconds': 638.0, 'accuracy': 0.9257, 'test_accuracy': 0.9246,
           'epochs': 12}
  speedrun.keep_record(out, dict(INFO, command='python -m experiments.recipes.speedrun', target=0.94,
                                 config_file='configs/speedrun_gpu_convnet.py'), records, first)
  with open(out + '.jsonl') as f:
    assert [json.loads(line) for line in f][1:] == [first]
  with open(out + '.md') as f:
    lines = f.read().splitlines()
  assert lines[0].startswith('Speedrun of `configs/speedrun_gpu_convnet.py` to 0.94 test accuracy.')
  assert lines[2:4] == ['- only the first, compiling run has finished: accuracy 0.9257, short of 0.94',
                        '- the first run, compiling everything: 638.0 s']
  assert '| JAX | 0 | compiled | 638.0 | 0.9257 | 0.9246 | 12 |' in lines


def test_speedrun_table_adds_the_twins_and_their_time_over_ours():
  from experiments.recipes import speedrun  # pylint: disable=g-import-not-at-top
  ours = lambda seed, cache, seconds: {'seed': seed, 'cache': cache, 'seconds': seconds, 'accuracy': 0.921,
                                       'test_accuracy': 0.92, 'epochs': 5}
  twin = lambda framework, seed, seconds, accuracy: {
      'seed': seed, 'seconds': seconds, 'accuracy': accuracy, 'test_accuracy': 0.91, 'epochs': 5,
      'batch_size': 128, 'settings': 'batch 128, 2 threads', 'compilation': 'none', 'framework': framework}
  records = [ours(0, 'cold', 50.0), ours(0, 'warm', 40.0), ours(1, 'warm', 40.0),
             twin('pytorch', 0, 100.0, 0.919), twin('pytorch', 1, 80.0, 0.922), twin('keras', 0, 60.0, 0.93)]
  command = 'python -m experiments.recipes.speedrun --torch_twin --keras_twin'
  info = dict(INFO, command=command, pytorch='2.0', keras='3.0')
  lines = speedrun.markdown(info, records, 0.92, 'configs/speedrun_cpu_convnet.py').splitlines()
  assert lines[5:9] == [
      '- PyTorch 2.0 (the same recipe, experiments/baselines/torch_speedrun.py; batch 128, 2 threads), '
      '2 seeds: accuracy mean 0.9205 +/- 0.0021, min 0.9190, max 0.9220; 1 of 2 reach 0.92',
      '- PyTorch seconds: mean 90.0 +/- 14.1, min 80.0, max 100.0; its mean over ours (cached): 2.25',
      '- Keras 3.0 (the same recipe, experiments/baselines/keras_speedrun.py; batch 128, 2 threads), '
      '1 seed: accuracy mean 0.9300 +/- 0.0000, min 0.9300, max 0.9300; 1 of 1 reach 0.92',
      '- Keras seconds: mean 60.0 +/- 0.0, min 60.0, max 60.0; its mean over ours (cached): 1.50']
  assert '| PyTorch | 1 | none | 80.0 | 0.9220 | 0.9100 | 5 |' in lines
  assert '| Keras | 0 | none | 60.0 | 0.9300 | 0.9100 | 5 |' in lines
  noted = speedrun.markdown(dict(info, notes=['added later.']), records, 0.92, 'x.py').splitlines()
  assert noted[-2:] == ['Note: added later.', f'Command: `{command}`']


def test_render_rewrites_the_table_from_the_json_lines_with_notes(tmp_path):
  out = str(tmp_path / 'bench')
  info = dict(INFO, notes=['the command was added afterwards.'], command='python x.py')
  # An early run timed the VGG19 head's plain step twice, once as "augmented": the head has no such phase.
  head = {'model': 'vgg19', 'dtype': 'float32', 'compile_seconds': 2.0, 'plain_images_per_second': 4500.0,
          'augmented_images_per_second': 4400.0, 'augment_time_ratio': 1.02, 'epoch_seconds_augmented': 0.1}
  with open(out + '.jsonl', 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in (info, head))
  benchmark.render(out)
  lines = open(out + '.md').read().splitlines()
  assert 'Note: the command was added afterwards.' in lines
  row = next(line for line in lines if line.startswith('| vgg19'))
  assert row == '| vgg19 | float32 | 2.0 | 4,500 | - | - | - | - | - | - | - |'
  assert lines[-1] == 'Command: `python x.py`'


def test_gflops_columns_against_the_cpus_peak():
  info = dict(INFO, cpu_peak_gflops=160.0, cpu_peak_basis='2 logical CPUs x 2.50 GHz x 2 FMA units x 8 float32 lanes x 2')
  records = [{'model': 'cnn3', 'dtype': 'float32', 'compile_seconds': 7.0, 'plain_images_per_second': 2200.0,
              'augmented_images_per_second': 2000.0, 'augment_time_ratio': 1.1, 'epoch_seconds_augmented': 24.0,
              'train_mflop_per_image': 20.0},
             {'model': 'cnn3', 'measure': 'keras', 'images_per_second': 1000.0}]
  lines = benchmark.markdown(records, info).splitlines()
  assert lines[2].startswith('CPU nominal peak: 160 GFLOP/s float32 (2 logical CPUs x 2.50 GHz')
  # 20 MFLOP an image: ours 2,000 images/s augmented = 40 GFLOP/s, a quarter of the peak; Keras' 20.
  assert lines[-1].endswith('| 1,000 | 2.00 | 40.0 (25%) | 20.0 (12%) |')


@pytest.mark.parametrize('vendor, family, name, flags, lanes', [
    ('AuthenticAMD', 25, 'AMD EPYC', 'fma avx avx2', 8),
    ('AuthenticAMD', 25, 'AMD EPYC', 'fma avx avx2 avx512f', 8),  # Zen 4: AVX-512 as two 256-bit halves
    ('AuthenticAMD', 26, 'AMD EPYC', 'fma avx avx2 avx512f', 16),  # Zen 5 servers: 512-bit datapaths
    ('GenuineIntel', 6, 'Intel(R) Xeon(R)', 'fma avx avx2 avx512f', 16),
])
def test_peak_counts_cpus_clock_and_vector_lanes(vendor, family, name, flags, lanes):
  cpuinfo = ''.join(f'processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel name\t: {name}\n'
                    f'cpu MHz\t\t: 2500.000\nflags\t\t: sse {flags}\n\n' for i in range(2))
  peak, basis = cpu_info.peak_gflops(cpuinfo, cpus=2)
  assert peak == pytest.approx(2 * 2.5 * 2 * lanes * 2)
  assert basis == f'2 logical CPUs x 2.50 GHz x 2 FMA units x {lanes} float32 lanes x 2'
  assert cpu_info.peak_gflops(cpuinfo.replace('fma ', ''), cpus=2)[0] is None
  # By default only the CPUs this process may use count.
  assert cpu_info.peak_gflops(cpuinfo)[0] == pytest.approx(min(2, cpu_info.usable_cpus()) * 2.5 * 2 * lanes * 2)


def test_a_peak_whose_vector_width_is_unknown_is_not_guessed():
  # A Zen 5 that is not an EPYC may have 256-bit datapaths (laptops) or 512-bit ones (desktops).
  cpuinfo = ('processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel name\t: AMD Ryzen AI 9 HX 370\n'
             'cpu MHz\t\t: 2000.000\nflags\t\t: fma avx2 avx512f\n')
  peak, why = cpu_info.peak_gflops(cpuinfo, cpus=1)
  assert peak is None and why.startswith('unknown: the AVX-512 datapath width')


def test_training_flops_of_cnn1_follow_its_layer_shapes():
  from fashion_jax.models import cnn  # pylint: disable=g-import-not-at-top
  # Forward multiply-adds: conv 26*26*9*32, dense 5408*128 and 128*10, two FLOPs each. Training adds
  # the weight gradients (as many) and the input gradients (as many, but none for the first layer).
  forward = 2 * (26 * 26 * 9 * 32 + 5408 * 128 + 128 * 10) / 1e6
  mflop = benchmark.training_mflop_per_image(cnn.CNN1(conv_impl='im2col'), (28, 28, 1))
  assert 3 * forward - 2 * 26 * 26 * 9 * 32 / 1e6 <= mflop <= 3.4 * forward


def test_training_flops_of_the_vgg19_head_which_has_no_convolution_to_choose():
  from fashion_jax.models import vgg  # pylint: disable=g-import-not-at-top
  # Two dense layers on 4x4x512 features (150x150 images): forward 2 * (8192 * 512 + 512 * 10) FLOPs; the
  # first layer's input needs no gradient.
  forward = 2 * (8192 * 512 + 512 * 10) / 1e6
  mflop = benchmark.training_mflop_per_image(vgg.VGG19Head(), vgg.features_shape(150))
  assert 3 * forward - 2 * 8192 * 512 / 1e6 <= mflop <= 3.4 * forward


def test_pytorch_columns_appear_with_pytorch_measurements():
  records = [{'model': 'cnn3', 'dtype': 'float32', 'compile_seconds': 7.0, 'plain_images_per_second': 2200.0,
              'augmented_images_per_second': 2000.0, 'augment_time_ratio': 1.1, 'epoch_seconds_augmented': 24.0,
              'train_mflop_per_image': 20.0},
             {'model': 'cnn3', 'measure': 'keras', 'images_per_second': 1000.0},
             {'model': 'cnn3', 'measure': 'torch', 'images_per_second': 1600.0, 'layout': 'channels_last',
              'images_per_second_by_layout': {'channels_first': 1500.0, 'channels_last': 1600.0},
              'steps': 100, 'torch': '2.0, 2 threads'},
             {'model': 'cnn1', 'dtype': 'float32', 'compile_seconds': 3.0, 'plain_images_per_second': 9000.0}]
  lines = benchmark.markdown(records, INFO).splitlines()
  header = next(line for line in lines if line.startswith('| model'))
  assert header.endswith('| GFLOP/s Keras | PyTorch img/s plain | ours aug / PyTorch plain | GFLOP/s PyTorch |')
  rows = {line.split('|')[1].strip(): line for line in lines if line.startswith('| cnn')}
  # Ours augmented (2,000) over PyTorch plain (1,600); 20 MFLOP an image x 1,600 images/s = 32 GFLOP/s.
  assert rows['cnn3'].endswith('| 1,600 | 1.25 | 32.0 |')
  assert rows['cnn1'].endswith('| - | - | - |')
  assert all(line.count('|') == header.count('|') for line in lines if line.startswith('|'))
  assert any(line.endswith('cnn3 channels_last (channels_first 1,500, channels_last 1,600; 100 steps; '
                           'PyTorch 2.0, 2 threads).') for line in lines)


@pytest.mark.parametrize('model, parameters', [
    ('cnn1', 693_962), ('cnn3', 241_546), ('cnn4', 1_221_546), ('vgg19', 4_199_946)])
def test_pytorch_models_have_the_articles_parameter_counts(model, parameters):
  pytest.importorskip('torch')
  from experiments.baselines import torch_baseline  # pylint: disable=g-import-not-at-top
  input_shape = (4, 4, 512) if model == 'vgg19' else (28, 28, 1)
  assert torch_baseline.parameter_count(torch_baseline.build(model, input_shape)) == parameters


def test_pytorch_timing_trains_in_both_layouts(monkeypatch):
  torch = pytest.importorskip('torch')
  import numpy as np  # pylint: disable=g-import-not-at-top
  from experiments.baselines import torch_baseline  # pylint: disable=g-import-not-at-top
  images = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
  labels = np.arange(64) % 10
  built, build = [], torch_baseline.build
  last_conv = lambda model: [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]

  def build_and_keep(name, input_shape):
    built.append(build(name, input_shape))
    built[-1].initial = last_conv(built[-1]).weight.detach().clone()
    return built[-1]

  monkeypatch.setattr(torch_baseline, 'build', build_and_keep)
  for channels_last in (False, True):
    # No warm-up steps: only the timed ones can have changed the weights.
    assert torch_baseline.images_per_second('cnn3', images, labels, batch_size=16, steps=2, warmup_steps=0,
                                            channels_last=channels_last) > 0
    # the timed steps trained the model, in the layout asked for (a kernel of several input channels,
    # whose two layouts differ)
    conv = last_conv(built[-1])
    assert not torch.equal(conv.weight, built[-1].initial)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_rounds_give_medians_and_pair_each_ratio_within_its_round():
  ours = lambda index, plain, augmented: {
      'model': 'cnn4', 'dtype': 'float32', 'compile_seconds': 10.0 + index, 'plain_images_per_second': plain,
      'augmented_images_per_second': augmented, 'augment_time_ratio': plain / augmented,
      'epoch_seconds_augmented': 48000 / augmented, 'round': index}
  torch = lambda index, first, last: {
      'model': 'cnn4', 'measure': 'torch', 'images_per_second': max(first, last), 'round': index,
      'layout': 'channels_first' if first > last else 'channels_last', 'steps': 100, 'torch': '2.0',
      'images_per_second_by_layout': {'channels_first': first, 'channels_last': last}}
  # The machine slows down in round 1: both sides are slower there, and a ratio pairs a round's own sides.
  records = [ours(0, 500.0, 480.0), {'model': 'cnn4', 'measure': 'keras', 'images_per_second': 350.0, 'round': 0},
             torch(0, 600.0, 500.0),
             ours(1, 250.0, 240.0), {'model': 'cnn4', 'measure': 'keras', 'images_per_second': 160.0, 'round': 1},
             torch(1, 240.0, 300.0),
             ours(2, 450.0, 400.0), {'model': 'cnn4', 'measure': 'keras', 'images_per_second': 320.0, 'round': 2},
             torch(2, 520.0, 400.0)]
  lines = benchmark.markdown(records, INFO).splitlines()
  assert any(line.startswith('3 rounds, each timing every model once') for line in lines)
  rows = [line for line in lines if line.startswith('| cnn4')]
  assert len(rows) == 1
  # Medians over rounds: compile 11.0 s, plain 450, augmented 400, plain/augmented 1.04 (of 1.04, 1.04,
  # 1.125); Keras 320, PyTorch 520. Ratios by round: Keras 1.37, 1.50, 1.25 (median 1.37, where the
  # medians' quotient 400 / 320 would give 1.25); PyTorch 0.80, 0.80, 0.77 (median 0.80, not 400 / 520).
  assert rows[0] == ('| cnn4 | float32 | 11.0 | 450 | 400 | 1.04 | 120.00 | 320 | 1.37 (1.25-1.50) | - | - |'
                     ' 520 | 0.80 (0.77-0.80) | - |')
  assert any(line.endswith('cnn4 channels_first/channels_last (channels_first 520, channels_last 400; '
                           '100 steps; PyTorch 2.0).') for line in lines)
