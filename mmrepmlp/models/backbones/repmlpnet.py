import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS
from torch.utils.checkpoint import checkpoint

from ...utils.checkpoint import (
    describe_differences,
    read_checkpoint,
    shapes,
    state_dict_differences,
)
from ...utils.errors import InputError
from ..arguments import (
    check_bool,
    check_choice,
    check_int,
    check_int_sequence,
    check_norm_cfg,
    check_out_indices,
    check_pair,
    resolve_arch,
)
from ..blocks.repmlpnet_block import RepMLPNetUnit, conv_bn
from .base import FreezableBackbone

LARGER_INPUTS = ('error', 'windows')
# Keys of a custom arch: one entry per stage, and one value for every stage with its default.
STAGE_KEYS = ('channels', 'num_blocks', 'num_sharesets')
ARCH_DEFAULTS = dict(local_kernels=(1, 3), gp_reduction=4, ffn_ratio=4, patch_size=4)


@MODELS.register_module()
class HierRepMLPNet(FreezableBackbone):
    """RepMLPNet (Ding et al., "RepMLPNet: Hierarchical Vision MLP with Re-parameterized
    Locality", CVPR 2022): a hierarchical MLP of RepMLP units.

    A patch-embedding stem (conv ``patch_size x patch_size`` with that stride, BN, ReLU), then
    stages of :class:`~mmrepmlp.models.blocks.RepMLPNetUnit`, a 2x2 stride-2 conv + BN + ReLU
    before every stage but the first, and a final BN on the last stage's output. Each stage's
    RepMLP blocks use partitions of that stage's map size at ``img_size``, so at ``img_size``
    every map is one partition, as in the official presets. Named ``HierRepMLPNet`` because
    MMPretrain registers its own ``RepMLPNet`` in the same registry; this one adds the
    presets T, D and L, exact conversion in any dtype, multi-scale outputs and larger inputs.

    The deploy form (:meth:`switch_to_deploy` or ``deploy=True``) is the official
    locality-injected model: every RepMLP block's FC3 absorbs its BN and Local Perceptron.
    The other conv + BN pairs and the pre-norms stay as in the official and MMPretrain deploy
    models (so their checkpoints load unchanged); compilers fold the conv + BN pairs.

    Presets (``arch``; with ``img_size`` 224 or 256 they are the official RepMLPNet-T224,
    B224, T256, B256, D256 and L256; all use Local Perceptron kernels 1 and 3, FFN ratio 4,
    Global Perceptron reduction 4, 4x4 patches):

    - ``'t'``: channels 64, 128, 256, 512; blocks 2, 2, 6, 2; share-sets 1, 4, 16, 128;
    - ``'b'``: channels 96, 192, 384, 768; blocks 2, 2, 12, 2; share-sets 1, 4, 32, 128;
    - ``'d'``: channels 80, 160, 320, 640; blocks 2, 2, 18, 2; share-sets 1, 4, 16, 128;
    - ``'l'``: channels 96, 192, 384, 768; blocks 2, 2, 18, 2; share-sets 1, 4, 32, 256.

    A custom ``arch`` is a dict with the lists ``channels``, ``num_blocks`` and
    ``num_sharesets`` (one entry per stage) and optionally ``local_kernels`` (default
    ``(1, 3)``), ``gp_reduction`` (4), ``ffn_ratio`` (4) and ``patch_size`` (4), one value
    for every stage.

    Args:
        arch (str | dict): a preset name (case-insensitive) or a custom arch dict. Defaults to
            'b'.
        img_size (int | tuple[int, int]): the input size the RepMLP blocks are built for
            (their partitions). Defaults to 224.
        in_channels (int): input image channels. Defaults to 3.
        out_indices (Sequence[int]): stages whose outputs are returned (negative counts from
            the end); the last stage's output goes through the final BN. Defaults to
            ``(-1, )``.
        frozen_stages (int): freeze the stem (0) and stages up to this one, each with the
            downsampling before it, and the final BN with the last stage (-1: none).
            Defaults to -1.
        norm_eval (bool): keep every BN in eval mode while training. Defaults to False.
        norm_cfg (dict, optional): config of the norm layers. Defaults to ``dict(type='BN')``.
        larger_input (str): ``'error'`` (inputs must be ``img_size``, as in MMPretrain) or
            ``'windows'``: any input size runs, every map cut into partitions of its
            ``img_size`` size (the map zero-padded at the bottom and right to whole
            partitions, the output cropped back) with the channel attention over the whole
            map, e.g. segmentation crops with an ImageNet model; on multiples of ``img_size``
            this is what the official code computes. Defaults to 'error'.
        with_cp (bool): gradient checkpointing of every unit. Defaults to False.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict | list[dict], optional): initialization config; ``dict(type=
            'Pretrained', checkpoint=..., prefix='backbone.')`` loads a checkpoint that must
            fit exactly (see :meth:`init_weights`). Defaults to None (PyTorch's
            initialization, as the official code).

    Example:
        >>> import torch
        >>> tiny = dict(channels=(8, 16, 32, 64), num_blocks=(1, 1, 1, 1),
        ...             num_sharesets=(1, 2, 4, 8))
        >>> model = HierRepMLPNet(tiny, img_size=64, out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4), (1, 64, 2, 2)]
        >>> model.switch_to_deploy()
    """

    arch_settings = {
        't': dict(channels=(64, 128, 256, 512), num_blocks=(2, 2, 6, 2),
                  num_sharesets=(1, 4, 16, 128)),
        'b': dict(channels=(96, 192, 384, 768), num_blocks=(2, 2, 12, 2),
                  num_sharesets=(1, 4, 32, 128)),
        'd': dict(channels=(80, 160, 320, 640), num_blocks=(2, 2, 18, 2),
                  num_sharesets=(1, 4, 16, 128)),
        'l': dict(channels=(96, 192, 384, 768), num_blocks=(2, 2, 18, 2),
                  num_sharesets=(1, 4, 32, 256)),
    }

    def __init__(self,
                 arch='b',
                 img_size=224,
                 in_channels=3,
                 out_indices=(-1, ),
                 frozen_stages=-1,
                 norm_eval=False,
                 norm_cfg=None,
                 larger_input='error',
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        owner = type(self).__name__
        self.arch = self._resolve_arch(arch)
        channels = self.arch['channels']
        num_stages = len(channels)
        self.img_size = check_pair(img_size, 'img_size', owner)
        in_channels = check_int(in_channels, 'in_channels', owner)
        self.out_indices = check_out_indices(out_indices, num_stages, owner)
        self.frozen_stages = check_int(frozen_stages, 'frozen_stages', owner, minimum=-1)
        if self.frozen_stages > num_stages:
            raise ValueError(f'{owner}: frozen_stages must be in [-1, {num_stages}], got '
                             f'{frozen_stages}')
        self.norm_eval = check_bool(norm_eval, 'norm_eval', owner)
        norm_cfg = check_norm_cfg(norm_cfg or dict(type='BN'), owner)
        self.larger_input = check_choice(larger_input, 'larger_input', owner, LARGER_INPUTS)
        self.with_cp = check_bool(with_cp, 'with_cp', owner)
        self.deploy = check_bool(deploy, 'deploy', owner)

        patch = self.arch['patch_size']
        self.stem = conv_bn(in_channels, channels[0], patch, patch, norm_cfg, relu=True)
        self.downsamples = nn.ModuleList(
            conv_bn(cin, cout, 2, 2, norm_cfg, relu=True)
            for cin, cout in zip(channels[:-1], channels[1:]))
        self.stages = nn.ModuleList()
        size = tuple(s // patch for s in self.img_size)
        for i, (width, depth, sharesets) in enumerate(
                zip(channels, self.arch['num_blocks'], self.arch['num_sharesets'])):
            if min(size) < 1:
                raise ValueError(f'{owner}: img_size {self.img_size} with arch patch_size '
                                 f'{patch} leaves stage {i + 1} no feature map; use a larger '
                                 'img_size or a smaller patch_size')
            unit_cfg = dict(partition_size=size, num_sharesets=sharesets,
                            local_kernels=self.arch['local_kernels'],
                            gp_reduction=self.arch['gp_reduction'],
                            ffn_ratio=self.arch['ffn_ratio'], norm_cfg=norm_cfg, deploy=deploy)
            try:
                self.stages.append(nn.Sequential(
                    *(RepMLPNetUnit(width, **unit_cfg) for _ in range(depth))))
            except ValueError as err:
                raise ValueError(f'{owner} stage {i + 1} (feature map {size} for img_size '
                                 f'{self.img_size}): {err}') from err
            size = (size[0] // 2, size[1] // 2)
        self.final_norm = build_norm_layer(norm_cfg, channels[-1])[1]
        self.out_channels = list(channels)
        self._freeze_stages()

    def _resolve_arch(self, arch):
        """A preset name (case-insensitive) or a custom dict -> the full arch dict, checked."""
        owner = type(self).__name__
        arch = resolve_arch(arch.lower() if isinstance(arch, str) else arch, self.arch_settings,
                            owner, required=STAGE_KEYS, optional=tuple(ARCH_DEFAULTS))
        arch = {**ARCH_DEFAULTS, **arch}
        resolved = {key: check_int_sequence(arch[key], f'arch {key}', owner)
                    for key in STAGE_KEYS}
        lengths = [len(resolved[key]) for key in STAGE_KEYS]
        if len(set(lengths)) != 1 or not lengths[0]:
            raise ValueError(f'{owner}: arch {", ".join(STAGE_KEYS)} need one entry per stage '
                             f'each, got {", ".join(map(str, lengths))} entries')
        for key in ('gp_reduction', 'ffn_ratio', 'patch_size'):
            resolved[key] = check_int(arch[key], f'arch {key}', owner)
        if not isinstance(arch['local_kernels'], (list, tuple)):
            raise TypeError(f'{owner}: arch local_kernels must be a list of odd kernel sizes, '
                            f'got {arch["local_kernels"]!r}')
        resolved['local_kernels'] = tuple(arch['local_kernels'])
        return resolved

    # ------------------------------------------------------------------ runtime
    def forward(self, x):
        if self.larger_input == 'error' and tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f'{type(self).__name__} was built for inputs of img_size {self.img_size} (its '
                f'RepMLP blocks have fixed partitions) but got {tuple(x.shape)}; set img_size '
                '(in a config: model.backbone.img_size) to the input size, resize the input, '
                "or pass larger_input='windows' to run other sizes as partitions")
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsamples[i - 1](x)
            for unit in stage:
                if self.with_cp and x.requires_grad:
                    x = checkpoint(unit, x, use_reentrant=False)
                else:
                    x = unit(x)
            if i in self.out_indices:
                outs.append(self.final_norm(x) if i == len(self.stages) - 1 else x)
        return tuple(outs)

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        frozen = [self.stem]
        for i in range(self.frozen_stages):
            frozen += [self.stages[i]] + ([self.downsamples[i - 1]] if i > 0 else [])
        if self.frozen_stages == len(self.stages):
            frozen.append(self.final_norm)
        return frozen

    def init_weights(self):
        """Initialize, or load ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``.

        The checkpoint (an ImageNet classifier's, with ``prefix='backbone.'``) must fit
        exactly: same arch, ``img_size`` and form (training or deploy). Any missing,
        unexpected or reshaped tensor is an error naming it; checkpoints of the official code
        or of MMPretrain convert with ``tools/model_converters/official_to_mmrepmlp.py``.
        """
        init_cfg = self.init_cfg
        if not (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'):
            return super().init_weights()
        checkpoint_path, prefix = init_cfg['checkpoint'], init_cfg.get('prefix') or ''
        state_dict = {k[len(prefix):]: v for k, v in read_checkpoint(checkpoint_path)[1].items()
                      if k.startswith(prefix)}
        differences = state_dict_differences(shapes(self.state_dict()), shapes(state_dict))
        if any(differences):
            raise InputError(
                f'pretrained checkpoint {checkpoint_path} (keys under {prefix!r}) does not fit '
                f'{type(self).__name__}: {describe_differences(differences)}; give a checkpoint '
                'of the same arch, img_size and form (training or deploy), converting official '
                'or MMPretrain ones with tools/model_converters/official_to_mmrepmlp.py')
        self.load_state_dict(state_dict, strict=False)  # strict but for num_batches_tracked
        MMLogger.get_current_instance().info(
            f'{type(self).__name__}: loaded {len(state_dict)} tensors from {checkpoint_path}')
        self._is_init = True
