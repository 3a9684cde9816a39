# Quantization-aware fine-tuning of the digits model: every RepMLP trains the kernels of its
# deploy form (FC1, FC2, FC3) fake-quantized to int8, as `quantize_int8` quantizes them, so
# that the converted model quantizes without loss (docs/deploy.md). It starts from the quick
# start's checkpoint (`make demo` writes it) and uses its BN statistics unchanged.
_base_ = ['./pure-mlp_1xb32_digits.py']

# Switches the RepMLP blocks to quantization-aware training before training, validation and
# testing (mmrepmlp.deployment.prepare_quant_aware); the checkpoint keys stay the plain model's.
custom_hooks = [dict(type='QuantAwareTrainingHook')]
load_from = 'work_dirs/quick_start/epoch_3.pth'

# Fine-tuning: one epoch at a tenth of the learning rate, constant.
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = None
train_cfg = dict(max_epochs=1)
