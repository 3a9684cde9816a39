"""Equivalence demo: ``python -m mmrepmlp.reparam [--batch N] [--rounds R] [--threads T]``.

For a few RepMLP blocks (a RepMLP-Res50 c3 block, a c4 block, an awkward non-divisible one,
and a 1-D one) with trained-like BN statistics, prints the max absolute and relative
difference between the training-time form and the converted deploy form in float32 and
float64, and the deploy form's speedup in eval mode (measured interleaved on this machine,
whose processor, threads and load average the report opens and closes with).
"""
import argparse

import torch

from ..analysis import inference_speed, load_average_line, machine_lines
from ..models.blocks import RepMLP1d, RepMLPBlock
from .check import deploy_difference, randomize_norm_layers

# name -> (block class, constructor arguments, input shape without batch)
DEMO_BLOCKS = {
    'RepMLP-Res50 c3 (Bottleneck g8)': (RepMLPBlock, dict(
        in_channels=64, out_channels=64, in_size=28, partition_size=7, groups=8), (64, 28, 28)),
    'RepMLP-Res50 c4 (Light g4)': (RepMLPBlock, dict(
        in_channels=128, out_channels=128, in_size=14, partition_size=7, groups=4),
        (128, 14, 14)),
    'C!=O, 30x25 in 7x6 parts, non-square K': (RepMLPBlock, dict(
        in_channels=16, out_channels=32, in_size=(30, 25), partition_size=(7, 6), groups=4,
        local_kernels=(1, (3, 1), (3, 5), 5), fc1_fc2_reduction=4), (16, 30, 25)),
    'RepMLP1d, L=100 in parts of 16': (RepMLP1d, dict(
        in_channels=32, out_channels=32, in_length=100, partition_length=16, groups=2,
        local_kernels=(1, 3, 7)), (32, 100)),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=int, default=8, help='batch size (default 8)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='timed rounds for the speedup (default 5)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_lines('cpu', [f'batch {args.batch}'], args.rounds))
    header = f'{"block":42} {"dtype":8} {"max abs diff":>13} {"max rel diff":>13} {"speedup":>8}'
    print(header)
    print('-' * len(header))
    for name, (block_class, kwargs, shape) in DEMO_BLOCKS.items():
        for dtype in (torch.float32, torch.float64):
            torch.manual_seed(0)
            block = randomize_norm_layers(block_class(**kwargs)).to(dtype).eval()
            inputs = torch.randn(args.batch, *shape, dtype=dtype)
            max_abs, max_rel, deployed = deploy_difference(block, inputs)
            speedup = ''
            if dtype == torch.float32:
                speed = inference_speed({'train': block, 'deploy': deployed}, inputs,
                                        rounds=args.rounds)
                speedup = f'{speed["deploy"] / speed["train"]:.2f}x'
            print(f'{name:42} {str(dtype)[6:]:8} {max_abs:13.3e} {max_rel:13.3e} {speedup:>8}')
    print('speedup: eval-mode forward of the training-time form / of the deploy form.')
    print(load_average_line())


if __name__ == '__main__':
    main()
