"""int8 static post-training quantization of deploy models through PT2E and the x86 inductor
backend (torchao's ``X86InductorQuantizer``, ``prepare_pt2e``, ``convert_pt2e``, then
``torch.compile`` with freezing, which lowers the quantized patterns to oneDNN's int8 kernels).

PT2E because it made int8 faster than float32 where ONNX Runtime's static quantization did not,
keeps the model a PyTorch module behind the ``BaseModel`` interface, and has the weight scheme
that quantization-aware training reproduces exactly (docs/deploy.md has the measurements).

What is quantized: the convs and FCs of the network (for an MMEngine ``BaseModel``, of its
backbone, which holds almost all the compute; the neck and heads stay float32). RepMLP's
groupwise FC3 is handed to the quantizer as one FC per group (:class:`SplitGroupwiseFC`):
the quantizer leaves a batched matmul in float32, and oneDNN's int8 grouped conv is slower than
the per-group FCs. That holds for a few groups (up to :data:`MAX_SPLIT_GROUPS`); RepMLPNet's
FC3 of 16 to 256 share-sets is handed over as the grouped 1x1 conv it equals
(:class:`GroupedConvFC`): one FC per share-set would be hundreds of tiny int8 FCs, minutes to
quantize and compile and slower to run than the one grouped conv. The groups of a split FC3
share one activation scale, and the converted graph quantizes their inputs once, before they
are split into groups (:func:`quantize_before_split`): one kernel writes the int8 partitions
of all groups, the per-group FCs read views of them. The compile keeps the scales of the
remaining quantizes in tensors (:mod:`.kernel_sharing`): RepMLP layers of one shape share
their compiled kernels.
"""
import copy
import functools
import itertools
import math
import operator
import time

import torch
import torch.nn as nn
from mmengine.model import BaseModel

from ...models.layers import GroupwiseFC
from ...utils.errors import InputError
from ..convert import convert_model
from ..inference import (
    as_channels_last,
    compile_frozen,
    inductor_available,
    make_inference_only,
)
from ..outputs import output_tensors
from .kernel_sharing import sharing_config

# The largest accepted relative RMS difference between the int8 and float32 outputs on the
# held-back calibration batch: a well calibrated model differs by about 1%, one calibrated
# on an outlier or on inputs of another scale by about 100%.
INT8_TOLERANCE = 0.2

# Groupwise FCs of up to this many groups are quantized as one FC per group, those of more
# as one grouped conv (oneDNN's int8 FCs beat its grouped conv on RepMLP-Res50's FC3s of 4
# and 8 groups and on RepMLPNet's of 1 and 4 share-sets; the grouped conv wins from 16).
MAX_SPLIT_GROUPS = 8


class SplitGroupwiseFC(nn.Module):
    """A deploy :class:`~mmrepmlp.models.layers.GroupwiseFC` as the one FC per group it equals
    (``fcs``, plain ``nn.Linear`` layers: what the int8 quantizer recognizes); same calls
    (``forward``, ``features_first``, ``grouped``), same results."""

    def __init__(self, fc):
        super().__init__()
        weights = fc.weight.detach().chunk(fc.groups)
        biases = fc.bias.detach().chunk(fc.groups) if fc.bias is not None else [None] * fc.groups
        self.fcs = nn.ModuleList()
        for weight, bias in zip(weights, biases):
            linear = nn.Linear(*weight.shape[::-1], bias=bias is not None, device='meta')
            linear.weight = nn.Parameter(weight)
            if bias is not None:
                linear.bias = nn.Parameter(bias)
            self.fcs.append(linear)

    def forward(self, x):
        """``(N, in_features)`` -> ``(N, out_features)``; or, for :meth:`grouped`,
        ``(groups, N, in_features // groups)`` -> ``(groups, N, out_features // groups)``."""
        if x.dim() == 3:
            return torch.stack([linear(part) for linear, part in zip(self.fcs, x.unbind(0))])
        parts = x.chunk(len(self.fcs), dim=1)
        return torch.cat([linear(part) for linear, part in zip(self.fcs, parts)], dim=1)

    def features_first(self, x):
        """``(N, in_features)`` -> ``(out_features, N)``."""
        return self(x).t()

    def grouped(self, x):
        """``(groups, N, in_features // groups)`` -> ``(groups, N, out_features // groups)``."""
        # Through the module call, so that an exported graph names this module (the
        # quantizer groups the FCs by it, int8_weights names the FC3 by it).
        return self(x)


