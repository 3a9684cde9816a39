"""Write ``block_outputs.pth``: what the official RepMLP v1 code computes with its own blocks.

    python tests/data/official_v1/make_block_outputs.py --official-v1 DIR

``DIR`` is a checkout of github.com/DingXiaoH/RepMLP at the commit before its RepMLPNet
rewrite (``git checkout 82c0ea6~1``, the one with ``repmlp_resnet.py``); nothing of it is
copied here, only its outputs. For a Light Block and a RepMLP Bottleneck of the official
``repmlp_blocks.py`` (small widths, 12x12 maps in 6x6 partitions, g = 4, K = 1, 3, 5), with
random weights and BN statistics (mmrepmlp's ``randomize_norm_layers``), the file holds per
block: the constructor arguments, the training-form state dict, the state dict after the
official ``repmlp_model_convert``, an input batch and both forms' outputs (eval mode).
``tests/models/test_official_v1_outputs.py`` loads these weights into mmrepmlp's blocks
through the official importer's key mapping.
"""
import argparse
import os.path as osp
import sys

import torch

from mmrepmlp.reparam import randomize_norm_layers

HERE = osp.dirname(osp.abspath(__file__))
COMMON = dict(H=12, W=12, h=6, w=6, reparam_conv_k=(1, 3, 5), fc1_fc2_reduction=1,
              fc3_groups=4)
BLOCKS = {
    'light': ('RepMLPLightBlock', dict(in_channels=32, mid_channels=8, out_channels=32)),
    'bottleneck': ('RepMLPBottleneckBlock',
                   dict(in_channels=32, mid_channels=16, out_channels=32, r=2)),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--official-v1', required=True, metavar='DIR')
    parser.add_argument('--out', default=osp.join(HERE, 'block_outputs.pth'))
    args = parser.parse_args()
    sys.path.insert(0, osp.abspath(args.official_v1))
    import repmlp
    import repmlp_blocks

    torch.manual_seed(0)
    cases = {}
    for name, (class_name, arguments) in BLOCKS.items():
        arguments = {**arguments, **COMMON}
        block = getattr(repmlp_blocks, class_name)(**arguments, deploy=False).eval()
        randomize_norm_layers(block)  # BN statistics away from identities, so fusing shows
        inputs = torch.randn(2, arguments['in_channels'], arguments['H'], arguments['W'])
        deploy = repmlp.repmlp_model_convert(block, do_copy=True).eval()
        with torch.no_grad():
            cases[name] = dict(arguments=arguments, train_state=block.state_dict(),
                               deploy_state=deploy.state_dict(), inputs=inputs,
                               train_output=block(inputs), deploy_output=deploy(inputs))
    torch.save(cases, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
