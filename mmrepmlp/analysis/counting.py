"""Model complexity: parameters and multiply-accumulates of one forward pass."""
import torch


def count_params(model):
    """Number of parameters (buffers such as BN running stats are not counted)."""
    return sum(p.numel() for p in model.parameters())


# Operators that are convs, FCs or matmuls: the MACs the paper counts (Tables 1-6).
CONV_FC_OPS = ('conv', 'linear', 'addmm', 'bmm', 'baddbmm', 'matmul', 'mm', 'einsum')


def _baddbmm_macs(inputs, outputs):
    """baddbmm(bias, a, b) costs what bmm(a, b) does; MMEngine has no handle for it."""
    from mmengine.analysis.jit_handles import bmm_flop_jit

    return bmm_flop_jit(inputs[1:3], outputs)


def count_flops(model, input_shape, conv_fc_only=False):
    """Multiply-accumulates of one forward pass (MMEngine's analysis), batch 1.

    Args:
        model (nn.Module): the model; run in eval mode on a zero input.
        input_shape (tuple[int]): the input shape without batch, e.g. ``(3, 224, 224)``.
        conv_fc_only (bool): count convs, FCs and matmuls only (the paper's convention),
            not norm layers and pooling. Defaults to False.
    """
    from mmengine.analysis import FlopAnalyzer

    param = next(model.parameters())
    inputs = torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    try:
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.set_op_handle('aten::baddbmm', _baddbmm_macs)
        if not conv_fc_only:
            return analyzer.total()
        return sum(n for op, n in analyzer.by_operator().items() if op in CONV_FC_OPS)
    finally:
        model.train(was_training)