class GroupedConvFC(nn.Module):
    """A deploy :class:`~mmrepmlp.models.layers.GroupwiseFC` as the grouped 1x1 conv it equals
    on ``(N, in_features, 1, 1)`` (``conv``, a plain ``nn.Conv2d``: what the int8 quantizer
    recognizes): one layer however many groups, quantized per output channel as an FC is;
    same calls (``forward``, ``features_first``, ``grouped``), same results."""

    def __init__(self, fc):
        super().__init__()
        self.conv = nn.Conv2d(fc.in_features, fc.out_features, 1, groups=fc.groups,
                              bias=fc.bias is not None, device='meta')
        self.conv.weight = nn.Parameter(fc.weight.detach()[:, :, None, None])
        if fc.bias is not None:
            self.conv.bias = nn.Parameter(fc.bias.detach())

    def forward(self, x):
        """``(N, in_features)`` -> ``(N, out_features)``."""
        return self.conv(x[:, :, None, None]).flatten(1)

    def features_first(self, x):
        """``(N, in_features)`` -> ``(out_features, N)``."""
        return self(x).t()

    def grouped(self, x):
        """``(groups, N, in_features // groups)`` -> ``(groups, N, out_features // groups)``:
        the groups side by side as the conv's channels, and back."""
        groups, rows = x.shape[:2]
        out = self(x.transpose(0, 1).reshape(rows, -1))
        return out.reshape(rows, groups, -1).transpose(0, 1)


class Int8Network(nn.Module):
    """A network quantized by PT2E: the converted graph (``graph_module``), compiled with
    freezing if ``compile`` and inductor can compile on the CPU; otherwise run as the
    reference graph, which simulates the int8 arithmetic in float32 (the same results up to
    float rounding, slow)."""

    def __init__(self, graph_module, compile=True):
        from torchao.quantization.pt2e import allow_exported_model_train_eval

        super().__init__()
        # An exported graph refuses train()/eval(), which MMEngine calls on the whole model.
        self.graph_module = allow_exported_model_train_eval(graph_module)
        cpu = torch.device('cpu')
        self.compiled = compile and inductor_available(cpu)
        # A plain attribute (a function), not a submodule: the graph is registered once.
        self._run = compile_frozen(graph_module, cpu, sharing_config()) if (
            self.compiled) else graph_module

    def forward(self, *args):
        return self._run(*args)


