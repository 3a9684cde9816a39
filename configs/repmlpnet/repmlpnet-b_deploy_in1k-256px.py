# The deploy (locality-injected) form of repmlpnet-b_8xb32_in1k-256px.py, for checkpoints
# converted by tools/deploy_convert.py or imported deploy ones (official, MMPretrain).
_base_ = './repmlpnet-b_8xb32_in1k-256px.py'

model = dict(backbone=dict(deploy=True))
