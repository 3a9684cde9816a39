"""Write ``blocks.pth``: deploy-form RepMLP blocks saved by the code of the channel-major
deploy layout (RepMLPBlock ``_version`` 1, mmrepmlp at commit 07d04ef), with inputs and
outputs, so that tests can check that such checkpoints still load and compute the same.

Run from a checkout of that commit (not this one): ``python tests/data/deploy_v1/generate.py``.
The file holds ``state_dict`` (with PyTorch's ``_metadata``, which carries the version), the
``inputs`` and ``outputs`` per block name (float64), and ``configs``, the blocks' arguments.
"""
import os.path as osp

import torch

from mmrepmlp.models.blocks import RepMLP1d, RepMLPBlock
from mmrepmlp.reparam import randomize_norm_layers

CONFIGS = {
    # grouped, partitions that do not tile the map (zero padding), Global Perceptron
    'padded': dict(in_channels=4, out_channels=6, in_size=(7, 9), partition_size=(4, 5),
                   groups=2, local_kernels=(1, 3), fc1_fc2_reduction=2),
    # whole partitions, one group
    'whole': dict(in_channels=6, out_channels=4, in_size=(8, 8), partition_size=(4, 4),
                  local_kernels=(1, 3)),
    # one partition: no Global Perceptron
    'single': dict(in_channels=4, out_channels=4, in_size=(4, 5), partition_size=(4, 5),
                   groups=4, local_kernels=(3, )),
}
CONFIGS_1D = {'sequence': dict(in_channels=4, out_channels=4, in_length=11,
                               partition_length=4, groups=2, local_kernels=(1, 3))}


def build():
    torch.manual_seed(0)
    blocks = torch.nn.ModuleDict()
    for name, cfg in CONFIGS.items():
        blocks[name] = RepMLPBlock(**cfg)
    for name, cfg in CONFIGS_1D.items():
        blocks[name] = RepMLP1d(**cfg)
    blocks = randomize_norm_layers(blocks.double(), seed=0).eval()
    for block in blocks.values():
        block.switch_to_deploy()
    return blocks


def main():
    blocks = build()
    generator = torch.Generator().manual_seed(1)
    inputs = {}
    for name, block in blocks.items():
        shape = (2, block.in_channels, block.in_size[1]) if isinstance(block, RepMLP1d) else (
            2, block.in_channels, *block.in_size)
        inputs[name] = torch.randn(shape, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        outputs = {name: block(inputs[name]) for name, block in blocks.items()}
    torch.save(dict(state_dict=blocks.state_dict(), inputs=inputs, outputs=outputs,
                    configs=dict(**CONFIGS, **CONFIGS_1D)),
               osp.join(osp.dirname(osp.abspath(__file__)), 'blocks.pth'))


if __name__ == '__main__':
    main()
