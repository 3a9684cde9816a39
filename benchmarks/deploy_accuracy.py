"""What each reduced-precision inference path costs in accuracy, on the quick start's digits
model: float32, bfloat16 autocast, int8 post-training quantization, and quantization-aware
fine-tuning followed by int8, all on the same 360 held-out images.

    make demo    # trains the model, writes work_dirs/quick_start/epoch_3.pth
    python benchmarks/deploy_accuracy.py [--checkpoint CKPT] [--calibration-batches N]
        [--qat-epochs N] [--quick]

int8 is calibrated on batches of the training split; the QAT fine-tuning starts from the same
checkpoint with ``configs/repmlp_cifar/pure-mlp_1xb32_digits-qat.py``. The report opens with
the machine lines: the bfloat16 and int8 kernels, and so their rounding, depend on the CPU's
flags. ``--quick`` (CI's smoke run) calibrates on 2 batches, fine-tunes for 4 iterations and
runs int8 as its reference graph, uncompiled (the same int8 arithmetic; compiling the full
model takes minutes).
"""
import argparse
import os.path as osp
import tempfile

import torch
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger

from mmrepmlp.analysis import machine_lines
from mmrepmlp.apis import build_runner, fit_config_to_device
from mmrepmlp.apis.build import load_config
from mmrepmlp.apis.quick_start import DEFAULT_WORK_DIR, dataloader_accuracy, quick_start_config
from mmrepmlp.deployment import optimize_for_inference, quantize_int8
from mmrepmlp.utils import find_repo_file

QAT_CONFIG = osp.join(find_repo_file('configs'), 'repmlp_cifar', 'pure-mlp_1xb32_digits-qat.py')
DEFAULT_CHECKPOINT = osp.join(DEFAULT_WORK_DIR, 'epoch_3.pth')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default=DEFAULT_CHECKPOINT,
                        help=f'the trained digits model (default: {DEFAULT_CHECKPOINT}, '
                        'written by make demo)')
    parser.add_argument('--calibration-batches', type=int, default=8,
                        help='training batches of 32 images that calibrate int8 (default 8)')
    parser.add_argument('--qat-epochs', type=int, default=1,
                        help='quantization-aware fine-tuning epochs (default 1)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 2 calibration batches, 4 QAT iterations, int8 '
                        'uncompiled')
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        parser.error(f'no checkpoint at {args.checkpoint}: run `make demo` first (it writes '
                     'it) or pass --checkpoint')
    if min(args.calibration_batches, args.qat_epochs) < 1:
        parser.error('--calibration-batches and --qat-epochs must be >= 1')
    return args


def quantization_aware(checkpoint, epochs, work_dir, iterations=None):
    """The digits model fine-tuned from ``checkpoint`` by the QAT config for ``epochs``, or
    ``iterations`` when given (eval mode)."""
    cfg = fit_config_to_device(load_config(QAT_CONFIG))
    cfg.load_from, cfg.work_dir = checkpoint, work_dir
    cfg.train_cfg.max_epochs = epochs
    by_epoch = iterations is None
    if not by_epoch:
        cfg.train_cfg = ConfigDict(by_epoch=False, max_iters=iterations)
        cfg.log_processor = ConfigDict(by_epoch=False)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # evaluated by the caller
    cfg.default_hooks.checkpoint = ConfigDict(type='CheckpointHook', by_epoch=by_epoch,
                                              interval=-1, save_last=False)
    return build_runner(cfg).train().eval()


def main(argv=None):
    args = parse_args(argv)
    MMLogger.get_instance('deploy_accuracy', log_level='WARNING')
    calibration_batches = 2 if args.quick else args.calibration_batches
    int8_args = dict(compile=not args.quick, log=lambda line: None)
    fine_tuning = '4 iterations' if args.quick else f'{args.qat_epochs} epoch'
    with tempfile.TemporaryDirectory() as work_dir:
        runner = build_runner(quick_start_config(epochs=1, work_dir=work_dir))
        runner.load_checkpoint(args.checkpoint)
        model = runner.model.eval()
        val, calibration = runner.val_dataloader, runner.train_dataloader
        int8 = quantize_int8(model, calibration, calibration_batches, **int8_args)
        qat = quantization_aware(args.checkpoint, args.qat_epochs, osp.join(work_dir, 'qat'),
                                 4 if args.quick else None)
        qat_int8 = quantize_int8(qat, calibration, calibration_batches, **int8_args)
        bfloat16 = optimize_for_inference(model, backend='eager', dtype=torch.bfloat16,
                                          log=lambda line: None)
        rows = [
            ('float32', dataloader_accuracy(model, val)),
            ('bfloat16 autocast', dataloader_accuracy(bfloat16, val)),
            ('int8 post-training quantization', dataloader_accuracy(int8, val)),
            (f'QAT fine-tuning ({fine_tuning}), fake-quantized', dataloader_accuracy(qat, val)),
            ('QAT fine-tuning, then int8', dataloader_accuracy(qat_int8, val)),
        ]
    print(machine_lines('cpu'))
    print(f'# digits, {args.checkpoint}; int8 calibrated on {calibration_batches} '
          f'training batches; {len(val.dataset)} held-out images')
    print('| path | top-1 (%) | vs float32 |')
    print('|---|---:|---:|')
    for name, accuracy in rows:
        print(f'| {name} | {accuracy:.2f} | {accuracy - rows[0][1]:+.2f} |')
    return dict(rows)


if __name__ == '__main__':
    main()
