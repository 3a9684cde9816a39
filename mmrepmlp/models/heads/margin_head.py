"""A margin-softmax head for face recognition: AM-Softmax / CosFace, ArcFace and SphereFace-like
margins as one combined margin.

Why not extend MMPretrain's ``ArcFaceClsHead``: it has the additive angular margin only (no
``m1``/``m3``, so not the AM-Softmax loss the paper trains with); it takes ``acos`` of the
whole ``N x num_classes`` cosine matrix without clamping, which is NaN in the forward pass and
in the gradient when a feature lies on a class centre (theta = 0) or opposite it (pi); its
margin is applied through an ``N x num_classes`` one-hot mask; and under CPU bf16 autocast it
fails (bf16 features meet float32 weights). A subclass would override ``__init__``,
``forward``, the margin and ``loss``, keeping nothing but ``set_margins``, so this head stands
alone on :class:`ClsHead`, whose loss building, ``pre_logits`` and interface it keeps.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..arguments import check_int

# acos has an infinite derivative at +-1 and a huge one next to them: keeping its input this far
# inside bounds it (by about 700) while moving theta by at most 1.5e-3 rad.
ACOS_EPS = 1e-6


@MODELS.register_module()
class MarginSoftmaxHead(ClsHead):
    """Normalised-softmax head with the combined margin ``cos(m1*theta + m2) - m3``.

    Features and class centres (the rows of ``weight``) are L2-normalised, so their product is
    ``cos(theta)``. The logit of the target class is ``s * (cos(m1*theta + m2) - m3)``, every
    other logit ``s * cos(theta)``, and the loss is the cross entropy of these logits:

    - AM-Softmax / CosFace: ``margins=(1, 0, m3)``; the AM-Softmax paper (Wang et al., 2018)
      uses ``m3 = 0.35`` with ``s = 30`` (the defaults), CosFace setups often 0.4 with 64;
    - ArcFace (Deng et al., 2019): ``margins=(1, 0.5, 0)``, ``scale=64``;
    - SphereFace-like multiplicative angular margin: ``margins=(m1, 0, 0)``, ``m1 > 1``.

    Once ``m1*theta + m2`` passes pi, ``cos`` would rise again and reward moving away from the
    centre. Beyond that angle ``theta_b = (pi - m2) / m1`` the target logit follows ArcFace's
    rule instead: ``cos(theta)`` minus the first-order penalty at ``theta_b``,
    ``(pi - theta_b) * sin(theta_b)`` (``m2 * sin(m2)`` for ArcFace), and ``m3``. It keeps
    decreasing with theta, and across ``theta_b`` it does not jump up while
    ``pi - theta_b <= 2.33`` (every ArcFace margin below 2.33; ``m1 <= 3`` without ``m2``).

    Everything from the normalisation to the loss runs in float32 with autocast disabled, in
    the forward and the backward pass (CPU bf16 and CUDA fp16 autocast alike): margins such
    as ``cos(theta) - 0.35`` against ``s = 64`` lose the target logit's precision in half
    precision, and half-precision losses are the usual source of NaNs in face training.
    Cosines are clamped to ``[-1, 1]``.

    Memory: nothing of size ``N x num_classes`` beyond the float32 logits is built (the margin
    touches the ``N`` target cosines only), and the weight is never normalised into a copy:
    the cosines are ``(x / |x|) W^T`` divided by the row norms of ``W``. MS1M-V2's
    ``85,742 x 512`` centres take 176 MB, their gradient as much.

    Class sampling (``sample_ratio < 1``, in the spirit of PartialFC): each training batch
    scores the batch's own classes plus random other classes, ``ceil(sample_ratio *
    num_classes)`` in all (more when the batch holds more classes), so the logits and their
    gradient shrink in proportion; prediction always scores every class. Unsampled centres
    get no gradient, but an optimizer with momentum or weight decay still moves them. This is
    single-process sampling only: model-parallel PartialFC would also shard ``weight`` (and
    its optimizer state) across GPUs, all-gather every GPU's features and labels, compute
    each shard's logits locally and all-reduce the softmax's max and normaliser, then reduce
    the feature gradients back; that is what pays at millions of identities, not sampling
    (for MS1M-V2 the full softmax, ``sample_ratio=1``, is the usual choice).

    Args:
        num_classes (int): number of identities.
        in_channels (int): embedding size.
        scale (float): the scale ``s``. Defaults to 30.
        margins (Sequence[float]): ``(m1, m2, m3)`` with ``m1 >= 1``, ``0 <= m2 < pi``,
            ``m3 >= 0``. Defaults to ``(1.0, 0.0, 0.35)`` (AM-Softmax).
        sample_ratio (float): fraction of classes scored per training batch, in ``(0, 1]``.
            Defaults to 1.0 (all).
        loss (dict): config of the classification loss (MMPretrain's registry). Defaults to
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        init_cfg (dict, optional): initialization config. Defaults to None; ``weight`` is
            drawn from N(0, 0.01^2) (its scale is irrelevant: rows are normalised).
    """

    def __init__(self,
                 num_classes,
                 in_channels,
                 scale=30.0,
                 margins=(1.0, 0.0, 0.35),
                 sample_ratio=1.0,
                 loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
                 init_cfg=None):
        super().__init__(loss=loss, init_cfg=init_cfg)
        self.num_classes = check_int(num_classes, 'num_classes', 'MarginSoftmaxHead')
        self.in_channels = check_int(in_channels, 'in_channels', 'MarginSoftmaxHead')
        if not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f'MarginSoftmaxHead: scale must be a positive number, got {scale!r}')
        if not isinstance(sample_ratio, (int, float)) or not 0 < sample_ratio <= 1:
            raise ValueError(f'MarginSoftmaxHead: sample_ratio must be in (0, 1], got '
                             f'{sample_ratio!r}')
        self.scale = float(scale)
        self.margins = _check_margins(margins)
        self.sample_ratio = float(sample_ratio)
        self.num_sampled = math.ceil(self.sample_ratio * self.num_classes)
        m1, m2, m3 = self.margins
        self.theta_limit = (math.pi - m2) / m1
        self.fallback_penalty = (math.pi - self.theta_limit) * math.sin(self.theta_limit) + m3
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_channels))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, feats):
        """Cosine similarity ``(N, num_classes)`` (float32) of the last feature to every class."""
        embeddings = self.pre_logits(feats)
        with _autocast_off(embeddings):
            return self._cosine(embeddings, self.weight)

    def margin_logits(self, feats, labels):
        """Scaled logits ``(N, num_classes)`` with the margin on each sample's class."""
        embeddings = self.pre_logits(feats)
        with _autocast_off(embeddings):
            return self._margin_logits(self._cosine(embeddings, self.weight), labels)

    def sample_classes(self, labels):
        """The classes a training batch scores, and ``labels`` as positions among them.

        Returns:
            tuple[Tensor | None, Tensor]: ``(class_index, local_labels)`` with
            ``class_index[local_labels] == labels``; ``(None, labels)`` without sampling.
            The batch's classes come first, then random others.
        """
        if self.num_sampled >= self.num_classes:
            return None, labels
        positives, local_labels = torch.unique(labels, return_inverse=True)
        is_negative = torch.ones(self.num_classes, dtype=torch.bool, device=labels.device)
        is_negative[positives] = False
        negatives = is_negative.nonzero().squeeze(1)
        num_negatives = max(self.num_sampled - positives.numel(), 0)
        order = torch.randperm(negatives.numel(), device=labels.device)[:num_negatives]
        return torch.cat([positives, negatives[order]]), local_labels

    def loss(self, feats, data_samples, **kwargs):
        """Margin cross-entropy over the sampled classes; ``dict(loss=...)``."""
        embeddings = self.pre_logits(feats)
        labels = torch.cat([sample.gt_label for sample in data_samples]).to(embeddings.device)
        class_index, local_labels = self.sample_classes(labels)
        weight = self.weight if class_index is None else self.weight[class_index]
        with _autocast_off(embeddings):
            logits = self._margin_logits(self._cosine(embeddings, weight), local_labels)
            loss = self.loss_module(logits, local_labels, avg_factor=logits.size(0), **kwargs)
        return dict(loss=loss)

    def predict(self, feats, data_samples=None):
        """Data samples with ``pred_score`` = the cosines and ``pred_label`` = the closest class."""
        cosine = self(feats)
        labels = cosine.argmax(dim=1, keepdim=True).detach()
        if data_samples is None:
            data_samples = [None] * cosine.size(0)
        predictions = []
        for sample, score, label in zip(data_samples, cosine.detach(), labels):
            sample = DataSample() if sample is None else sample
            predictions.append(sample.set_pred_score(score).set_pred_label(label))
        return predictions

    def _cosine(self, embeddings, weight):
        weight = weight.float()
        unit_embeddings = F.normalize(embeddings.float(), dim=1)
        # Dividing the products by the row norms equals normalising the weight first, without
        # a normalised copy of a possibly huge (num_classes, in_channels) matrix.
        row_norms = weight.norm(dim=1).clamp_min(1e-12)
        return (F.linear(unit_embeddings, weight) / row_norms).clamp(-1, 1)

    def _margin_logits(self, cosine, labels):
        labels = labels.reshape(-1, 1)
        target = self._target_logit(cosine.gather(1, labels))
        return cosine.scatter(1, labels, target) * self.scale

    def _target_logit(self, cosine):
        """``cos(m1*theta + m2) - m3`` of target cosines, with ArcFace's rule beyond pi."""
        m1, m2, m3 = self.margins
        if m1 == 1 and m2 == 0:  # an additive cosine margin needs no angle
            return cosine - m3
        theta = torch.acos(cosine.clamp(-1 + ACOS_EPS, 1 - ACOS_EPS))
        margined = torch.cos(m1 * theta + m2) - m3
        return torch.where(theta <= self.theta_limit, margined, cosine - self.fallback_penalty)


def _autocast_off(tensor):
    """A context without autocast on the device of ``tensor``: the work inside stays float32."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def _check_margins(margins):
    if not isinstance(margins, (list, tuple)) or len(margins) != 3 or not all(
            isinstance(m, (int, float)) and not isinstance(m, bool) for m in margins):
        raise TypeError(f'MarginSoftmaxHead: margins must be three numbers (m1, m2, m3), got '
                        f'{margins!r}')
    m1, m2, m3 = (float(m) for m in margins)
    if m1 < 1 or not 0 <= m2 < math.pi or m3 < 0:
        raise ValueError(f'MarginSoftmaxHead: margins (m1, m2, m3) need m1 >= 1, 0 <= m2 < pi '
                         f'and m3 >= 0, got {tuple(margins)}')
    return m1, m2, m3
