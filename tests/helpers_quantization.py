"""What the int8 tests of the pure-MLP and RepMLPNet digits models share: the model trained
once through the Runner, and a few fine-tuning iterations from its checkpoint."""
import torch
from mmengine.config import ConfigDict

from mmrepmlp.apis import build_runner, fit_config_to_device
from mmrepmlp.apis.build import load_config
from mmrepmlp.deployment import fake_quantized_deploy_fcs, int8_weights, quantize_int8

CALIBRATION_BATCHES = 8
# The held-out split (360 images) in batches of 40: the compiled int8 model compiles one shape.
VAL_BATCH = 40


def train_digits(config, work_dir):
    """The model of ``config`` trained by the Runner (eval mode), its last checkpoint, and the
    Runner (its dataloaders: training batches calibrate, the held-out split evaluates)."""
    cfg = fit_config_to_device(load_config(config))
    cfg.work_dir = str(work_dir)
    cfg.val_dataloader.batch_size = VAL_BATCH
    runner = build_runner(cfg)
    model = runner.train().eval()
    return model, str(work_dir / f'epoch_{cfg.train_cfg.max_epochs}.pth'), runner


def train_from_checkpoint(cfg, checkpoint, work_dir, iters=4):
    """``cfg`` trained for ``iters`` iterations from ``checkpoint``, without validation or
    checkpoints; the trained model in eval mode."""
    cfg.work_dir, cfg.load_from = str(work_dir), checkpoint
    cfg.train_cfg = ConfigDict(by_epoch=False, max_iters=iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.log_processor = ConfigDict(by_epoch=False)
    cfg.default_hooks.checkpoint = ConfigDict(type='CheckpointHook', by_epoch=False,
                                              interval=-1, save_last=False)
    return build_runner(cfg).train().eval()


def assert_int8_kernels_are_the_fake_quantized_ones(qat_model, blocks, calibration):
    """Quantize ``qat_model`` (the reference graph: the same int8 weights and results, without
    compiling) and check each block's int8 FC1, FC2 and FC3 equal its fake-quantized deploy
    kernels; the quantized model."""
    quantized = quantize_int8(qat_model, calibration, CALIBRATION_BATCHES, compile=False,
                              log=lambda line: None)
    int8_layers = int8_weights(quantized)
    with torch.no_grad():
        for name, block in blocks.items():
            fc1, fc2, fc3 = fake_quantized_deploy_fcs(block)
            assert torch.equal(int8_layers[f'{name}.fc3'].flatten(1), fc3[0]), name
            if fc1 is not None:
                assert torch.equal(int8_layers[f'{name}.fc1'], fc1[0]), name
                assert torch.equal(int8_layers[f'{name}.fc2'], fc2[0]), name
    return quantized
