"""Convert a training-time checkpoint to the deploy form (RepMLP's structural
re-parameterization), verify it, and write the deploy checkpoint and config.

    python tools/deploy_convert.py CONFIG CHECKPOINT [--out DEPLOY.pth] [--no-verify]

Writes DEPLOY.pth (default: <CHECKPOINT>_deploy.pth) and <config name>_deploy.py next to it;
test them with ``tools/test.py <config name>_deploy.py DEPLOY.pth``. Exits 1 with a one-line
error for bad input or when the outputs of both forms differ beyond --tolerance; nothing is
written then. A checkpoint already in deploy form is reported and left alone (exit 0).
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis import convert_checkpoint
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.deployment import DEFAULT_TOLERANCE


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a checkpoint to the deploy (re-parameterized) form.')
    parser.add_argument('config', help='the training-time config')
    parser.add_argument('checkpoint', help='a training-time checkpoint of that config')
    parser.add_argument('--out', help='the deploy checkpoint, or a folder for it (default: '
                        '<checkpoint>_deploy.pth)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip comparing the outputs of both forms on a random batch')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help='largest accepted output difference, relative to the largest '
                        'output magnitude (default: %(default)g)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="verification input size (default: the config's input size)")
    return parser.parse_args(argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    convert_checkpoint(args.config, args.checkpoint, args.out, verify=not args.no_verify,
                       tolerance=args.tolerance, shape=args.shape)


if __name__ == '__main__':
    main()
