# The deploy (re-parameterized) form of repmlp-res50-g8g8_8xb32_in1k-320px.py: load a checkpoint
# converted by tools/deploy_convert.py (or the importer's deploy output).
_base_ = './repmlp-res50-g8g8_8xb32_in1k-320px.py'

model = dict(backbone=dict(deploy=True))
