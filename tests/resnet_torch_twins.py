"""torch.nn twins of the ResNet families, written from the papers' layouts (He et al. 2016's
pre-activation unit, kuangliu/pytorch-cifar's PreActResNet18, Zagoruyko & Komodakis' WRN), and the copy
of flax variables into them: tests/test_resnets.py compares them with ours. Imported only by the tests that
use them, once torch is known to be there, so that the rest of that file runs without torch."""

import numpy as np
import torch

F = torch.nn.functional


class TorchPreActBlock(torch.nn.Module):
  """He et al. 2016 (fig. 1b): BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout (WRN)]-conv3x3, plus the input, or
  a 1x1 strided projection of the pre-activated input where the shape changes (kuangliu's, WRN's)."""

  def __init__(self, cin, cout, stride, dropout=0.0):
    super().__init__()
    self.bn1 = torch.nn.BatchNorm2d(cin)
    self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
    self.bn2 = torch.nn.BatchNorm2d(cout)
    self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
    self.dropout = dropout
    self.shortcut = torch.nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

  def forward(self, x):
    out = F.relu(self.bn1(x))
    shortcut = self.shortcut(out) if self.shortcut is not None else x
    out = F.relu(self.bn2(self.conv1(out)))
    out = F.dropout(out, self.dropout, self.training)
    return self.conv2(out) + shortcut


class TorchPreActNet(torch.nn.Module):
  """conv3x3 stem -> stages (stride 2 at the first block of all but the first) -> [BN-ReLU] -> mean -> Linear.

  `final_bn=False` is kuangliu's PreActResNet, which leaves out the paper's last BN-ReLU.
  """

  def __init__(self, channels, stem, stage_sizes, widths, num_classes=10, final_bn=True, dropout=0.0):
    super().__init__()
    self.stem = torch.nn.Conv2d(channels, stem, 3, 1, padding=1, bias=False)
    self.blocks = torch.nn.ModuleDict()
    cin = stem
    for i, (n, width) in enumerate(zip(stage_sizes, widths)):
      for j in range(n):
        self.blocks[f'stage{i + 1}_block{j + 1}'] = TorchPreActBlock(cin, width, 2 if i and not j else 1,
                                                                     dropout)
        cin = width
    self.final_bn = torch.nn.BatchNorm2d(cin) if final_bn else None
    self.classifier = torch.nn.Linear(cin, num_classes)

  def forward(self, x):
    x = self.stem(x)
    for block in self.blocks.values():
      x = block(x)
    if self.final_bn is not None:
      x = F.relu(self.final_bn(x))
    return self.classifier(x.mean(dim=(2, 3)))


def torch_preact_resnet18(final_bn=True):
  return TorchPreActNet(3, 64, (2, 2, 2, 2), (64, 128, 256, 512), final_bn=final_bn)


def torch_wrn(depth, k, channels=3, num_classes=10):
  n = (depth - 4) // 6
  return TorchPreActNet(channels, 16, (n, n, n), (16 * k, 32 * k, 64 * k), num_classes)


def torch_counts(module):
  """(trainable parameters, BatchNorm running statistics), as flax's 'params' and 'batch_stats' count."""
  params = sum(p.numel() for p in module.parameters() if p.requires_grad)
  stats = sum(b.numel() for name, b in module.named_buffers() if not name.endswith('num_batches_tracked'))
  return params, stats


def copy_into_torch(variables, twin):
  """Writes the flax variables into the twin, by the names both take from the layouts."""
  params, stats = variables['params'], variables['batch_stats']

  def conv(torch_conv, p):
    torch_conv.weight.copy_(torch.from_numpy(np.array(p['kernel']).transpose(3, 2, 0, 1)))

  def bn(torch_bn, p, s):
    for attribute, value in (('weight', p['scale']), ('bias', p['bias']), ('running_mean', s['mean']),
                             ('running_var', s['var'])):
      getattr(torch_bn, attribute).copy_(torch.from_numpy(np.array(value)))

  with torch.no_grad():
    conv(twin.stem, params['stem'])
    for name, block in twin.blocks.items():
      for part in ('conv1', 'conv2') + (('shortcut',) if block.shortcut is not None else ()):
        conv(getattr(block, part), params[name][part])
      for part in ('bn1', 'bn2'):
        bn(getattr(block, part), params[name][part], stats[name][part])
    assert set(params) == {'stem', 'final_bn', 'classifier', *twin.blocks}  # nothing left uncopied
    bn(twin.final_bn, params['final_bn'], stats['final_bn'])
    twin.classifier.weight.copy_(torch.from_numpy(np.array(params['classifier']['kernel']).T))
    twin.classifier.bias.copy_(torch.from_numpy(np.array(params['classifier']['bias'])))
