"""The paper's Fig. 5: the FC3 kernel of one RepMLP block for one output point, before and
after merging the Local Perceptron, as a PNG.

    python tools/visualizations/vis_fc3.py CONFIG CHECKPOINT --block NAME [--out PNG]
        [--point I J] [--out-channel O] [--in-channel C]

NAME is the block's module path in the model, e.g. ``backbone.stages.1.1.repmlp``; a wrong
name lists the model's RepMLP blocks.
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis import load_model
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.utils.files import check_not_overwriting, check_writable
from mmrepmlp.visualization import (
    centre_point,
    fc3_point_weights,
    find_repmlp_block,
    plot_fc3_point_weights,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Plot a RepMLP block's FC3 kernel.")
    parser.add_argument('config', help='the training-time config')
    parser.add_argument('checkpoint', help='a training-time checkpoint')
    parser.add_argument('--block', required=True, help='module path of the RepMLP block')
    parser.add_argument('--out', default='fc3.png', help='the PNG to write')
    parser.add_argument('--point', type=int, nargs=2, metavar=('I', 'J'),
                        help='output point in the partition (default: the centre)')
    parser.add_argument('--out-channel', type=int, default=0, help='output channel')
    parser.add_argument('--in-channel', type=int, default=0,
                        help="input channel within the output channel's group")
    return parser.parse_args(argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    check_not_overwriting([args.out], [args.config, args.checkpoint])
    check_writable(args.out)
    model, _ = load_model(args.config, args.checkpoint)
    block = find_repmlp_block(model, args.block)
    point = tuple(args.point) if args.point else centre_point(block)
    before, after = fc3_point_weights(block, point, args.out_channel, args.in_channel)
    plot_fc3_point_weights(
        before, after, point, block.largest_kernel, args.out,
        title=f'{args.block}: output channel {args.out_channel}, point {point}, input '
        f'channel {args.in_channel}')
    print(f'saved {args.out}')


if __name__ == '__main__':
    main()
