import math
from dataclasses import dataclass, replace
from typing import Collection, Optional, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...utils.checkpoint import (
    describe_differences,
    read_checkpoint,
    shapes,
    state_dict_differences,
)
from ...utils.errors import InputError
from ..arguments import (
    check_bool,
    check_int,
    check_int_sequence,
    check_norm_cfg,
    check_out_indices,
    check_pair,
    resolve_arch,
)
from ..blocks import RepMLPBottleneck, RepMLPLightBlock, ResNetBottleneck
from ..layers import ConvBN
from .base import FreezableBackbone

BLOCK_TYPES = ('base', 'light', 'bottleneck')
DEFAULT_INIT_CFG = [
    dict(type='Kaiming', layer=['Conv2d']),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
]

OWNER = 'RepMLPResNet'


@dataclass(frozen=True)
class ResNetStage:
    """The settings of one stage of :class:`RepMLPResNet`, as its ``arch`` gives them.

    Attributes:
        num_blocks (int): the residual blocks of the stage.
        width (int): its output channels.
        expansion (int): the ratio of the width to the bottlenecks' 3x3 channels (4 in
            ResNet-50; 1: the 1x1 convs neither reduce nor expand). Defaults to 4.
        block_type (str): ``'base'`` (plain bottlenecks only), ``'light'`` or
            ``'bottleneck'``: the kind of RepMLP block of the stage. Defaults to 'base'.
        repmlp_blocks (Collection[int], optional): the indices of the blocks that use
            RepMLP (a ``frozenset`` once checked); None: every block but the first (the
            stride-2 or channel-changing one), as in the paper. RepMLP blocks must have
            stride 1.
        r (int): the RepMLP Bottleneck's channel reduction. Defaults to 2.
        groups (int): g of FC3 and the Local Perceptron. Defaults to 1.
        partition (int | tuple[int, int]): h = w, or (h, w) (a pair once checked).
            Defaults to 7.
        local_kernels (tuple): the Local Perceptron's kernel sizes (ints, or (kh, kw) pairs).
            Defaults to ``(1, 3, 5)``.
        fc1_fc2_reduction (int): FC1's input/output size ratio. Defaults to 1.
    """
    num_blocks: int
    width: int
    expansion: int = 4
    block_type: str = 'base'
    repmlp_blocks: Optional[Collection[int]] = None
    r: int = 2
    groups: int = 1
    partition: Union[int, Tuple[int, int]] = 7
    local_kernels: tuple = (1, 3, 5)
    fc1_fc2_reduction: int = 1


def _res50(block_type='base', groups=(1, 1), partition=7, local_kernels=(1, 3, 5),
           fc1_fc2_reduction=1):
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
        fc1_fc2_reduction=fc1_fc2_reduction)


def _face_res50(block_type='base'):
    """FaceResNet (paper Sec. 4.3): ResNet-50 with blocks 3, 2, 2, 2 and widths 128 to 1024
    whose 1x1 convs neither reduce nor expand; RepMLP Bottlenecks (h = w = 6, r = 2, g = 4) in
    c2, c3 and c4 for ``block_type='bottleneck'``."""
    return dict(
        num_blocks=(3, 2, 2, 2),
        widths=(128, 256, 512, 1024),
        stem_channels=64,
        expansion=1,
        block_type=(block_type, block_type, block_type, 'base'),
        r=2,
        groups=4,
        partition=6,
        local_kernels=(1, 3, 5))


def _is_kernel_set(value):
    return isinstance(value, (list, tuple)) and all(isinstance(k, int) for k in value)


# The arch keys that may be given once for every stage, and how to recognise one stage's value
# from a per-stage list.
_IS_SINGLE = dict(
    expansion=lambda v: isinstance(v, int),
    block_type=lambda v: isinstance(v, str),
    repmlp_blocks=lambda v: v is None,
    r=lambda v: isinstance(v, int),
    groups=lambda v: isinstance(v, int),
    partition=lambda v: isinstance(v, int),
    local_kernels=_is_kernel_set,
    fc1_fc2_reduction=lambda v: isinstance(v, int),
)


