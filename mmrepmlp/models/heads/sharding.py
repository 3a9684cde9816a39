"""The collectives of a class-centre matrix split across the processes of the default process
group: which classes a rank holds, the global batch every rank scores, the cross entropy whose
softmax spans all ranks, and the whole matrix gathered from its slices.

The functions that communicate are collectives (every rank calls them, in the same order) when
``world_size`` is above 1, and plain local arithmetic when it is 1. They work with gloo (CPU
tensors) and NCCL (CUDA tensors) alike: communication happens on the device of the tensors
given.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F

# Rows of the centre matrix sent per broadcast when gathering it: bounds the extra device
# memory of a save to 2**24 elements (64 MiB of float32).
GATHER_CHUNK_ELEMENTS = 2**24


def world():
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def class_slice(num_classes, rank, world_size):
    """``(start, end)``: the contiguous classes rank ``rank`` holds, the first
    ``num_classes % world_size`` ranks one more than the others."""
    if num_classes < world_size:
        raise ValueError(f'{num_classes} classes cannot be split across {world_size} processes '
                         '(each needs one at least); use fewer processes or the whole head')
    base, extra = divmod(num_classes, world_size)
    start = base * rank + min(rank, extra)
    return start, start + base + (rank < extra)


def batch_sizes(local_rows, device, world_size):
    """Every rank's number of rows (a list of ints), local batches may differ."""
    if world_size == 1:
        return [local_rows]
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world_size)]
    dist.all_gather(sizes, torch.tensor([local_rows], device=device))
    return [int(size) for size in sizes]


def _all_gather_rows(tensor, sizes):
    """The rows of every rank concatenated in rank order (padded to the longest in transit)."""
    longest = max(sizes)
    padded = F.pad(tensor, (0, 0) * (tensor.dim() - 1) + (0, longest - tensor.size(0)))
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


class _GatherRowsWithGradient(torch.autograd.Function):
    """All-gather whose backward hands each rank the sum over ranks of the gradient of its own
    rows: every rank's loss reads every rank's rows."""

    @staticmethod
    def forward(ctx, tensor, sizes, rank):
        ctx.start = sum(sizes[:rank])
        ctx.end = ctx.start + sizes[rank]
        return _all_gather_rows(tensor, sizes)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.start:ctx.end], None, None


def gather_batch(tensor, sizes, rank):
    """The global batch: the rows of every rank, in rank order. Differentiable: the gradient of
    the local rows is summed over the ranks that used them.

    Args:
        tensor (Tensor): this rank's rows ``(sizes[rank], ...)``.
        sizes (list[int]): every rank's number of rows (:func:`batch_sizes`).
        rank (int): this rank.
    """
    if len(sizes) == 1:
        return tensor
    if tensor.requires_grad:
        return _GatherRowsWithGradient.apply(tensor, sizes, rank)
    return _all_gather_rows(tensor, sizes)


def _all_reduce(tensor, op, world_size):
    if world_size > 1:
        dist.all_reduce(tensor, op=op)
    return tensor


class _ShardedCrossEntropy(torch.autograd.Function):
    """Mean cross entropy of logits whose columns are split across ranks; see
    :func:`sharded_cross_entropy`."""

    @staticmethod
    def forward(ctx, logits, labels, world_size):
        max_logit = _all_reduce(logits.max(dim=1).values, dist.ReduceOp.MAX, world_size)
        probabilities = (logits - max_logit[:, None]).exp()
        normaliser = _all_reduce(probabilities.sum(dim=1), dist.ReduceOp.SUM, world_size)
        rows = (labels >= 0).nonzero().squeeze(1)
        target = torch.zeros_like(max_logit)
        target[rows] = logits[rows, labels[rows]]
        target = _all_reduce(target, dist.ReduceOp.SUM, world_size)
        probabilities /= normaliser[:, None]
        ctx.save_for_backward(probabilities, rows, labels[rows])
        # log-sum-exp minus the target logit, as F.cross_entropy computes it
        return (normaliser.log() + max_logit - target).mean()

    @staticmethod
    def backward(ctx, grad):
        probabilities, rows, columns = ctx.saved_tensors
        grad_logits = probabilities.clone()
        grad_logits[rows, columns] -= 1
        return grad_logits * (grad / probabilities.size(0)), None, None


def sharded_cross_entropy(logits, labels, world_size):
    """The mean over rows of the softmax cross entropy of logits split by columns across ranks.

    The softmax's max and normaliser and each row's target logit are all-reduced, so every rank
    returns the same loss: that of the logits concatenated across ranks. The backward needs no
    communication: each rank's logits get their own part of the gradient.

    Args:
        logits (Tensor): ``(N, K_rank)`` float this rank's columns of the global batch's logits.
        labels (Tensor): ``(N,)`` each row's target column on this rank, -1 where the target
            column lives on another rank (every row has its target on exactly one rank).
        world_size (int): the number of ranks the columns are split across.
    """
    return _ShardedCrossEntropy.apply(logits, labels, world_size)


def gather_slices(local, num_rows, world_size):
    """The whole matrix, on the CPU, from the contiguous row slices of :func:`class_slice` that
    the ranks hold (every rank gets it).

    Each slice is broadcast from its rank in chunks of at most ``GATHER_CHUNK_ELEMENTS``
    elements, so the device needs no more than one chunk besides the slice.

    Args:
        local (Tensor): this rank's rows.
        num_rows (int): the rows of the whole matrix.
        world_size (int): the number of ranks.
    """
    rank = dist.get_rank()
    whole = torch.empty((num_rows, *local.shape[1:]), dtype=local.dtype)
    chunk = max(1, GATHER_CHUNK_ELEMENTS // max(1, local.shape[1:].numel()))
    for source in range(world_size):
        start, end = class_slice(num_rows, source, world_size)
        for first in range(start, end, chunk):
            last = min(first + chunk, end)
            if source == rank:
                part = local[first - start:last - start].detach().clone()
            else:
                part = torch.empty((last - first, *whole.shape[1:]), dtype=local.dtype,
                                   device=local.device)
            dist.broadcast(part, src=source)
            whole[first:last] = part.cpu()
    return whole
