"""The margin-softmax head of face recognition: AM-Softmax / CosFace, ArcFace and
SphereFace-like margins as one combined margin, with optional sampling of the classes scored
per training batch. :class:`~.partial_fc_head.PartialFCHead` is its model-parallel form and
shares its margin, cosine and sampling code.

It stands alone on MMPretrain's :class:`ClsHead` (loss building, ``pre_logits`` and the head
interface) rather than extending ``ArcFaceClsHead``, which has the additive angular margin only
and takes ``acos`` of unclamped cosines (NaN on a class centre).
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

    Class sampling (``sample_ratio < 1``): each training batch scores the batch's own classes
    plus random other classes, ``ceil(sample_ratio * num_classes)`` in all (more when the batch
    holds more classes), so the logits and their gradient shrink in proportion; prediction
    always scores every class. Unsampled centres get no gradient, but an optimizer with
    momentum or weight decay still moves them. Under data parallelism every process holds and
    updates all centres; :class:`~.partial_fc_head.PartialFCHead` splits them across processes.

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
        owner = type(self).__name__
        self.num_classes = check_int(num_classes, 'num_classes', owner)
        self.in_channels = check_int(in_channels, 'in_channels', owner)
        if not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f'{owner}: scale must be a positive number, got {scale!r}')
        if not isinstance(sample_ratio, (int, float)) or not 0 < sample_ratio <= 1:
            raise ValueError(f'{owner}: sample_ratio must be in (0, 1], got {sample_ratio!r}')
        self.scale = float(scale)
        self.margins = _check_margins(margins, owner)
        self.sample_ratio = float(sample_ratio)
        m1, m2, m3 = self.margins
        self.theta_limit = (math.pi - m2) / m1
        self.fallback_penalty = (math.pi - self.theta_limit) * math.sin(self.theta_limit) + m3
        # The classes whose centres are the rows of ``weight``: all of them here.
        self.class_start, self.class_end = self._class_range()
        self.num_local_classes = self.class_end - self.class_start
        self.num_sampled = math.ceil(self.sample_ratio * self.num_local_classes)
        self.weight = nn.Parameter(self._initial_centres())

    def _class_range(self):
        return 0, self.num_classes

    def _initial_centres(self):
        return nn.init.normal_(torch.empty(self.num_local_classes, self.in_channels), std=0.01)

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
        return sample_classes(labels, self.num_local_classes, self.num_sampled)

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
        """``scale * cosine`` with the margin on each row's target column; rows labelled -1
        (their class is not among the columns) get none."""
        rows = (labels >= 0).nonzero().squeeze(1)
        columns = labels[rows]
        target = self._target_logit(cosine[rows, columns])
        return cosine.index_put((rows, columns), target) * self.scale

    def _target_logit(self, cosine):
        """``cos(m1*theta + m2) - m3`` of target cosines, with ArcFace's rule beyond pi."""
        m1, m2, m3 = self.margins
        if m1 == 1 and m2 == 0:  # an additive cosine margin needs no angle
            return cosine - m3
        theta = torch.acos(cosine.clamp(-1 + ACOS_EPS, 1 - ACOS_EPS))
        margined = torch.cos(m1 * theta + m2) - m3
        return torch.where(theta <= self.theta_limit, margined, cosine - self.fallback_penalty)


def sample_classes(labels, num_classes, num_sampled):
    """Choose the classes to score: every class in ``labels``, then random others up to
    ``num_sampled`` in all.

    Args:
        labels (Tensor): ``(N,)`` classes in ``[0, num_classes)``, or -1 for rows whose class
            is scored elsewhere (another process's centres); those stay -1.
        num_classes (int): the classes to choose from.
        num_sampled (int): how many to choose (the labels' classes are kept even beyond it).

    Returns:
        tuple[Tensor | None, Tensor]: ``(class_index, local_labels)`` with
        ``class_index[local_labels] == labels`` where ``labels >= 0``; ``(None, labels)`` when
        ``num_sampled`` covers every class.
    """
    if num_sampled >= num_classes:
        return None, labels
    has_class = labels >= 0
    positives, positions = torch.unique(labels[has_class], return_inverse=True)
    local_labels = torch.full_like(labels, -1)
    local_labels[has_class] = positions
    is_negative = torch.ones(num_classes, dtype=torch.bool, device=labels.device)
    is_negative[positives] = False
    negatives = is_negative.nonzero().squeeze(1)
    num_negatives = max(num_sampled - positives.numel(), 0)
    order = torch.randperm(negatives.numel(), device=labels.device)[:num_negatives]
    return torch.cat([positives, negatives[order]]), local_labels


def _autocast_off(tensor):
    """A context without autocast on the device of ``tensor``: the work inside stays float32."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def _check_margins(margins, owner):
    if not isinstance(margins, (list, tuple)) or len(margins) != 3 or not all(
            isinstance(m, (int, float)) and not isinstance(m, bool) for m in margins):
        raise TypeError(f'{owner}: margins must be three numbers (m1, m2, m3), got '
                        f'{margins!r}')
    m1, m2, m3 = (float(m) for m in margins)
    if m1 < 1 or not 0 <= m2 < math.pi or m3 < 0:
        raise ValueError(f'{owner}: margins (m1, m2, m3) need m1 >= 1, 0 <= m2 < pi '
                         f'and m3 >= 0, got {tuple(margins)}')
    return m1, m2, m3
