"""Int8 kernels that layers of the same shape share: the quantization parameters of the
quantizes and dequantizes that inductor leaves as kernels of their own read from tensors.

Inductor writes a per-tensor quantize's scale and zero point into its generated C++ as
literals, so every RepMLP layer's partition, Global Perceptron and output kernels are
different code, each compiled on its own and never found in the kernel cache again
(calibration gives other scales every time). With the parameters in
tensors, layers of one shape run the same compiled kernel. The arithmetic is the quantize's
own (multiply by the reciprocal scale, round half to even, add the zero point, clamp), so
the results are the same.
"""
import torch
from torch._guards import detect_fake_mode
from torch._inductor.custom_graph_pass import CustomGraphPass

aten, prims = torch.ops.aten, torch.ops.prims


class QuantParamsAsTensors(CustomGraphPass):
    """An inductor post-grad pass (``post_grad_custom_post_pass``; it runs after the int8
    conv and FC patterns took their quantizes and dequantizes in) that writes each remaining
    ``quantized_decomposed`` per-tensor quantize and dequantize as aten arithmetic on
    constant tensors holding its scale and zero point.

    The constants are 0-d, which inductor inlines as literals unless
    ``always_keep_tensor_constants`` is set: compile with :func:`sharing_config`.
    """

    def __call__(self, graph):
        decomposed = torch.ops.quantized_decomposed
        rewrites = {
            decomposed.quantize_per_tensor.default: _quantize,
            decomposed.dequantize_per_tensor.default: _dequantize,
        }
        constants = _ConstantAdder(graph)
        for node in list(graph.nodes):
            rewrite = rewrites.get(node.target) if node.op == 'call_function' else None
            if rewrite is None or node.kwargs.get('out_dtype') is not None:
                continue  # a dequantize to another dtype than float32 stays as it is
            with graph.inserting_before(node):
                node.replace_all_uses_with(rewrite(constants, *node.args))
            graph.erase_node(node)

    def uuid(self):
        return f'{__name__}.{type(self).__name__}-2'


def _quantize(constants, x, scale, zero_point, quant_min, quant_max, dtype):
    """``clamp(round(x / scale) + zero_point, quant_min, quant_max)`` as ``dtype``."""
    scaled = constants.call(aten.mul.Tensor, x, constants.scalar(1.0 / scale, torch.float32))
    shifted = constants.call(aten.add.Tensor, constants.call(aten.round.default, scaled),
                             constants.scalar(zero_point, torch.float32))
    clamped = constants.call(aten.clamp_max.default,
                             constants.call(aten.clamp_min.default, shifted, float(quant_min)),
                             float(quant_max))
    return constants.call(prims.convert_element_type.default, clamped, dtype)


def _dequantize(constants, x, scale, zero_point, quant_min, quant_max, dtype):
    """``(x - zero_point) * scale`` in float32."""
    as_float = constants.call(prims.convert_element_type.default, x, torch.float32)
    shifted = constants.call(aten.sub.Tensor, as_float,
                             constants.scalar(zero_point, torch.float32))
    return constants.call(aten.mul.Tensor, shifted, constants.scalar(scale, torch.float32))


class _ConstantAdder:
    """Adds nodes to ``graph`` with their fake values (which inductor reads), and 0-d
    constants as attributes of its module."""

    def __init__(self, graph):
        self.graph = graph
        self.module = graph.owning_module
        self.count = 0
        self.fake_mode = None

    def scalar(self, value, dtype):
        name = self._new_name()
        self.module.register_buffer(name, torch.tensor(value, dtype=dtype))
        node = self.graph.get_attr(name)
        node.meta['val'] = self._fake_mode().from_tensor(getattr(self.module, name))
        return node

    def call(self, target, *args, **kwargs):
        node = self.graph.call_function(target, args, kwargs)
        values = [arg.meta['val'] if isinstance(arg, torch.fx.Node) else arg for arg in args]
        with self._fake_mode():
            node.meta['val'] = target(*values, **kwargs)
        return node

    def _new_name(self):
        while hasattr(self.module, f'_quant_param_{self.count}'):
            self.count += 1
        return f'_quant_param_{self.count}'

    def _fake_mode(self):
        if self.fake_mode is None:
            self.fake_mode = detect_fake_mode(
                [node.meta.get('val') for node in self.graph.nodes])
        return self.fake_mode


def sharing_config():
    """The inductor configuration that compiles int8 kernels shareable across layers."""
    return {'post_grad_custom_post_pass': QuantParamsAsTensors(),
            'always_keep_tensor_constants': True}
