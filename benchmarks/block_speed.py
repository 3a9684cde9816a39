"""Speed of the RepMLP block's implementation choices, measured side by side in one run.

For the RepMLP-Res50 c3 and c4 block shapes at 224 (from the official checkpoints' keys and
shapes in official_v1/*.json: partitions 7x7, kernels 1, 3, 5; Light blocks C=O=64 in c3 and
128 in c4 with g=4, Bottleneck g8/8 blocks C=O=64 in both stages) it times:

- deploy forward (eval, no grad): FC3 as one batched matmul vs as a grouped 1x1 conv (the
  official form);
- training step (forward + backward, train mode): Local Perceptron computed per branch vs
  fused into one stacked conv (ratio per-branch / fused); two ceilings on
  what a faster Local Perceptron could gain: the block without any Local Perceptron, and the
  block whose branches keep their convs but lose their BNs (not the RepMLP function: the
  cost of the branch convs alone, the least conv work an exact Local Perceptron does); and,
  for scale, the default training step vs the official-style one (FC3 as grouped conv).

Every pair is measured interleaved (``mmrepmlp.analysis.measure_interleaved``), so load from
other processes hits both sides alike and the ratio is meaningful. The goals these ratios are
read against are in docs/performance.md.

    python benchmarks/block_speed.py [--batch 8] [--rounds 10] [--threads 2] [--quick]
"""
import argparse

import torch
import torch.nn as nn
from block_references import use_conv_fc3, use_fused_local_perceptron

from mmrepmlp.analysis import (
    load_average_line,
    machine_lines,
    measure_interleaved,
    no_grad_step,
)
from mmrepmlp.models.blocks import RepMLPBlock
from mmrepmlp.reparam import randomize_norm_layers

# name -> (channels C = O, input size H = W, groups g); partitions 7x7, kernels (1, 3, 5).
SHAPES = {
    'Light c3': (64, 28, 4),
    'Light c4': (128, 14, 4),
    'Bottleneck g8/8 c3': (64, 28, 8),
    'Bottleneck g8/8 c4': (64, 14, 8),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=int, default=8, help='batch size (default 8)')
    parser.add_argument('--rounds', type=int, default=10,
                        help='timed interleaved rounds; the median is reported (default 10)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    parser.add_argument('--quick', action='store_true',
                        help='CI smoke run: 1 round, 1 warm-up, batch 2')
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds = 2, 1
    args.warmup = 1 if args.quick else 2
    return args


def make_blocks(channels, size, groups, variants, **common):
    """One block per variant ``(constructor overrides, reference implementation to put into
    it or None)`` (``block_references.py``), all with the same weights."""
    torch.manual_seed(0)
    blocks = {
        name: RepMLPBlock(channels, channels, size, 7, groups=groups, **common, **overrides)
        for name, (overrides, _) in variants.items()
    }
    reference = randomize_norm_layers(next(iter(blocks.values())))
    for block in blocks.values():
        # A block without Local Perceptron takes the subset of the weights it has.
        block.load_state_dict(reference.state_dict(), strict=bool(block.local_kernels))
    for name, (_, use_reference) in variants.items():
        if use_reference is not None:
            use_reference(blocks[name])
    return blocks


def without_branch_norms(block):
    """``block`` with the BNs of its Local Perceptron's branches removed (timing only)."""
    for branch in block.local_perceptron.values():
        branch.bn = nn.Identity()
    return block


def training_step(block, inputs):

    def run():
        block.zero_grad(set_to_none=True)
        block(inputs).sum().backward()

    return run


def measure_shape(channels, size, groups, args):
    """Median seconds of each timed variant for one block shape."""
    inputs = torch.randn(args.batch, channels, size, size)
    deploy = make_blocks(channels, size, groups, {
        'matmul': ({}, None),
        'conv': ({}, use_conv_fc3)
    }, deploy=True)
    train = make_blocks(channels, size, groups, {
        'per_branch': ({}, None),
        'fused': ({}, use_fused_local_perceptron),
        'conv_fc3': ({}, use_conv_fc3),
        'no_local': (dict(local_kernels=()), None),
        'convs_only': ({}, None)
    })
    without_branch_norms(train['convs_only'])
    for block in deploy.values():
        block.eval()
    timed = {f'deploy {k}': no_grad_step(b, inputs) for k, b in deploy.items()}
    timed.update({f'train {k}': training_step(b.train(), inputs) for k, b in train.items()})
    # Two interleaved groups: each pair compared under the same load.
    seconds = measure_interleaved({k: v for k, v in timed.items() if k.startswith('deploy')},
                                  warmup=args.warmup, rounds=args.rounds)
    seconds.update(
        measure_interleaved({k: v for k, v in timed.items() if k.startswith('train')},
                            warmup=args.warmup, rounds=args.rounds))
    return seconds


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_lines('cpu', [f'batch {args.batch}'], args.rounds))
    header = (f'{"block (C=O, HxW, g)":34} | {"deploy: matmul":>14} {"conv":>9} {"ratio":>6} | '
              f'{"train: per-branch":>17} {"fused":>9} {"ratio":>6} | {"no local":>9} '
              f'{"ceiling":>7} | {"convs only":>10} {"ceiling":>7} | {"conv FC3":>9} '
              f'{"ratio":>6}')
    print(header)
    print('-' * len(header))
    rows = {}
    for name, (channels, size, groups) in SHAPES.items():
        s = rows[name] = measure_shape(channels, size, groups, args)
        ms = {k: f'{v * 1e3:6.1f} ms' for k, v in s.items()}
        label = f'{name} ({channels}, {size}x{size}, {groups})'
        print(f'{label:34} | {ms["deploy matmul"]:>14} {ms["deploy conv"]:>9} '
              f'{s["deploy conv"] / s["deploy matmul"]:5.2f}x | '
              f'{ms["train per_branch"]:>17} {ms["train fused"]:>9} '
              f'{s["train per_branch"] / s["train fused"]:5.2f}x | '
              f'{ms["train no_local"]:>9} {s["train per_branch"] / s["train no_local"]:6.2f}x | '
              f'{ms["train convs_only"]:>10} '
              f'{s["train per_branch"] / s["train convs_only"]:6.2f}x | '
              f'{ms["train conv_fc3"]:>9} {s["train conv_fc3"] / s["train per_branch"]:5.2f}x')
    print(f'batch {args.batch}, {args.threads} threads, median of {args.rounds} interleaved '
          'rounds. Ratios (> 1: the first is slower): deploy conv / matmul; train per-branch / '
          'fused; ceilings: train per-branch / without Local Perceptron (the most any Local '
          'Perceptron implementation could gain), and / with the branch convs but not their '
          'BNs (the most that faster BNs and adds could gain); train with conv FC3 / default '
          '(matmul FC3, per-branch local).')
    print(load_average_line())
    return rows


if __name__ == '__main__':
    main()
