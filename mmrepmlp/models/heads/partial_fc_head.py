"""Partial FC (An et al., "Killing Two Birds with One Stone", CVPR 2022): the margin-softmax
head with its class centres split across the processes, for training sets of millions of
identities."""
import math

import torch
from mmpretrain.registry import MODELS

from .margin_head import MarginSoftmaxHead, _autocast_off
from .sharding import (
    batch_sizes,
    class_slice,
    gather_batch,
    gather_slices,
    sharded_cross_entropy,
    world,
)

# Centres are drawn per block of this many classes from a generator seeded by the block, so the
# initial matrix is the same whatever the number of processes.
INIT_BLOCK = 1024


@MODELS.register_module()
class PartialFCHead(MarginSoftmaxHead):
    """Model-parallel :class:`MarginSoftmaxHead`: each process of the default process group
    holds a contiguous slice of the class centres (rank ``r`` of ``W`` the classes of
    :func:`~.sharding.class_slice`; the first ``num_classes % W`` ranks one more), with its
    gradient and optimizer state.

    A training step (:meth:`loss`):

    1. every rank's embeddings and labels are all-gathered (the embeddings with gradient), so
       each rank scores the whole global batch against its own centres;
    2. with ``sample_ratio < 1`` each rank keeps the classes of its slice that the global batch
       holds (positives are always kept) plus random other classes of its slice,
       ``ceil(sample_ratio * slice size)`` in all;
    3. cosines and the margin, on the rank that holds each positive, in float32 with autocast
       off (as :class:`MarginSoftmaxHead`);
    4. cross entropy with the softmax's max, normaliser and target logit all-reduced
       (:func:`~.sharding.sharded_cross_entropy`).

    The loss is the mean over the global batch, the same on every rank; with ``sample_ratio=1``
    it and its gradients with respect to the embeddings and to every centre are those of
    :class:`MarginSoftmaxHead` on the global batch. Data parallelism averages the backbone's
    gradients over the ranks, while here each rank's embedding gradient already holds the
    whole batch's loss, so the model feeding this head multiplies that gradient by
    :attr:`ddp_gradient_scale` (:class:`~mmrepmlp.models.FaceRecognizer` does) and leaves the
    centres out of DDP (``_ddp_params_and_buffers_to_ignore``).

    Checkpoints: ``state_dict()`` holds the whole ``(num_classes, in_channels)`` matrix under
    ``weight``, gathered from every rank (in float32 on the CPU): with several processes it is a
    collective that every rank must call, like the full state dict of PyTorch's FSDP. Loading
    takes this rank's rows of it, so a checkpoint written at one number of processes loads at
    any other, and into :class:`MarginSoftmaxHead`. :meth:`attach_optimizer` does the same for
    the optimizer's state of the centres (momentum); :class:`PartialFCCheckpointHook` does both
    for MMEngine's Runner, whose saving runs on rank 0 only.

    Memory per rank: parameters, gradient and SGD momentum of ``ceil(num_classes / W) x
    in_channels`` floats, and logits of ``(global batch) x (sampled slice)``. With one process
    it is a :class:`MarginSoftmaxHead`. Prediction (:meth:`forward`, :meth:`predict`) needs
    every centre and runs on one process only; embedding models do not use the head.

    Args:
        num_classes (int): number of identities.
        in_channels (int): embedding size.
        scale (float): the scale ``s``. Defaults to 30.
        margins (Sequence[float]): ``(m1, m2, m3)``, see :class:`MarginSoftmaxHead`. Defaults
            to ``(1.0, 0.0, 0.35)`` (AM-Softmax).
        sample_ratio (float): fraction of each rank's classes scored per training batch, in
            ``(0, 1]`` (insightface's ``sample_rate``). Defaults to 1.0 (all). The loss is
            always the margin cross entropy (no ``loss`` option, unlike MarginSoftmaxHead).
        init_cfg (dict, optional): initialization config. Defaults to None; the centres are
            drawn from N(0, 0.01^2), the same matrix at any number of processes.
    """

    def __init__(self, num_classes, in_channels, scale=30.0, margins=(1.0, 0.0, 0.35),
                 sample_ratio=1.0, init_cfg=None):
        super().__init__(num_classes, in_channels, scale=scale, margins=margins,
                         sample_ratio=sample_ratio, init_cfg=init_cfg)

    def _class_range(self):
        # The processes are those of construction time: the head's shape depends on them.
        self.rank, self.world_size = world()
        return class_slice(self.num_classes, self.rank, self.world_size)

    def _initial_centres(self):
        seed = int(torch.randint(2**62, ()))  # the same on ranks that share a seed
        blocks = range(self.class_start // INIT_BLOCK, math.ceil(self.class_end / INIT_BLOCK))
        rows = []
        for block in blocks:
            first = block * INIT_BLOCK
            generator = torch.Generator().manual_seed(seed + block)
            drawn = torch.randn(min(INIT_BLOCK, self.num_classes - first), self.in_channels,
                                generator=generator) * 0.01
            rows.append(drawn[max(self.class_start - first, 0):self.class_end - first])
        return torch.cat(rows)

    @property
    def sharded_parameters(self):
        """Names of the parameters that each rank holds a different part of."""
        return ('weight', ) if self.world_size > 1 else ()

    @property
    def ddp_gradient_scale(self):
        """What a data-parallel model multiplies the embeddings' gradient by: the number of
        processes (see the class docstring)."""
        return self.world_size

    def loss(self, feats, data_samples, **kwargs):
        """Margin cross-entropy of the global batch over the sampled classes of every rank;
        ``dict(loss=...)``, the same on every rank."""
        embeddings = self.pre_logits(feats)
        labels = torch.cat([sample.gt_label for sample in data_samples]).to(embeddings.device)
        if labels.numel() != embeddings.size(0):
            raise ValueError(f'PartialFCHead: {embeddings.size(0)} embeddings but '
                             f'{labels.numel()} labels; give one label per embedding')
        with _autocast_off(embeddings):
            sizes = batch_sizes(labels.numel(), labels.device, self.world_size)
            embeddings = gather_batch(embeddings.float(), sizes, self.rank)
            labels = gather_batch(labels, sizes, self.rank)
            here = (labels >= self.class_start) & (labels < self.class_end)
            local_labels = torch.where(here, labels - self.class_start, -1)
            class_index, local_labels = self.sample_classes(local_labels)
            weight = self.weight if class_index is None else self.weight[class_index]
            logits = self._margin_logits(self._cosine(embeddings, weight), local_labels)
            loss = sharded_cross_entropy(logits, local_labels, self.world_size)
        return dict(loss=loss)

    def forward(self, feats):
        self._check_unsharded('forward')
        return super().forward(feats)

    def margin_logits(self, feats, labels):
        self._check_unsharded('margin_logits')
        return super().margin_logits(feats, labels)

    def _check_unsharded(self, what):
        if self.world_size > 1:
            raise RuntimeError(
                f'PartialFCHead.{what} scores every class, which only one process holds; '
                f'here each of {self.world_size} processes holds a slice. Run it on one '
                'process, or load the checkpoint into MarginSoftmaxHead (same state dict)')

    # ------------------------------------------------------------------ checkpoints
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.world_size > 1:
            destination[prefix + 'weight'] = self.gather_centres(self.weight)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + 'weight'
        if self._is_whole(state_dict.get(key)):
            state_dict = {**state_dict, key: self.local_rows(state_dict[key])}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _is_whole(self, tensor):
        """Whether ``tensor`` is a whole centre-sized matrix (not this rank's slice)."""
        return (isinstance(tensor, torch.Tensor) and self.world_size > 1
                and tuple(tensor.shape) == (self.num_classes, *self.weight.shape[1:]))

    def gather_centres(self, local):
        """The whole ``(num_classes, ...)`` matrix (CPU) of a tensor shaped like this rank's
        centres; a collective."""
        return gather_slices(local.detach(), self.num_classes, self.world_size)

    def local_rows(self, whole):
        """This rank's rows of a whole ``(num_classes, ...)`` matrix."""
        return whole[self.class_start:self.class_end]

    def attach_optimizer(self, optimizer):
        """Make ``optimizer.state_dict()`` hold the whole matrices of its state of the centres
        (SGD's momentum, Adam's moments), gathered from every rank (a collective, like
        ``state_dict()``), and ``optimizer.load_state_dict()`` take this rank's rows of them.
        Nothing changes for an optimizer without the centres."""
        optimizer.register_state_dict_post_hook(self._gather_optimizer_state)
        optimizer.register_load_state_dict_pre_hook(self._slice_optimizer_state)

    def _centres_index(self, optimizer, state_dict):
        """The key of the centres in the ``state`` of an optimizer state dict, or None."""
        current = [p for group in optimizer.param_groups for p in group['params']]
        saved = [i for group in state_dict['param_groups'] for i in group['params']]
        positions = [i for i, param in enumerate(current) if param is self.weight]
        return saved[positions[0]] if positions and len(saved) == len(current) else None

    def _with_centres_state(self, state_dict, index, transform):
        """A copy of ``state_dict`` with ``transform`` applied to the centres' state tensors
        (the optimizer's live state and the caller's dict stay untouched)."""
        state = state_dict['state'].get(index)
        if state is None:
            return state_dict
        changed = {key: transform(value) if isinstance(value, torch.Tensor) else value
                   for key, value in state.items()}
        return {**state_dict, 'state': {**state_dict['state'], index: changed}}

    def _gather_optimizer_state(self, optimizer, state_dict):
        index = self._centres_index(optimizer, state_dict)
        if self.world_size == 1 or index is None:
            return state_dict

        def gather(value):
            return self.gather_centres(value) if value.shape == self.weight.shape else value

        return self._with_centres_state(state_dict, index, gather)

    def _slice_optimizer_state(self, optimizer, state_dict):
        index = self._centres_index(optimizer, state_dict)
        if index is None:
            return state_dict

        def slice_rows(value):
            return self.local_rows(value) if self._is_whole(value) else value

        return self._with_centres_state(state_dict, index, slice_rows)
