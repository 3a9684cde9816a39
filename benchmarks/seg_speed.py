"""PSPNet with RepMLP-Res50-g4/8 vs PSPNet with ResNet-50 at output stride 8: speed and FLOPs.

The models are the configs of ``configs/repmlp_pspnet/`` in deploy form (every conv-BN of the
backbone fused, every RepMLP merged into its FCs), run on one crop as MMSeg runs them at test
time, up to the logits: backbone and PSP head (the auxiliary head only trains). Three models:

- ``pspnet-repmlp-res50-g4g8``: the paper's RepMLP model (Sec. 4.4; c4 not dilated);
- ``pspnet-res50-d8``: the paper's baseline, a plain ResNet-50 (7x7 stem) dilated 2/4;
- ``pspnet-r50-d8-v1c``: MMSeg's PSPNet-R50-D8 backbone (ResNetV1c, deep stem), as
  ``RepMLPResNet(deep_stem=True)``, which computes exactly what MMSeg's computes (see
  ``tests/segmentation/test_seg_backbone.py``).

For each input size (the paper's 713x713 crop and a smaller one; the RepMLP model is built for
each size) and batch, all models are timed interleaved in the same rounds
(:func:`mmrepmlp.analysis.measure_interleaved`, median), and the ratio of each to the baseline
is printed (> 1: faster). FLOPs are multiply-accumulates of one image: all of them as
MMEngine's analysis counts them, and those of convs and FCs only (the paper's convention).

    python benchmarks/seg_speed.py [--sizes 713 512] [--batches 1 2] [--rounds 3]
        [--threads 2] [--device cpu|cuda] [--quick]
"""
import argparse
import os

import torch
from mmengine.logging import MMLogger

from mmrepmlp.analysis import load_average_line, machine_lines
from mmrepmlp.apis.benchmark import (
    ModelSpec,
    add_timing_args,
    build_benchmark_models,
    model_flops,
    time_models,
)
from mmrepmlp.utils import find_repo_file

CONFIGS = 'repmlp_pspnet'
MODELS = {
    'pspnet-repmlp-res50-g4g8': ('pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713.py',
                                 {}),
    'pspnet-res50-d8': ('pspnet_res50-d8_8xb2-200e_cityscapes-713x713.py', {}),
    'pspnet-r50-d8-v1c': ('pspnet_res50-d8_8xb2-200e_cityscapes-713x713.py',
                          dict(deep_stem=True)),
}
BASELINE = 'pspnet-res50-d8'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[713, 512],
                        help='square input sizes (default 713 512)')
    add_timing_args(parser, batches=(1, 2), rounds=3, warmup=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.rounds, args.warmup = [128], [1], 1, 0
    return args


def model_specs(size):
    """The three segmentors for ``size x size`` inputs, random weights, deploy form."""
    configs = os.path.join(find_repo_file('configs'), CONFIGS)
    return [ModelSpec(os.path.join(configs, config), deploy=True, name=name, cfg_options={
        'model.backbone.img_size': (size, size), 'model.backbone.init_cfg': None,
        'model.data_preprocessor.size': (size, size),
        **{f'model.backbone.{k}': v for k, v in overrides.items()}})
        for name, (config, overrides) in MODELS.items()]


def measure_size(size, args):
    """``(name, size, batch, params, flops, conv/FC MACs, images/s, speed vs baseline)`` rows."""
    models = build_benchmark_models(model_specs(size), device=args.device)
    flops = model_flops(models)
    rows = []
    for batch in args.batches:
        results = {r.name: r for r in time_models(models, batch, args.warmup, args.rounds,
                                                  args.device)}
        rows += [(name, size, batch, r.params, *flops[name], r.images_per_s,
                  r.images_per_s / results[BASELINE].images_per_s)
                 for name, r in results.items()]
    return rows


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    MMLogger.get_instance('seg_speed', log_level='WARNING')
    print(machine_lines(args.device, ['deploy forms'], args.rounds))
    print('| model | input | batch | params | GFLOPs (all) | GMACs (conv/FC) | images/s '
          '| vs res50-d8 |')
    print('|---|---|---:|---:|---:|---:|---:|---:|')
    rows = []
    for size in args.sizes:
        for row in measure_size(size, args):
            name, size, batch, params, flops, macs, speed, ratio = row
            print(f'| {name} | {size}x{size} | {batch} | {params / 1e6:.2f}M | '
                  f'{flops / 1e9:.1f} | {macs / 1e9:.1f} | {speed:.3f} | {ratio:.2f}x |',
                  flush=True)
            rows.append(row)
    print(load_average_line())
    return rows


if __name__ == '__main__':
    main()