def quantize_int8(model, calibration, max_batches=None, reduce_range=None, compile=True,
                  tolerance=INT8_TOLERANCE, strict=True, log=print):
    """An int8 copy of ``model`` by static post-training quantization, on the CPU.

    The copy is converted to the deploy form first, its network exported with a dynamic
    batch size, calibrated on ``calibration``, converted to int8 and compiled. ``model`` is
    not changed.

    Calibration is checked: the last batch (the second half of a single batch) is held back,
    the int8 network calibrated on the others is compared with the float32 network on it, and
    a relative RMS difference above ``tolerance`` is refused, naming the layer whose
    calibrated range differs most from the held-back batch's (an outlier, or inputs of
    another scale, make every other input quantize to a few values). The returned model is
    then calibrated on every batch.

    Args:
        model (nn.Module): the model in eval mode, training or deploy form: any module taking
            one image batch, or an MMEngine ``BaseModel`` (its backbone is quantized).
        calibration (Iterable): calibration batches: input tensors ``(N, C, H, W)`` (the
            network's input: for a ``BaseModel`` already preprocessed), or, for a
            ``BaseModel``, dataloader batches (dicts), run through its data preprocessor.
        max_batches (int, optional): use at most this many batches. Defaults to all.
        reduce_range (bool, optional): quantize activations to 7 bits, which int8 kernels need
            on CPUs without VNNI (whose 16-bit intermediate sums could saturate). By default,
            True unless the CPU has VNNI.
        compile (bool): compile the int8 graph to oneDNN's int8 kernels (each new input
            shape compiles once); False runs the reference graph (see :class:`Int8Network`),
            enough to inspect the int8 weights or check accuracy without compiling.
            Defaults to True.
        tolerance (float): the largest accepted relative RMS difference between the int8
            and float32 outputs on the held-back batch. Defaults to :data:`INT8_TOLERANCE`.
        strict (bool): refuse a model beyond ``tolerance``; False logs a warning instead.
            Defaults to True.
        log (Callable[[str], None]): where the lines saying what was done go.

    Returns:
        nn.Module: the quantized copy (inference-only, CPU); :func:`int8_weights` lists its
        int8 kernels.

    Raises:
        ValueError: ``model`` is in train mode.
        InputError: ``calibration`` has no batch, holds NaN or infinite values or a single
            value, or (``strict``) the int8 model differs beyond ``tolerance``.
        TypeError: a calibration batch is neither a tensor nor (for a ``BaseModel``) a dict.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if model.training:
        raise ValueError(f'quantize_int8: {type(model).__name__} is in train mode; call '
                         'model.eval() first')
    quantized = copy.deepcopy(model).cpu()
    converted = convert_model(quantized, log=lambda line: None)
    inputs = calibration_inputs(quantized, calibration, max_batches)
    _check_not_constant(inputs)
    name, network = _network(quantized)
    swapped = _as_quantizable_fcs(network)
    reduce_range = not cpu_has_vnni() if reduce_range is None else reduce_range
    seconds, start = {}, time.perf_counter()
    example = _export_example(inputs[0])
    exported = torch.export.export(network, (example, ),
                                   dynamic_shapes=({0: torch.export.Dim.AUTO}, )).module()
    seconds['export'], start = time.perf_counter() - start, time.perf_counter()
    prepared = prepare_pt2e(exported, _quantizer(reduce_range))
    calibrating, held_back = _hold_back(inputs)
    _observe(prepared, calibrating)
    error = _check_held_back(prepared, network, held_back, tolerance, strict, log)
    _observe(prepared, held_back)
    seconds['calibration'], start = time.perf_counter() - start, time.perf_counter()
    graph_module = quantize_before_split(convert_pt2e(prepared))
    seconds['conversion'] = time.perf_counter() - start
    int8 = Int8Network(graph_module, compile)
    if name is None:
        quantized = int8
    else:
        setattr(quantized, name, int8)
    checked = ('a single image, no held-back check' if error is None else
               f'{error:.1%} from float32 (relative RMS) on the held-back batch')
    log(f'quantize_int8: converted {len(converted)} modules to the deploy form; '
        f'{_describe_forms(swapped)}; calibrated on '
        f'{len(inputs)} batches ({sum(len(b) for b in inputs)} images): {checked}; '
        f'{len(_int8_layers(graph_module))} int8 convs and FCs in {name or "the model"}'
        f'{", 7-bit activations (no VNNI)" if reduce_range else ""}; '
        + ', '.join(f'{step} {s:.1f} s' for step, s in seconds.items())
        + ('; the first call of each input shape compiles' if int8.compiled else ''))
    return make_inference_only(quantized)


def _export_example(batch):
    """The batch the network is exported with: two images at least (an example of one would
    fix the batch size to 1); image batches in channels_last, the memory format the int8 convs
    run in, so that layers with a branch per format (the RepMLP block's reassembly) are
    exported in the one that writes runs of channels."""
    return as_channels_last(batch if len(batch) > 1 else batch.expand(2, *batch.shape[1:]))


def _observe(prepared, batches):
    with torch.no_grad():
        for batch in batches:
            prepared(batch)
            _observe_weights_once(prepared)


def _observe_weights_once(prepared):
    """Make the weights' observers of a prepared graph pass their input through, keeping what
    they have seen: the weights are constants, and observing them again on every calibration
    batch (per channel, tens of millions of values for RepMLP's FCs) is most of the
    calibration's time."""
    for node in prepared.graph.nodes:
        if (node.op == 'call_module' and node.args
                and getattr(node.args[0], 'op', None) == 'get_attr'):
            prepared.get_submodule(node.target).forward = _pass_through


def _pass_through(x):
    return x


def _hold_back(inputs):
    """``(calibrating, held back)`` batches: the last batch is held back, or the second half
    of a single batch (none of a single image)."""
    if len(inputs) > 1:
        return inputs[:-1], inputs[-1:]
    half = (len(inputs[0]) + 1) // 2
    return [inputs[0][:half]], [inputs[0][half:]] if half < len(inputs[0]) else []


def _check_not_constant(inputs):
    low = min(batch.min().item() for batch in inputs)
    high = max(batch.max().item() for batch in inputs)
    if low == high:
        raise InputError(f'every calibration value is {low:g}: the int8 ranges would be '
                         'empty; calibrate on real inputs, preprocessed as the model sees them')


def _check_held_back(prepared, network, held_back, tolerance, strict, log):
    """Compare the int8 network calibrated so far with the float32 one on ``held_back``;
    refuse (or with ``strict`` False, warn) above ``tolerance``. Returns the relative RMS
    difference (None without a held-back batch: a single calibration image)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    if not held_back:
        return None
    int8 = convert_pt2e(copy.deepcopy(prepared))
    squared_error = squared_norm = 0.0
    with torch.no_grad():
        for batch in held_back:
            for quantized, reference in zip(output_tensors(int8(batch)),
                                            output_tensors(network(batch))):
                squared_error += (quantized.double() - reference.double()).square().sum().item()
                squared_norm += reference.double().square().sum().item()
    error = math.sqrt(squared_error / max(squared_norm, torch.finfo(torch.float64).tiny))
    if error <= tolerance:
        return error
    problem = (f'the int8 model differs from float32 by {error:.0%} (relative RMS) on the '
               f'held-back calibration batch, above the tolerance of {tolerance:.0%}: '
               f'{_most_changed_range(prepared, held_back)}')
    if strict:
        raise InputError(f'{problem}; calibrate on batches without outliers, all preprocessed '
                         'as the model inputs are (or pass strict=False to keep this model)')
    log(f'quantize_int8: warning: {problem}')
    return error


def _activation_observers(prepared):
    """``{observer module name: what it observes}`` of the activations (not the weights)."""
    observed = {}
    for node in prepared.graph.nodes:
        source = node.args[0] if node.op == 'call_module' and node.args else None
        if (getattr(source, 'op', 'get_attr') != 'get_attr'
                and hasattr(prepared.get_submodule(node.target), 'min_val')):
            stack = list(source.meta.get('nn_module_stack', {}).values())
            observed[node.target] = (
                'the input' if source.op == 'placeholder' else
                f'the output of {stack[-1][0]} ({stack[-1][1].rpartition(".")[2]})' if stack
                else source.name)
    return observed


def _most_changed_range(prepared, held_back):
    """Which activation range the calibration set differs most in from ``held_back``."""
    probe = copy.deepcopy(prepared)  # running it updates its observers
    seen, handles = {}, []

    def record(name):
        def hook(module, args):
            low, high = args[0].min().item(), args[0].max().item()
            old = seen.get(name, (low, high))
            seen[name] = (min(old[0], low), max(old[1], high))
        return hook

    observers = _activation_observers(probe)
    for name in observers:
        handles.append(probe.get_submodule(name).register_forward_pre_hook(record(name)))
    _observe(probe, held_back)
    tiny = torch.finfo(torch.float32).tiny

    def change(name):
        observer = prepared.get_submodule(name)
        calibrated = observer.max_val.max().item() - observer.min_val.min().item()
        return abs(math.log(max(calibrated, tiny) / max(seen[name][1] - seen[name][0], tiny)))

    name = max((name for name in observers if name in seen), key=change)
    observer = prepared.get_submodule(name)
    return (f'{observers[name]} was calibrated to [{observer.min_val.min().item():.4g}, '
            f'{observer.max_val.max().item():.4g}] and spans [{seen[name][0]:.4g}, '
            f'{seen[name][1]:.4g}] on the held-back batch')


def _quantizer(reduce_range):
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        get_default_x86_inductor_quantization_config,
    )

    config = get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
    return _group_sharing_quantizer_class()().set_global(config)


@functools.cache
def _group_sharing_quantizer_class():
    """torchao's ``X86InductorQuantizer``, with the inputs of the per-group FCs of each
    :class:`SplitGroupwiseFC` observed together: one activation scale per FC3 (a class made
    on first use: torchao is imported only by the int8 path)."""
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
    )

    class GroupSharingX86InductorQuantizer(X86InductorQuantizer):

        def annotate(self, model):
            model = super().annotate(model)
            for linears in _split_fc_linears(model.graph).values():
                first_input = linears[0].args[0]
                for linear in linears[1:]:
                    annotation = linear.meta.get('quantization_annotation')
                    if annotation is not None and linear.args[0] in annotation.input_qspec_map:
                        annotation.input_qspec_map[linear.args[0]] = SharedQuantizationSpec(
                            (first_input, linears[0]))
            return model

    return GroupSharingX86InductorQuantizer


def _split_fc_linears(graph):
    """The linear nodes of each :class:`SplitGroupwiseFC` in an exported graph, by the name of
    the module (in group order)."""
    linears = {}
    for node in graph.nodes:
        if node.target is torch.ops.aten.linear.default and 'nn_module_stack' in node.meta:
            name, group = _layer_name(node)
            if group is not None:
                linears.setdefault(name, []).append((group, node))
    return {name: [node for _, node in sorted(nodes, key=lambda item: item[0])]
            for name, nodes in linears.items()}


# Ops that only select or rearrange elements (no arithmetic): quantizing before or after them
# gives the same int8 values.
_MOVING_OPS = {
    torch.ops.aten.select.int, torch.ops.aten.unbind.int, torch.ops.aten.view.default,
    torch.ops.aten.reshape.default, torch.ops.aten._unsafe_view.default,
    torch.ops.aten.permute.default, torch.ops.aten.transpose.int, torch.ops.aten.slice.Tensor,
    torch.ops.aten.clone.default
}


def quantize_before_split(graph_module):
    """Move each per-tensor quantize that several quantizes of the same parameters repeat on
    views of one tensor (the groups of a split FC3's input) before those views, in place: the
    tensor is quantized once and the groups read int8 views of it.

    Returns:
        torch.fx.GraphModule: ``graph_module``, recompiled.
    """
    quantize = torch.ops.quantized_decomposed.quantize_per_tensor.default
    siblings = {}
    for node in graph_module.graph.nodes:
        if node.target is quantize:
            chain, source = _moving_chain(node.args[0])
            if chain:
                siblings.setdefault((source, *node.args[1:]), []).append((node, chain))
    for (source, *qparams), quantizes in siblings.items():
        if len(quantizes) < 2:
            continue
        with graph_module.graph.inserting_after(source):
            quantized = graph_module.graph.call_function(quantize, (source, *qparams))
        for node, chain in quantizes:
            node.replace_all_uses_with(_replay(graph_module.graph, chain, quantized, node))
            graph_module.graph.erase_node(node)
    graph_module.graph.eliminate_dead_code()
    graph_module.recompile()
    return graph_module


def _moving_chain(node):
    """The ops of :data:`_MOVING_OPS` (and ``getitem`` of their results) that lead to
    ``node``, outermost last, and the tensor they start from."""
    chain = []
    while (node.op == 'call_function' and (node.target in _MOVING_OPS or (
            node.target is operator.getitem and node.args[0].target in _MOVING_OPS))):
        chain.append(node)
        node = node.args[0]
    return chain[::-1], node


def _replay(graph, chain, start, before):
    """``chain`` applied again to ``start``, inserted before ``before``; the last result."""
    value = start
    with graph.inserting_before(before):
        for node in chain:
            value = graph.call_function(node.target, (value, *node.args[1:]), node.kwargs)
    return value


def cpu_has_vnni():
    """Whether this CPU has VNNI (AVX512-VNNI, AVX-VNNI or AMX), read from /proc/cpuinfo;
    False where it cannot be read."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags for flag in ('avx512_vnni', 'avx_vnni', 'amx_int8'))


def calibration_inputs(model, calibration, max_batches=None):
    """The network inputs (CPU tensors) of the calibration batches; see :func:`quantize_int8`.
    """
    batches = []
    for index, batch in enumerate(itertools.islice(calibration, max_batches)):
        if isinstance(batch, dict) and isinstance(model, BaseModel):
            with torch.no_grad():
                batch = model.data_preprocessor(batch, False)['inputs']
        if not isinstance(batch, torch.Tensor):
            raise TypeError('calibration batches must be input tensors, or dataloader batches '
                            f'(dicts) for an MMEngine model; got a {type(batch).__name__}')
        if batch.is_floating_point() and not torch.isfinite(batch).all():
            raise InputError(f'calibration batch {index} holds '
                             f'{(~torch.isfinite(batch)).sum().item()} NaN or infinite values; '
                             'calibrate on finite inputs (check the data and its '
                             'preprocessing)')
        batches.append(batch.cpu())
    if not batches:
        raise InputError('calibration has no batch; pass a dataloader or a list of input '
                         'tensors (a few hundred images are enough)')
    return batches


def _network(model):
    """``(attribute name, network)`` to quantize: a ``BaseModel``'s backbone, or the model
    itself (name None)."""
    return ('backbone', model.backbone) if isinstance(model, BaseModel) else (None, model)


def _as_quantizable_fcs(network):
    """Replace every groupwise FC of ``network`` by the form the quantizer quantizes (see the
    module's docstring), in place. Also those of one group: their ``features_first`` is a
    batched matmul, which the quantizer leaves in float32.

    Returns:
        dict[str, type]: the replaced FCs' names -> the class of their replacement.
    """
    swapped = {}
    for name, module in list(network.named_modules()):
        if isinstance(module, GroupwiseFC):
            parent, _, attribute = name.rpartition('.')
            owner = network.get_submodule(parent)
            form = SplitGroupwiseFC if module.groups <= MAX_SPLIT_GROUPS else GroupedConvFC
            setattr(owner, attribute, form(module))
            swapped[name] = form
    return swapped


def _describe_forms(swapped):
    """``'<n> groupwise FCs quantized as one FC per group, <m> as grouped 1x1 convs'``."""
    forms = list(swapped.values())
    return (f'{forms.count(SplitGroupwiseFC)} groupwise FCs quantized as one FC per group, '
            f'{forms.count(GroupedConvFC)} as grouped 1x1 convs')


def int8_weights(model):
    """The int8 kernels of a model quantized by :func:`quantize_int8`, dequantized.

    Returns:
        dict[str, Tensor]: the name each conv or FC has in the float model -> its dequantized
        weight (a groupwise FC3: its ``(O, C // g)`` weight, the FCs of its groups stacked; one of
        more than :data:`MAX_SPLIT_GROUPS` groups: the grouped conv's ``(O, C // g, 1, 1)``).
    """
    weights = {}
    for prefix, module in model.named_modules():
        if isinstance(module, Int8Network):
            for name, weight in _graph_int8_weights(module.graph_module).items():
                weights[f'{prefix}.{name}' if prefix else name] = weight
    return weights


def _int8_layers(graph_module):
    """The conv and linear nodes of a converted graph whose weight is an int8 one, and those
    weights' dequantize nodes."""
    dequantize = torch.ops.quantized_decomposed.dequantize_per_channel.default
    layers = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
    return [(node, node.args[1]) for node in graph_module.graph.nodes
            if node.target in layers and getattr(node.args[1], 'target', None) is dequantize]


def _graph_int8_weights(graph_module):
    parts = {}  # layer name -> [(group, weight)]: one entry, or a split FC's groups
    for node, weight in _int8_layers(graph_module):
        int8, scale, zero_point = (functools.reduce(getattr, arg.target.split('.'),
                                                    graph_module) for arg in weight.args[:3])
        shape = (-1, *([1] * (int8.dim() - 1)))
        name, group = _layer_name(node)
        parts.setdefault(name, []).append(
            (group or 0, (int8.float() - zero_point.reshape(shape)) * scale.reshape(shape)))
    return {name: torch.cat([weight for _, weight in sorted(groups, key=lambda g: g[0])])
            for name, groups in parts.items()}


def _layer_name(node):
    """``(name, group)``: the float model's name of the layer a conv or FC node comes from
    (the innermost module) and None; for an FC of a :class:`SplitGroupwiseFC`, the name of
    the groupwise FC it replaced and the FC's group; for the conv of a :class:`GroupedConvFC`,
    the name of the groupwise FC it replaced and None."""
    stack = list(node.meta['nn_module_stack'].values())
    if len(stack) > 1 and stack[-2][1].endswith(SplitGroupwiseFC.__qualname__):
        return stack[-2][0], int(stack[-1][0].rpartition('.')[2])
    if len(stack) > 1 and stack[-2][1].endswith(GroupedConvFC.__qualname__):
        return stack[-2][0], None
    return stack[-1][0], None