def _broadcast(arch, key, num_stages):
    """``arch[key]`` as one value per stage."""
    value = arch[key]
    if _IS_SINGLE[key](value):
        return [value] * num_stages
    if not isinstance(value, (list, tuple)) or len(value) != num_stages:
        raise ValueError(f'{OWNER}: arch[{key!r}] must be one value for every stage or a list '
                         f'with one entry per stage ({num_stages}), got {value!r}')
    return list(value)


def _checked_stage(index, settings):
    """The :class:`ResNetStage` of stage ``index`` from its arch entries, each checked."""
    stage = ResNetStage(**settings)
    ints = {key: check_int(getattr(stage, key), f'arch {key}', OWNER)
            for key in ('expansion', 'r', 'groups', 'fc1_fc2_reduction')}
    return replace(stage, **ints, partition=check_pair(stage.partition, 'arch partition', OWNER),
                   repmlp_blocks=_repmlp_block_indices(index, stage))


def _repmlp_block_indices(index, stage):
    if stage.block_type not in BLOCK_TYPES:
        raise ValueError(f'{OWNER}: block_type of stage {index + 1} must be one of '
                         f'{BLOCK_TYPES}, got {stage.block_type!r}')
    indices = stage.repmlp_blocks
    if stage.block_type == 'base':
        if indices:
            raise ValueError(f'{OWNER}: stage {index + 1} lists repmlp_blocks {indices} but its '
                             'block_type is base; set it to light or bottleneck')
        return frozenset()
    if indices is None:
        return frozenset(range(1, stage.num_blocks))
    bad = [j for j in indices if not 0 <= j < stage.num_blocks]
    if bad:
        raise ValueError(f'{OWNER}: repmlp_blocks {bad} of stage {index + 1} are not block '
                         f'indices (the stage has {stage.num_blocks} blocks)')
    return frozenset(indices)


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
      with h = w = 10, K = 1, 3, 5, 7 and g = A in c3, B in c4 (for 320 inputs);
    - ``'res50-g4g8-seg'``: ``'res50-g4g8-320'`` for segmentation (Sec. 4.4): FC1's output
      and FC2's input reduced 4x in c3 and 8x in c4, for the 90x90 maps of 713 crops at
      output stride 8 (``strides=(1, 2, 1, 1)``, ``dilations=(1, 1, 1, 4)``);
    - ``'face-res50'``: FaceResNet (Sec. 4.3) for 96x96 faces: blocks 3, 2, 2, 2, widths
      128, 256, 512, 1024, bottlenecks whose 1x1 convs keep the width (``expansion=1``);
    - ``'face-repmlp-res50'``: RepMLP-FaceRes, its stride-1 blocks of c2, c3 and c4 replaced
      by RepMLP Bottlenecks with h = w = 6, r = 2, g = 4 (c4, 6x6, is one partition: no
      Global Perceptron there).

    A custom ``arch`` is a dict. ``num_blocks`` and ``widths`` (output channels) are lists
    with one entry per stage, ``stem_channels`` (int) defaults to ``widths[0] // 4``; every
    other key is a setting of :class:`ResNetStage` (``expansion``, ``block_type``,
    ``repmlp_blocks``, ``r``, ``groups``, ``partition``, ``local_kernels``,
    ``fc1_fc2_reduction``), given once for every stage or as a list with one entry per stage
    (a per-stage ``partition`` may hold ints or (h, w) pairs; ``local_kernels`` given once is
    one kernel set, per stage a list of sets, needed for non-square kernels).

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
        contract_dilation (bool): the first block of a dilated stage uses half the dilation
            (as MMSegmentation's ``contract_dilation``, which its dilated ResNets use).
            Defaults to False.
        frozen_stages (int): freeze the stem (0) and stages up to this one (-1: none).
            Defaults to -1.
        norm_eval (bool): keep every BN in eval mode while training. Defaults to False.
        norm_cfg (dict, optional): config of the norm layers. Defaults to ``dict(type='BN')``.
        with_cp (bool): gradient checkpointing of every residual branch. Defaults to False.
        deploy (bool): build the deploy form directly. Defaults to False.
        repmlp_cfg (dict, optional): extra arguments of every :class:`RepMLPBlock`, e.g.
            ``dict(larger_input='windows')`` (inputs larger than ``img_size`` run as windows of
            it; see :class:`RepMLPBlock`). Defaults to None.
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
        # Sec. 4.4: the g4/8 model on 90x90 c3/c4 maps (713 crops, output stride 8), FC1's
        # output and FC2's input 4x smaller in c3 and 8x in c4.
        'res50-g4g8-seg': _res50('bottleneck', (4, 8), 10, (1, 3, 5, 7), (1, 4, 8, 1)),
        'face-res50': _face_res50(),
        'face-repmlp-res50': _face_res50('bottleneck'),
    }

    def __init__(self,
                 arch='res50-g8g8',
                 img_size=224,
                 in_channels=3,
                 deep_stem=False,
                 out_indices=(-1, ),
                 strides=None,
                 dilations=None,
                 contract_dilation=False,
                 frozen_stages=-1,
                 norm_eval=False,
                 norm_cfg=None,
                 with_cp=False,
                 deploy=False,
                 repmlp_cfg=None,
                 init_cfg=None):
        super().__init__(init_cfg or DEFAULT_INIT_CFG)
        owner = type(self).__name__
        stem_channels, self.stage_cfgs = self._parse_arch(arch)
        num_stages = len(self.stage_cfgs)
        self.img_size = check_pair(img_size, 'img_size', owner)
        in_channels = check_int(in_channels, 'in_channels', owner)
        deep_stem = check_bool(deep_stem, 'deep_stem', owner)
        self.strides = check_int_sequence((1, ) + (2, ) * (num_stages - 1) if strides is None
                                          else strides, 'strides', owner, num_stages)
        self.dilations = check_int_sequence((1, ) * num_stages if dilations is None
                                            else dilations, 'dilations', owner, num_stages)
        self.contract_dilation = check_bool(contract_dilation, 'contract_dilation', owner)
        self.out_indices = check_out_indices(out_indices, num_stages, owner)
        self.frozen_stages = check_int(frozen_stages, 'frozen_stages', owner, minimum=-1,
                                       maximum=num_stages)
        self.norm_eval = check_bool(norm_eval, 'norm_eval', owner)
        self.norm_cfg = check_norm_cfg(norm_cfg or dict(type='BN'), owner)
        self.with_cp = check_bool(with_cp, 'with_cp', owner)
        self.deploy = check_bool(deploy, 'deploy', owner)
        if repmlp_cfg is not None and not isinstance(repmlp_cfg, dict):
            raise TypeError(f'{owner}: repmlp_cfg must be a dict of RepMLPBlock arguments or '
                            f'None, got {repmlp_cfg!r}')
        self.repmlp_cfg = dict(repmlp_cfg or {})

        self.stem = self._make_stem(in_channels, stem_channels, deep_stem)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # The stem conv and the max-pool both halve the size (rounding up).
        size = tuple(math.ceil(math.ceil(s / 2) / 2) for s in self.img_size)
        self.stage_names = []
        channels = stem_channels
        for i, stage in enumerate(self.stage_cfgs):
            size = tuple(math.ceil(s / self.strides[i]) for s in size)
            blocks = [
                self._make_block(i, j, channels if j == 0 else stage.width, size)
                for j in range(stage.num_blocks)
            ]
            channels = stage.width
            self.add_module(f'stage{i + 1}', nn.Sequential(*blocks))
            self.stage_names.append(f'stage{i + 1}')
        self.out_channels = [stage.width for stage in self.stage_cfgs]
        # Without RepMLP blocks the network is a plain ResNet and takes any input size; with
        # windows, the RepMLPs run larger maps as windows of their size.
        self.fixed_input_size = any(stage.repmlp_blocks for stage in self.stage_cfgs) and (
            self.repmlp_cfg.get('larger_input', 'error') == 'error')
        self._freeze_stages()

    # ------------------------------------------------------------------ arch parsing
    def _parse_arch(self, arch):
        """``(stem channels, [ResNetStage per stage])`` of a preset name or a custom dict."""
        arch = resolve_arch(arch, self.arch_settings, OWNER, required=('num_blocks', 'widths'),
                            optional=('stem_channels', *_IS_SINGLE))
        num_blocks = check_int_sequence(arch['num_blocks'], 'arch num_blocks', OWNER)
        widths = check_int_sequence(arch['widths'], 'arch widths', OWNER, len(num_blocks))
        if not num_blocks:
            raise ValueError(f'{OWNER}: arch num_blocks and widths need one entry per stage, '
                             f'got {num_blocks}')
        per_stage = {key: _broadcast(arch, key, len(widths)) for key in _IS_SINGLE if key in arch}
        stages = [_checked_stage(i, dict(num_blocks=n, width=width,
                                         **{key: values[i] for key, values in per_stage.items()}))
                  for i, (n, width) in enumerate(zip(num_blocks, widths))]
        stem_channels = check_int(arch.get('stem_channels') or widths[0] // 4,
                                  'arch stem_channels', OWNER)
        return stem_channels, stages

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
        settings = self.stage_cfgs[stage]
        stride = self.strides[stage] if index == 0 else 1
        dilation = self.dilations[stage]
        if index == 0 and self.contract_dilation and dilation > 1:
            dilation //= 2
        common = dict(norm_cfg=self.norm_cfg, with_cp=self.with_cp, deploy=self.deploy)
        if index not in settings.repmlp_blocks:
            return ResNetBottleneck(in_channels, settings.width, expansion=settings.expansion,
                                    stride=stride, dilation=dilation, **common)
        where = f'RepMLPResNet stage {stage + 1} block {index}'
        if stride != 1:
            raise ValueError(f'{where}: a RepMLP block cannot downsample (stride {stride}); '
                             'drop index 0 from repmlp_blocks or set the stage stride to 1')
        repmlp_cfg = dict(in_size=feature_size, partition_size=settings.partition,
                          groups=settings.groups, local_kernels=settings.local_kernels,
                          fc1_fc2_reduction=settings.fc1_fc2_reduction, **self.repmlp_cfg)
        try:
            if settings.block_type == 'light':
                return RepMLPLightBlock(in_channels, settings.width, repmlp_cfg, **common)
            return RepMLPBottleneck(in_channels, settings.width, repmlp_cfg, r=settings.r,
                                    expansion=settings.expansion, dilation=dilation, **common)
        except ValueError as err:
            raise ValueError(f'{where} (feature map {feature_size} for img_size '
                             f'{self.img_size}): {err}') from err

    # ------------------------------------------------------------------ runtime
    def forward(self, x):
        size = tuple(x.shape[-2:])
        if not self.fixed_input_size or size == self.img_size:
            return self._forward_stages(x)
        if any(s > built for s, built in zip(size, self.img_size)):
            raise InputError(
                f'RepMLPResNet was built for inputs of img_size {self.img_size} (its RepMLPs '
                f'have fixed sizes) and got one larger than img_size, {tuple(x.shape)}; run '
                "larger inputs as windows of img_size with repmlp_cfg=dict(larger_input="
                "'windows') (in a config: model.backbone.repmlp_cfg), set img_size "
                '(model.backbone.img_size) to the input size, or resize the input')
        # Smaller (the last row or column of a sliding window over a small image): padded
        # at the bottom and right as the RepMLPs pad a partial partition, outputs cropped.
        pad = (0, self.img_size[1] - size[1], 0, self.img_size[0] - size[0])
        outs = self._forward_stages(F.pad(x, pad))
        return tuple(out[..., :h, :w] for out, (h, w) in zip(outs, self._output_sizes(size)))

    def _forward_stages(self, x):
        x = self.maxpool(self.stem(x))
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _output_sizes(self, size):
        """The ``(H, W)`` of each returned stage output for an input of ``size``."""
        size = tuple(math.ceil(math.ceil(s / 2) / 2) for s in size)  # stem and max-pool
        sizes = []
        for i, stride in enumerate(self.strides):
            size = tuple(math.ceil(s / stride) for s in size)
            if i in self.out_indices:
                sizes.append(size)
        return sizes

    def frozen_modules(self):
        frozen = [self.stem] if self.frozen_stages >= 0 else []
        return frozen + [getattr(self, name)
                         for name in self.stage_names[:max(self.frozen_stages, 0)]]

    def init_weights(self):
        """Initialize, or load ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``.

        A pretrained checkpoint must fit exactly, except for the Global Perceptrons' FC1 and
        FC2, whose sizes follow the number of partitions: a model pretrained at one input
        size (ImageNet at 320) and used at another (Cityscapes crops of 713, Sec. 4.4) keeps
        the random FC1 and FC2 of every block where they differ, as in the paper, and the log
        names them once. Any other missing, unexpected or reshaped tensor is an error naming
        it, unless the init config has ``strict=False``: then every tensor whose key and
        shape fit is loaded, the others keep their initialization, and the log names them
        once (e.g. a released model of another arch as the start of a segmentation backbone).
        """
        init_cfg = self.init_cfg
        if not (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'):
            return super().init_weights()
        if init_cfg.get('strict', True):
            self._load_pretrained(init_cfg['checkpoint'], init_cfg.get('prefix'))
        else:
            self._load_what_fits(init_cfg['checkpoint'], init_cfg.get('prefix'))
        self._is_init = True

    def _load_pretrained(self, checkpoint, prefix=None):
        from mmengine.logging import MMLogger

        state_dict = _pretrained_state_dict(checkpoint, prefix)
        own = self.state_dict()
        missing, unexpected, reshaped = state_dict_differences(shapes(own), shapes(state_dict))
        # A block whose FC1/FC2 differ in shape (another number of partitions) keeps all four
        # of its FC1/FC2 tensors random.
        changed = {entry.split(':')[0] for entry in reshaped if _is_global_fc(entry)}
        blocks = {_block_of(k) for k in changed}
        random = sorted(k for k in own if _is_global_fc(k) and _block_of(k) in blocks)
        others = [entry for entry in reshaped if entry.split(':')[0] not in changed]
        if missing or unexpected or others:
            raise InputError(f'pretrained checkpoint {checkpoint} does not fit '
                             f'{type(self).__name__} beyond the FC1/FC2 sizes: '
                             f'{describe_differences((missing, unexpected, others))}; is it a '
                             'training-form checkpoint of the same arch?')
        self.load_state_dict({k: v for k, v in state_dict.items() if k not in random},
                             strict=False)
        if random:
            MMLogger.get_current_instance().info(
                f'the FC1/FC2 of {len(blocks)} RepMLP blocks keep their random initialization '
                f'({len(random)} tensors), their sizes in {checkpoint} being for other '
                f'feature-map sizes: {", ".join(random)}')

    def _load_what_fits(self, checkpoint, prefix=None):
        """``init_cfg`` with ``strict=False``: load the tensors whose key and shape fit, and
        name the modules whose tensors keep their initialization."""
        from mmengine.logging import MMLogger

        state_dict = _pretrained_state_dict(checkpoint, prefix)
        own = self.state_dict()
        fitting = {k: v for k, v in state_dict.items() if k in own and v.shape == own[k].shape}
        self.load_state_dict(fitting, strict=False)
        kept = sorted(k for k in own if k not in fitting)
        modules = sorted({k.rsplit('.', 1)[0] for k in kept})
        MMLogger.get_current_instance().info(
            f'pretrained checkpoint {checkpoint} with strict=False: loaded {len(fitting)} of '
            f'{len(own)} tensors; {len(kept)} tensors of {len(modules)} modules keep their '
            f'initialization (absent or shaped otherwise there): {", ".join(modules)}')


def _pretrained_state_dict(checkpoint, prefix=None):
    """The tensors of ``checkpoint`` under ``prefix``, the prefix removed."""
    state_dict = read_checkpoint(checkpoint)[1]
    if prefix:
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not state_dict:
            raise InputError(f'pretrained checkpoint {checkpoint} has no key starting with the '
                             f'prefix {prefix!r}')
    return state_dict


def _is_global_fc(key):
    """Whether a state-dict key (or ``'key: shapes'``) is a Global Perceptron FC (FC1 or FC2)
    of a RepMLP block."""
    key = key.split(':')[0]
    return key.rsplit('.', 2)[-2] in ('fc1', 'fc2') and '.repmlp.' in key


def _block_of(key):
    """``stage2.1.repmlp`` for ``stage2.1.repmlp.fc1.weight``."""
    return key.rsplit('.', 2)[0]
