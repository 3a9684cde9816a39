# The deploy (locality-injected) form of repmlpnet-t_8xb32_in1k.py, for checkpoints
# converted by tools/deploy_convert.py or imported deploy ones (official, MMPretrain).
_base_ = './repmlpnet-t_8xb32_in1k.py'

model = dict(backbone=dict(deploy=True))
