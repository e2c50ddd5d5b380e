import sys
sys.path.insert(0, '/work/main')
from configs import speedrun_cpu
import ml_collections

def get_config(arg=''):
  config = speedrun_cpu.get_config()
  config.model = '/tmp/sr/net.py:Net'
  kw = {}
  for item in filter(None, arg.split(';')):
    k, v = item.split('=')
    kw[k] = eval(v)
  config.model_kwargs = ml_collections.ConfigDict(kw)
  return config
