"""Write the RepMLPNet fixtures: what the official code builds and computes.

    python tests/data/official_repmlpnet/make_fixtures.py --official DIR

``DIR`` is a checkout of github.com/DingXiaoH/RepMLP (main branch, the one with
``repmlpnet.py``); nothing of it is copied here, only what it builds and computes:

- ``counts.json``: for each official preset (``model_map`` of ``repmlpnet.py``), the
  parameters and the multiply-accumulates of convs, FCs and matmuls (batch 1, at the preset's
  input size, counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device) of
  the training form and of the deploy form (built with ``deploy=True``);
- ``shapes.json.gz``: ``{preset: {'train' | 'deploy': {key: shape}}}``, the state-dict
  layout of every preset in both forms, for the importer's tests;
- ``outputs.pth``: a RepMLP block (5x5 maps, 4 share-sets, kernels 1, 3, 5), a unit and a
  small RepMLPNet (2x2 patches, 16x16 inputs) with random weights and BN statistics
  (mmrepmlp's ``randomize_norm_layers``): the constructor arguments, the training-form state
  dict, the state dict after the official locality injection, an input batch and both
  forms' outputs (eval mode, float32). Every map is one partition, the official presets'
  case: on maps of several partitions the official code reorders the partitions among the
  channels of a share-set after FC3, which mmrepmlp does not copy (docs/repmlpnet.md).

``tests/models/test_official_repmlpnet.py`` reads them.
"""
import argparse
import copy
import gzip
import json
import os.path as osp
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from mmrepmlp.reparam import randomize_norm_layers

HERE = osp.dirname(osp.abspath(__file__))
INPUT_SIZE = {'224': 224, '256': 256}
BLOCK = dict(in_channels=8, out_channels=8, h=5, w=5, reparam_conv_k=(1, 3, 5),
             globalperceptron_reduce=4, num_sharesets=4)
UNIT = dict(channels=8, h=6, w=6, reparam_conv_k=(1, 3), globalperceptron_reduce=4,
            ffn_expand=4, num_sharesets=2)
NETWORK = dict(num_class=10, patch_size=(2, 2), num_blocks=(1, 1, 2, 1), channels=(4, 8, 8, 16),
               hs=(8, 4, 2, 1), ws=(8, 4, 2, 1), sharesets_nums=(1, 2, 4, 8),
               reparam_conv_k=(1, 3), globalperceptron_reduce=4)


def macs(model, size):
    with torch.device('meta'):
        inputs = torch.zeros(1, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops() // 2


def counts_and_shapes(repmlpnet):
    counts, layouts = {}, {}
    for name, create in sorted(repmlpnet.model_map.items()):
        size = INPUT_SIZE[name[-3:]]
        counts[name], layouts[name] = dict(input_size=size), {}
        for form, deploy in (('train', False), ('deploy', True)):
            with torch.device('meta'):
                model = create(deploy=deploy).eval()
            counts[name][f'params_{form}'] = sum(p.numel() for p in model.parameters())
            counts[name][f'macs_{form}'] = macs(model, size)
            layouts[name][form] = {k: list(v.shape) for k, v in model.state_dict().items()}
    return counts, layouts


def case(module, arguments, inputs, inject):
    """Both forms of ``module`` (random BNs) on each input batch."""
    module = randomize_norm_layers(module.eval())
    deploy = copy.deepcopy(module)
    inject(deploy)
    with torch.no_grad():
        return dict(arguments=arguments, train_state=module.state_dict(),
                    deploy_state=deploy.state_dict(), inputs=inputs,
                    train_outputs=[module(x) for x in inputs],
                    deploy_outputs=[deploy(x) for x in inputs])


def outputs(repmlpnet):
    torch.manual_seed(0)
    return dict(
        block=case(repmlpnet.RepMLPBlock(**BLOCK), BLOCK, [torch.randn(2, 8, 5, 5)],
                   lambda m: m.local_inject()),
        unit=case(repmlpnet.RepMLPNetUnit(**UNIT), UNIT, [torch.randn(2, 8, 6, 6)],
                  lambda m: m.repmlp_block.local_inject()),
        network=case(repmlpnet.RepMLPNet(**NETWORK), NETWORK,
                     [torch.randn(2, 3, 16, 16)],
                     lambda m: m.locality_injection()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--official', required=True, metavar='DIR')
    args = parser.parse_args()
    sys.path.insert(0, osp.abspath(args.official))
    import repmlpnet

    counts, layouts = counts_and_shapes(repmlpnet)
    with open(osp.join(HERE, 'counts.json'), 'w') as f:
        json.dump(counts, f, indent=1)
        f.write('\n')
    # mtime=0: the same layouts give the same bytes
    with gzip.GzipFile(osp.join(HERE, 'shapes.json.gz'), 'wb', mtime=0) as f:
        f.write(json.dumps(layouts).encode())
    torch.save(outputs(repmlpnet), osp.join(HERE, 'outputs.pth'))
    print(f'wrote counts.json, shapes.json.gz and outputs.pth into {HERE}')


if __name__ == '__main__':
    main()
