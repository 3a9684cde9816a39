import math

import torch.nn as nn
from mmpretrain.registry import MODELS

from ...reparam import reparameterize_children
from ..blocks import RepMLPBottleneck, RepMLPLightBlock, ResNetBottleneck
from ..layers import ConvBN
from .base import FreezableBackbone

BLOCK_TYPES = ('base', 'light', 'bottleneck')
DEFAULT_INIT_CFG = [
    dict(type='Kaiming', layer=['Conv2d']),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
]

# Per-stage arch keys with their defaults; ``num_blocks`` and ``widths`` are required.
ARCH_DEFAULTS = dict(
    stem_channels=None,
    block_type='base',
    repmlp_blocks=None,
    r=2,
    groups=1,
    partition=7,
    local_kernels=(1, 3, 5),
    fc1_fc2_reduction=1,
)


def _res50(block_type='base', groups=(1, 1), partition=7, local_kernels=(1, 3, 5)):
    """ResNet-50 with RepMLP blocks of ``block_type`` in c3 and c4; ``groups`` = g in c3, c4."""
    return dict(
        num_blocks=(3, 4, 6, 3),
        widths=(256, 512, 1024, 2048),
        stem_channels=64,
        block_type=('base', block_type, block_type, 'base'),
        r=(2, 2, 4, 4),
        groups=(1, *groups, 1),
        partition=partition,
        local_kernels=local_kernels,
        fc1_fc2_reduction=1)


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f'RepMLPResNet: {name} must be a positive int or a pair of them, '
                         f'got {value!r}')
    return pair


def _is_kernel_set(value):
    return isinstance(value, (list, tuple)) and all(isinstance(k, int) for k in value)


# How to recognise one stage's value (given once for every stage) from a per-stage list.
_IS_SINGLE = dict(
    block_type=lambda v: isinstance(v, str),
    repmlp_blocks=lambda v: v is None,
    r=lambda v: isinstance(v, int),
    groups=lambda v: isinstance(v, int),
    partition=lambda v: isinstance(v, int),
    local_kernels=_is_kernel_set,
    fc1_fc2_reduction=lambda v: isinstance(v, int),
)


