"""Convert a ResNet-50 checkpoint of torchvision, MMPretrain or MMSegmentation (plain or deep
stem, e.g. ResNetV1c) into RepMLPResNet('res50-base') weights.

    python tools/model_converters/resnet_to_mmrepmlp.py SRC DST

DST holds ``backbone.``-prefixed keys, the layout MMPretrain writes, so it initializes the
baseline configs (e.g. configs/repmlp_pspnet/pspnet_res50-d8_*.py through
``model.backbone.init_cfg.checkpoint``; set ``deep_stem=True`` when the last line says so).
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.models.resnet_import import import_resnet_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert ResNet-50 weights for RepMLPResNet.')
    parser.add_argument('src', help='the ResNet-50 checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    return parser.parse_args(argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    deep_stem = import_resnet_checkpoint(args.src, args.dst)
    print(f'wrote {args.dst}')
    print(f'deep_stem: {deep_stem}')


if __name__ == '__main__':
    main()
