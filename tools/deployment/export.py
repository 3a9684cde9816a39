"""Export a model to ONNX, an AOTInductor ``.pt2`` package or TorchScript, in deploy form, and
check the artifact against PyTorch.

    python tools/deployment/export.py CONFIG CHECKPOINT --format onnx|pt2|torchscript
        [--out PATH] [--shape H W] [--batch N] [--dynamic-batch] [--opset N] [--tolerance T]

A training-time checkpoint is converted to the deploy form first (the tool says so). The
artifact (default: <checkpoint without extension>.onnx / .pt2 / .ts) takes a preprocessed
(normalized) batch and returns the raw network output; it is written only after it ran in its
own runtime (onnxruntime, AOTInductor, torch.jit) on random batches within --tolerance of
PyTorch. Exits 1 with a one-line error for bad input, a forward that cannot be exported (the
error names the module) or a failed check; nothing is written then. The last two lines say
what the artifact takes: the input's shape (a batch of one unless --batch or --dynamic-batch)
and the preprocessing, which ``mmrepmlp.apis.export.image_to_input(CONFIG, IMAGE)`` applies to
an image file.
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.apis.export import DEFAULT_BATCH, DYNAMIC_EXAMPLE_BATCH, export_checkpoint
from mmrepmlp.deployment import DEFAULT_OPSET, DEFAULT_TOLERANCE, EXPORTERS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a model in deploy form to ONNX, AOTInductor (.pt2) or TorchScript.')
    parser.add_argument('config', help='the config (training or deploy form)')
    parser.add_argument('checkpoint', help='a checkpoint of that config')
    parser.add_argument('--format', required=True, choices=sorted(EXPORTERS),
                        help='the artifact format')
    parser.add_argument('--out', help='the artifact (default: the checkpoint path with the '
                        'extension .onnx, .pt2 or .ts)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the config's input size)")
    parser.add_argument('--batch', type=int,
                        help=f'example batch size (default: {DEFAULT_BATCH}; '
                        f'{DYNAMIC_EXAMPLE_BATCH} with --dynamic-batch)')
    parser.add_argument('--dynamic-batch', action='store_true',
                        help='make the batch axis dynamic (checked on a second batch size)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help='ONNX opset (default: %(default)s)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help='largest accepted output difference from PyTorch, relative to '
                        'the largest output magnitude (default: %(default)g)')
    return parser.parse_args(argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    export_checkpoint(args.config, args.checkpoint, args.format, out=args.out,
                      shape=args.shape, batch=args.batch, dynamic_batch=args.dynamic_batch,
                      opset=args.opset, tolerance=args.tolerance)


if __name__ == '__main__':
    main()
