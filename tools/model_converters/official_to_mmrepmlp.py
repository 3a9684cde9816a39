"""Convert an official RepMLP checkpoint into an MMPretrain checkpoint of mmrepmlp's models.

    python tools/model_converters/official_to_mmrepmlp.py SRC DST [--model NAME]

SRC is a checkpoint of the official code (github.com/DingXiaoH/RepMLP): RepMLP-ResNet
(``repmlp_resnet.py``, Light or Bottleneck) or RepMLPNet (``repmlpnet.py``, any of the six
presets), or MMPretrain's RepMLPNet (``repmlp-base_3rdparty_8xb64_in1k[-256px]``); train-time
or deploy (locality-injected) form, with or without a ``module.`` prefix or a
``state_dict``/``model`` wrapper. The model is recognised from its keys and shapes; DST gets
``{'state_dict': ..., 'meta': ...}`` with ``backbone.``/``head.`` keys. The last line printed is
``model: NAME``, the model zoo name that loads DST::

    from mmpretrain import get_model
    model = get_model(NAME, pretrained=DST)
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes, registries and the model index)
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.models.official_import import import_official_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official RepMLP or MMPretrain RepMLPNet checkpoint for '
        'mmrepmlp.')
    parser.add_argument('src', help='the official checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--model', metavar='NAME',
                        help='the model zoo name to convert for (default: detected)')
    return parser.parse_args(argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    name = import_official_checkpoint(args.src, args.dst, args.model)
    print(f'wrote {args.dst}')
    print(f'model: {name}')


if __name__ == '__main__':
    main()
