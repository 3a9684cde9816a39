"""RepMLP-FaceRes vs FaceResNet vs MobileFaceNet: embedding speed, params and FLOPs at 96x96, and
(``--training``) the training throughput and per-process head memory of model-parallel
Partial FC at large class counts.

Embedding (the default): the models are the configs of ``configs/repmlp_face/`` in deploy form
(every conv-BN and BN fused, every RepMLP merged into its FCs), measured as they embed faces:
backbone and embedding neck (the margin head only trains), on 96x96 inputs as in the paper
(Sec. 4.3). For each batch all models are timed interleaved in the same rounds
(:func:`mmrepmlp.analysis.measure_interleaved`, median) and the speed of each relative to
MobileFaceNet is printed (> 1: faster). Params and FLOPs (multiply-accumulates of one image,
all of them and those of convs and FCs only) are those of backbone and neck.

Training (``--training``): a 112x112 config of ``--model`` with a PartialFCHead of each
``--classes`` count, trained with SGD (momentum 0.9) on random faces by 1 and 2 processes
(``--processes``; gloo on CPUs, NCCL on GPUs, DDP around the backbone), ``--batches`` faces per
process. Printed per row: the bytes the head's centres take in each process (parameters,
gradient and momentum: they fall as 1 / processes) and the images per second of all processes
together (the median training step of rank 0), each relative to one process. One process with
2,059,906 classes of 512-d needs about 13 GB for the head.

    python benchmarks/face_speed.py [--batches 8 64] [--rounds 5] [--threads 2]
        [--device cpu|cuda] [--quick]
    python benchmarks/face_speed.py --training [--model mobilefacenet] [--classes 100000 2000000]
        [--processes 1 2] [--sample-ratio 1.0] [--batches 8] [--rounds 5] [--threads 2]
        [--device cpu|cuda] [--quick]
"""
import argparse
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.logging import MMLogger
from mmpretrain.structures import DataSample

from mmrepmlp.analysis import (
    count_params,
    load_average_line,
    machine_lines,
    measure_interleaved,
)
from mmrepmlp.apis import build_model, fit_config_to_device, input_shape, load_config
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
TRAINING_MODELS = {name: config.replace('.py', '-112px.py') for name, config in MODELS.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_timing_args(parser, batches=(8, 64), rounds=5, warmup=2)
    parser.add_argument('--training', action='store_true',
                        help='measure Partial FC training instead of embedding')
    parser.add_argument('--model', choices=sorted(TRAINING_MODELS), default='mobilefacenet',
                        help='--training: the 112x112 model (default mobilefacenet)')
    parser.add_argument('--classes', type=int, nargs='+', default=[100000, 2000000],
                        help='--training: class counts (default 100000 2000000)')
    parser.add_argument('--processes', type=int, nargs='+', default=[1, 2],
                        help='--training: numbers of processes (default 1 2)')
    parser.add_argument('--sample-ratio', type=float, default=1.0,
                        help="--training: the head's sample_ratio (default 1.0)")
    args = parser.parse_args(argv)
    if args.training and '--batches' not in (argv or []):
        args.batches = [8]
    if args.quick:
        args.batches, args.rounds, args.warmup = [2], 1, 0
        args.classes = [1000, 20000] if args.training else args.classes
    return args


def embedder_params(model):
    return count_params(model.backbone) + count_params(model.neck)


def main(argv=None):
    args = parse_args(argv)
    if args.training:
        return training_main(args)
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


def training_main(args):
    """Print and return ``[(classes, processes, head bytes per process, images/s)]``."""
    MMLogger.get_instance('face_speed', log_level='WARNING')  # quiet weight initialization
    print(machine_lines(args.device, [f'112x112 {args.model} training, PartialFCHead '
                                      f'sample_ratio {args.sample_ratio:g}, batch '
                                      f'{args.batches[0]} per process'], args.rounds))
    print('| classes | processes | head MiB per process (centres, gradient, momentum) | '
          'vs 1 process | images/s (all processes) | vs 1 process |')
    print('|---:|---:|---:|---:|---:|---:|')
    rows = []
    for processes in args.processes:
        rows += run_processes(args, processes)
    first = {row[0]: row for row in rows if row[1] == min(args.processes)}
    for classes, processes, head_bytes, speed in sorted(rows):
        print(f'| {classes} | {processes} | {head_bytes / 2**20:.1f} | '
              f'{head_bytes / first[classes][2]:.3f}x | {speed:.1f} | '
              f'{speed / first[classes][3]:.2f}x |')
    print(load_average_line())
    return rows


def run_processes(args, processes):
    """The measurements of ``processes`` processes (this one alone for 1)."""
    if processes == 1:
        return [measure_training(args, classes, 1) for classes in args.classes]
    # spawned, not forked: a fork of a process whose OpenMP threads ran can hang in the child
    queue = mp.get_context('spawn').SimpleQueue()
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(training_process, args=(processes, port, args, queue),
                       nprocs=processes, start_method='spawn')
    return queue.get()


def training_process(rank, processes, port, args, queue):
    MMLogger.get_instance('face_speed', log_level='WARNING')
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    backend = 'nccl' if args.device.startswith('cuda') else 'gloo'
    dist.init_process_group(backend, rank=rank, world_size=processes)
    rows = [measure_training(args, classes, processes, rank) for classes in args.classes]
    if rank == 0:
        queue.put(rows)
    dist.destroy_process_group()


def measure_training(args, num_classes, processes, rank=0):
    """``(classes, processes, head bytes, images/s)`` of SGD steps on random faces."""
    torch.set_num_threads(args.threads)
    device = torch.device(f'cuda:{rank}' if args.device.startswith('cuda') else 'cpu')
    configs = os.path.join(find_repo_file('configs'), 'repmlp_face')
    cfg = load_config(os.path.join(configs, TRAINING_MODELS[args.model]), {
        'model.head.type': 'PartialFCHead', 'model.head.num_classes': num_classes,
        'model.head.sample_ratio': args.sample_ratio})
    if device.type != 'cuda':
        fit_config_to_device(cfg)
    model = build_model(cfg).train().to(device)
    trained = torch.nn.parallel.DistributedDataParallel(model) if processes > 1 else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(rank)
    batch = args.batches[0]
    inputs = torch.randn(batch, *input_shape(cfg), generator=generator).to(device)
    samples = [DataSample().set_gt_label(int(label))
               for label in torch.randint(num_classes, (batch, ), generator=generator)]

    def step():
        optimizer.zero_grad()
        trained(inputs, samples, mode='loss')['loss'].backward()
        optimizer.step()

    seconds = measure_interleaved({'step': step}, args.warmup, args.rounds, device)['step']
    head = model.head  # its gradient and momentum exist after the first step
    momentum = optimizer.state[head.weight]['momentum_buffer']
    head_bytes = sum(t.nbytes for t in (head.weight, head.weight.grad, momentum))
    return num_classes, processes, head_bytes, batch * processes / seconds


if __name__ == '__main__':
    main()