@MODELS.register_module()
class RepMLPResNet(FreezableBackbone):
    """RepMLP-ResNet (Ding et al., arXiv 2105.01883, Sec. 3.5 and Appendix A).

    A ResNet whose chosen stride-1 bottlenecks are replaced by RepMLP Bottlenecks or RepMLP
    Light Blocks. Every conv-BN and RepMLP has an exact deploy form (:meth:`switch_to_deploy`
    or ``deploy=True``). The stem is a 7x7 stride-2 conv-BN-ReLU (or three 3x3 ones with
    ``deep_stem``) and a 3x3 stride-2 max-pool; stage ``i`` is ``stage{i}`` (``stage1`` = c2).

    Presets (``arch`` as a string; stage c3/c4 settings from the paper's Table 3/4):

    - ``'res50-base'``: ResNet-50, no RepMLP;
    - ``'res50-light-g4'`` / ``'res50-light-g8'``: Light Blocks in c3 and c4, g = 4 (the
      official checkpoint) or 8 (the paper's appendix), h = w = 7, K = 1, 3, 5;
    - ``'res50-g8g8'``: RepMLP Bottlenecks in c3 and c4, g = 8, r = 2 (c3) / 4 (c4),
      h = w = 7, K = 1, 3, 5 (for 224 inputs);
    - ``'res50-g8g8-320'``, ``'res50-g4g8-320'``, ``'res50-g8g16-320'``: RepMLP Bottlenecks
      with h = w = 10, K = 1, 3, 5, 7 and g = A in c3, B in c4 (for 320 inputs).

    A custom ``arch`` is a dict. ``num_blocks`` and ``widths`` (output channels) are lists
    with one entry per stage; every other key is either one value for all stages or a list
    with one entry per stage:

    - ``stem_channels`` (int): defaults to ``widths[0] // 4``;
    - ``block_type``: ``'base'`` (plain bottlenecks only), ``'light'`` or ``'bottleneck'``:
      the kind of RepMLP block of the stage. Defaults to 'base';
    - ``repmlp_blocks``: the indices of the blocks that use RepMLP (a list per stage, entries
      ``None`` for the default), defaults to every block but the first (the stride-2 or
      channel-changing one), as in the paper; RepMLP blocks must have stride 1;
    - ``r`` (int): the RepMLP Bottleneck's channel reduction. Defaults to 2;
    - ``groups`` (int): g of FC3 and the Local Perceptron. Defaults to 1;
    - ``partition``: h = w (int), or per stage a list of ints or (h, w) pairs. Defaults to 7;
    - ``local_kernels``: one kernel set (ints) for every stage, or a list of sets per stage
      (needed for non-square kernels). Defaults to ``(1, 3, 5)``;
    - ``fc1_fc2_reduction`` (int): FC1's input/output size ratio. Defaults to 1.

    Each RepMLP's input size follows from ``img_size``, the stem and the stage strides
    (every stride ``s`` maps a size ``n`` to ``ceil(n / s)``; dilation keeps it).

    Args:
        arch (str | dict): a preset name or a custom arch dict. Defaults to 'res50-g8g8'.
        img_size (int | tuple[int, int]): input size (H, W) the RepMLPs are built for.
            Defaults to 224.
        in_channels (int): input image channels. Defaults to 3.
        deep_stem (bool): three 3x3 conv-BN-ReLUs instead of the 7x7 one. Defaults to False.
        out_indices (Sequence[int]): stages whose outputs are returned (negative counts from
            the end). Defaults to ``(-1, )``.
        strides (Sequence[int], optional): stride of each stage. Defaults to ``(1, 2, 2, ...)``.
        dilations (Sequence[int], optional): dilation of each stage's 3x3 convs. Defaults to
            1 for every stage.
        frozen_stages (int): freeze the stem (0) and stages up to this one (-1: none).
            Defaults to -1.
        norm_eval (bool): keep every BN in eval mode while training. Defaults to False.
        norm_cfg (dict, optional): config of the norm layers. Defaults to ``dict(type='BN')``.
        with_cp (bool): gradient checkpointing of every residual branch. Defaults to False.
        deploy (bool): build the deploy form directly. Defaults to False.
        repmlp_cfg (dict, optional): extra arguments of every :class:`RepMLPBlock`, e.g.
            ``dict(local_impl='fused')``. Defaults to None.
        init_cfg (dict | list[dict], optional): initialization config. Defaults to Kaiming
            for convs and 1 for norm weights.

    Example:
        A tiny model for quick tests (c3/c4 feature maps of 8x8 and 4x4):

        >>> import torch
        >>> tiny = dict(num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128),
        ...             block_type=('base', 'bottleneck', 'light', 'base'),
        ...             r=2, groups=2, partition=4, local_kernels=(1, 3))
        >>> model = RepMLPResNet(arch=tiny, img_size=64, out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
        >>> model.switch_to_deploy()
    """

    arch_settings = {
        'res50-base': _res50(),
        'res50-light-g4': _res50('light', (4, 4)),
        'res50-light-g8': _res50('light', (8, 8)),
        'res50-g8g8': _res50('bottleneck', (8, 8)),
        'res50-g8g8-320': _res50('bottleneck', (8, 8), 10, (1, 3, 5, 7)),
        'res50-g4g8-320': _res50('bottleneck', (4, 8), 10, (1, 3, 5, 7)),
        'res50-g8g16-320': _res50('bottleneck', (8, 16), 10, (1, 3, 5, 7)),
    }

    def __init__(self,
                 arch='res50-g8g8',
                 img_size=224,
                 in_channels=3,
                 deep_stem=False,
                 out_indices=(-1, ),
                 strides=None,
                 dilations=None,
                 frozen_stages=-1,
                 norm_eval=False,
                 norm_cfg=None,
                 with_cp=False,
                 deploy=False,
                 repmlp_cfg=None,
                 init_cfg=None):
        super().__init__(init_cfg or DEFAULT_INIT_CFG)
        stem_channels, self.stage_cfgs = self._parse_arch(arch)
        num_stages = len(self.stage_cfgs)
        self.img_size = _pair(img_size, 'img_size')
        self.strides = self._per_stage_arg(strides, (1, ) + (2, ) * (num_stages - 1), 'strides')
        self.dilations = self._per_stage_arg(dilations, (1, ) * num_stages, 'dilations')
        self.out_indices = self._normalize_out_indices(out_indices, num_stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'RepMLPResNet: frozen_stages must be in [-1, {num_stages}], got '
                             f'{frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.norm_cfg = norm_cfg or dict(type='BN')
        self.with_cp = with_cp
        self.deploy = deploy
        self.repmlp_cfg = dict(repmlp_cfg or {})

        self.stem = self._make_stem(in_channels, stem_channels, deep_stem)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # The stem conv and the max-pool both halve the size (rounding up).
        size = tuple(math.ceil(math.ceil(s / 2) / 2) for s in self.img_size)
        self.stage_names = []
        channels = stem_channels
        for i, cfg in enumerate(self.stage_cfgs):
            size = tuple(math.ceil(s / self.strides[i]) for s in size)
            blocks = [
                self._make_block(i, j, channels if j == 0 else cfg['width'], size)
                for j in range(cfg['num_blocks'])
            ]
            channels = cfg['width']
            self.add_module(f'stage{i + 1}', nn.Sequential(*blocks))
            self.stage_names.append(f'stage{i + 1}')
        self.out_channels = [cfg['width'] for cfg in self.stage_cfgs]
        # Without RepMLP blocks the network is a plain ResNet and takes any input size.
        self.fixed_input_size = any(cfg['repmlp_blocks'] for cfg in self.stage_cfgs)
        self._freeze_stages()

    # ------------------------------------------------------------------ arch parsing
    def _parse_arch(self, arch):
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'RepMLPResNet: unknown arch {arch!r}; use one of '
                                 f'{sorted(self.arch_settings)} or a custom dict')
            arch = self.arch_settings[arch]
        if not isinstance(arch, dict):
            raise TypeError(f'RepMLPResNet: arch must be a preset name or a dict, got {arch!r}')
        unknown = set(arch) - set(ARCH_DEFAULTS) - {'num_blocks', 'widths'}
        missing = {'num_blocks', 'widths'} - set(arch)
        if unknown or missing:
            raise ValueError(f'RepMLPResNet: custom arch has unknown keys {sorted(unknown)} and '
                             f'lacks {sorted(missing)}; allowed keys are num_blocks, widths, '
                             f'{", ".join(ARCH_DEFAULTS)}')
        arch = {**ARCH_DEFAULTS, **arch}
        num_blocks, widths = tuple(arch['num_blocks']), tuple(arch['widths'])
        if len(num_blocks) != len(widths) or not num_blocks or min(num_blocks) < 1:
            raise ValueError('RepMLPResNet: arch num_blocks and widths need one positive entry '
                             f'per stage, got {num_blocks} and {widths}')
        per_stage = {key: self._broadcast(arch, key, len(widths)) for key in _IS_SINGLE}
        stage_cfgs = []
        for i, (n, width) in enumerate(zip(num_blocks, widths)):
            cfg = {key: values[i] for key, values in per_stage.items()}
            cfg.update(num_blocks=n, width=width, partition=_pair(cfg['partition'], 'partition'))
            cfg['repmlp_blocks'] = self._repmlp_block_indices(i, cfg)
            stage_cfgs.append(cfg)
        stem_channels = arch['stem_channels'] or widths[0] // 4
        return stem_channels, stage_cfgs

    @staticmethod
    def _broadcast(arch, key, num_stages):
        value = arch[key]
        if _IS_SINGLE[key](value):
            return [value] * num_stages
        if not isinstance(value, (list, tuple)) or len(value) != num_stages:
            raise ValueError(f'RepMLPResNet: arch[{key!r}] must be one value for every stage or '
                             f'a list with one entry per stage ({num_stages}), got {value!r}')
        return list(value)

    @staticmethod
    def _repmlp_block_indices(stage, cfg):
        if cfg['block_type'] not in BLOCK_TYPES:
            raise ValueError(f'RepMLPResNet: block_type of stage {stage + 1} must be one of '
                             f'{BLOCK_TYPES}, got {cfg["block_type"]!r}')
        indices = cfg['repmlp_blocks']
        if cfg['block_type'] == 'base':
            if indices:
                raise ValueError(f'RepMLPResNet: stage {stage + 1} lists repmlp_blocks '
                                 f'{indices} but its block_type is base; set it to light or '
                                 'bottleneck')
            return frozenset()
        if indices is None:
            return frozenset(range(1, cfg['num_blocks']))
        bad = [j for j in indices if not 0 <= j < cfg['num_blocks']]
        if bad:
            raise ValueError(f'RepMLPResNet: repmlp_blocks {bad} of stage {stage + 1} are not '
                             f'block indices (the stage has {cfg["num_blocks"]} blocks)')
        return frozenset(indices)

    @staticmethod
    def _per_stage_arg(value, default, name):
        value = tuple(default if value is None else value)
        if len(value) != len(default) or min(value) < 1:
            raise ValueError(f'RepMLPResNet: {name} needs one positive int per stage '
                             f'({len(default)}), got {value}')
        return value

    @staticmethod
    def _normalize_out_indices(out_indices, num_stages):
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        normalized = tuple(i % num_stages if -num_stages <= i < num_stages else None
                           for i in out_indices)
        if None in normalized or not normalized:
            raise ValueError(f'RepMLPResNet: out_indices {tuple(out_indices)} must be stage '
                             f'indices in [-{num_stages}, {num_stages - 1}]')
        return normalized

    # ------------------------------------------------------------------ construction
    def _make_stem(self, in_channels, stem_channels, deep_stem):
        conv_args = dict(norm_cfg=self.norm_cfg, deploy=self.deploy)
        if not deep_stem:
            return nn.Sequential(
                ConvBN(in_channels, stem_channels, 7, stride=2, padding=3, **conv_args),
                nn.ReLU(inplace=True))
        half = stem_channels // 2
        layers = []
        for cin, cout, stride in ((in_channels, half, 2), (half, half, 1),
                                  (half, stem_channels, 1)):
            layers += [ConvBN(cin, cout, 3, stride=stride, padding=1, **conv_args),
                       nn.ReLU(inplace=True)]
        return nn.Sequential(*layers)

    def _make_block(self, stage, index, in_channels, feature_size):
        cfg = self.stage_cfgs[stage]
        stride = self.strides[stage] if index == 0 else 1
        common = dict(norm_cfg=self.norm_cfg, with_cp=self.with_cp, deploy=self.deploy)
        if index not in cfg['repmlp_blocks']:
            return ResNetBottleneck(in_channels, cfg['width'], stride=stride,
                                    dilation=self.dilations[stage], **common)
        where = f'RepMLPResNet stage {stage + 1} block {index}'
        if stride != 1:
            raise ValueError(f'{where}: a RepMLP block cannot downsample (stride {stride}); '
                             'drop index 0 from repmlp_blocks or set the stage stride to 1')
        repmlp_cfg = dict(in_size=feature_size, partition_size=cfg['partition'],
                          groups=cfg['groups'], local_kernels=cfg['local_kernels'],
                          fc1_fc2_reduction=cfg['fc1_fc2_reduction'], **self.repmlp_cfg)
        try:
            if cfg['block_type'] == 'light':
                return RepMLPLightBlock(in_channels, cfg['width'], repmlp_cfg, **common)
            return RepMLPBottleneck(in_channels, cfg['width'], repmlp_cfg, r=cfg['r'],
                                    dilation=self.dilations[stage], **common)
        except ValueError as err:
            raise ValueError(f'{where} (feature map {feature_size} for img_size '
                             f'{self.img_size}): {err}') from err

    # ------------------------------------------------------------------ runtime
    def forward(self, x):
        if self.fixed_input_size and tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f'RepMLPResNet was built for inputs of img_size {self.img_size} (its RepMLPs '
                f'have fixed sizes) but got {tuple(x.shape)}; set img_size (in a config: '
                'model.backbone.img_size) to the input size or resize the input')
        x = self.maxpool(self.stem(x))
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def frozen_modules(self):
        frozen = [self.stem] if self.frozen_stages >= 0 else []
        return frozen + [getattr(self, name)
                         for name in self.stage_names[:max(self.frozen_stages, 0)]]

    def switch_to_deploy(self):
        """Convert every block and the stem to the deploy form (idempotent).

        Frozen parameters stay frozen: the fused ones inherit ``requires_grad=False``.
        """
        reparameterize_children(self)
        self.deploy = True
        self._freeze_stages()
