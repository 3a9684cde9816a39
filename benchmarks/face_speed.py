"""RepMLP-FaceRes vs FaceResNet vs MobileFaceNet at 96x96: embedding speed, params and FLOPs.

The models are the configs of ``configs/repmlp_face/`` in deploy form (every conv-BN and BN
fused, every RepMLP merged into its FCs), measured as they embed faces: backbone and
embedding neck (the margin head only trains), on 96x96 inputs as in the paper (Sec. 4.3). For
each batch all models are timed interleaved in the same rounds
(:func:`mmrepmlp.analysis.measure_interleaved`, median) and the speed of each relative to
MobileFaceNet is printed (> 1: faster). Params and FLOPs (multiply-accumulates of one image,
all of them and those of convs and FCs only) are those of backbone and neck.

    python benchmarks/face_speed.py [--batches 8 64] [--rounds 5] [--threads 2]
        [--device cpu|cuda] [--quick]
"""
import argparse
import os

import torch
from mmengine.logging import MMLogger

from mmrepmlp.analysis import count_params, load_average_line, machine_lines
from mmrepmlp.apis.benchmark import (
    ModelSpec,
    add_timing_args,
    build_benchmark_models,
    model_flops,
    time_models,
)
from mmrepmlp.utils import find_repo_file

MODELS = {
    'mobilefacenet': 'mobilefacenet_8xb64_ms1mv2.py',
    'faceres50': 'faceres50_8xb64_ms1mv2.py',
    'repmlp-faceres50': 'repmlp-faceres50_8xb64_ms1mv2.py',
}
BASELINE = 'mobilefacenet'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_timing_args(parser, batches=(8, 64), rounds=5, warmup=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds, args.warmup = [2], 1, 0
    return args


def embedder_params(model):
    return count_params(model.backbone) + count_params(model.neck)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    MMLogger.get_instance('face_speed', log_level='WARNING')
    configs = os.path.join(find_repo_file('configs'), 'repmlp_face')
    # The margin head is not part of embedding; a small one keeps memory low.
    specs = [ModelSpec(os.path.join(configs, config), deploy=True, name=name,
                       cfg_options={'model.head.num_classes': 2})
             for name, config in MODELS.items()]
    models = build_benchmark_models(specs, device=args.device)
    print(machine_lines(args.device, ['96x96, deploy forms'], args.rounds))
    print('| model | batch | params | GFLOPs (all) | GMACs (conv/FC) | images/s | '
          'vs MobileFaceNet |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    flops = model_flops(models)
    rows = []
    for batch in args.batches:
        results = {r.name: r for r in time_models(models, batch, args.warmup, args.rounds,
                                                  args.device)}
        for m in models:
            speed = results[m.name].images_per_s
            ratio = speed / results[BASELINE].images_per_s
            all_flops, macs = flops[m.name]
            print(f'| {m.name} | {batch} | {embedder_params(m.model) / 1e6:.2f}M | '
                  f'{all_flops / 1e9:.3f} | {macs / 1e9:.3f} | {speed:.1f} | {ratio:.2f}x |')
            rows.append((m.name, batch, speed, ratio))
    print(load_average_line())
    return rows


if __name__ == '__main__':
    main()
