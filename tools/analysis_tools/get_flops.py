"""Parameters and FLOPs of the model of a config, in its training-time and deploy forms.

    python tools/analysis_tools/get_flops.py CONFIG [CONFIG ...] [--shape H W]

Prints one Markdown table row per config and form (batch 1):

- params: :func:`mmrepmlp.analysis.count_params`;
- FLOPs: :func:`mmrepmlp.analysis.count_flops` (MMEngine's analysis: convs, FCs, matmuls,
  and also norm layers and pooling);
- conv/FC MACs: the multiply-accumulates of convs, FCs and matmuls only, the paper's
  convention (its tables count these).

The training-time form counts each Local Perceptron branch as its own conv, as the paper does
(and as the block computes it). The deploy form is the model after ``repmlp_model_convert``; a
deploy config only has that row.
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.analysis import count_flops, count_params
from mmrepmlp.apis import build_model, input_shape, load_config
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.reparam import repmlp_model_convert


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Count parameters and FLOPs of models.')
    parser.add_argument('configs', nargs='+', metavar='CONFIG', help='model config files')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size; also the backbone's img_size when it has one "
                        "(default: each config's own)")
    return parser.parse_args(argv)


def model_forms(model):
    """``[(form, model)]``: the training-time form (if any) and the deploy form."""
    if not any(getattr(m, 'deploy', None) is False for m in model.modules()):
        return [('deploy', model)]
    deployed = repmlp_model_convert(model)
    return [('train', model), ('deploy', deployed)]


def measure(config_path, shape=None):
    """Rows ``(config, shape, form, params, flops, conv_fc_macs)`` of one config."""
    cfg = load_config(config_path)
    if shape is not None and 'img_size' in cfg.model.get('backbone', {}):
        cfg.model.backbone.img_size = tuple(shape)
    shape = input_shape(cfg, shape)
    return [(config_path, shape, form, count_params(m), count_flops(m, shape),
             count_flops(m, shape, conv_fc_only=True)) for form, m in model_forms(build_model(cfg))]


def format_row(config_path, shape, form, params, flops, macs):
    return (f'| {config_path} | {shape[1]}x{shape[2]} | {form} | {params / 1e6:.2f}M '
            f'({params}) | {flops / 1e9:.3f}G ({flops}) | {macs / 1e9:.3f}G ({macs}) |')


@tool_main
def main(argv=None):
    args = parse_args(argv)
    print('| config | input | form | params | FLOPs (MMEngine) | conv/FC MACs |')
    print('|---|---|---|---|---|---|')
    for config_path in args.configs:
        for row in measure(config_path, args.shape):
            print(format_row(*row), flush=True)


if __name__ == '__main__':
    main()
