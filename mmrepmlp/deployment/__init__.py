"""The deployment layer: what is done to a model to run it, between the models and the tools.

- :func:`convert_model`: the deploy form, in place, a log line per converted module;
- :func:`optimize_for_inference`: the fastest exact inference form on a device;
- :class:`FaceEmbeddingInferencer`: a face image's embedding (also through
  ``mmpretrain.inference_model``);
- :func:`export_onnx`, :func:`export_pt2`, :func:`export_torchscript`: verified artifacts;
- :mod:`.quantization`: int8 post-training quantization, quantization-aware training and the
  BN-after-FC3 recovery;
- the model's raw outputs, the seeded batches and the comparison these checks share.

Everything here works on a model object; configs, checkpoints and output files are handled by
:mod:`mmrepmlp.apis` on top of it.
"""
from .convert import convert_model, invalid_values
from .export import (
    DEFAULT_OPSET,
    EXPORTERS,
    EXTENSIONS,
    ExportResult,
    RawOutputModel,
    check_output_path,
    export_onnx,
    export_program,
    export_pt2,
    export_torchscript,
    exportable_model,
    verify_artifact,
)
from .face_inferencer import FaceEmbeddingInferencer
from .inference import (
    InferenceSettings,
    compile_frozen,
    inductor_available,
    make_inference_only,
    optimize_for_inference,
)
from .outputs import (
    DEFAULT_TOLERANCE,
    compare_outputs,
    forward_raw,
    output_tensors,
    random_batch,
    raw_outputs,
)
from .quantization import (
    FC3WithBN,
    GroupedConvFC,
    Int8Network,
    QuantAwareTrainingHook,
    SplitGroupwiseFC,
    calibration_inputs,
    fake_quantize_weight,
    fake_quantized_deploy_fcs,
    fuse_fc3_bn,
    insert_fc3_bn,
    int8_weight_scale,
    int8_weights,
    is_quant_aware,
    prepare_quant_aware,
    quantize_int8,
)

__all__ = [
    'convert_model', 'invalid_values', 'optimize_for_inference', 'InferenceSettings',
    'compile_frozen', 'inductor_available', 'make_inference_only', 'DEFAULT_OPSET', 'EXPORTERS',
    'EXTENSIONS', 'ExportResult', 'RawOutputModel', 'check_output_path', 'export_onnx',
    'export_pt2', 'export_torchscript', 'export_program', 'exportable_model', 'verify_artifact',
    'DEFAULT_TOLERANCE', 'compare_outputs', 'forward_raw', 'output_tensors', 'random_batch',
    'raw_outputs', 'quantize_int8', 'int8_weights', 'calibration_inputs', 'Int8Network',
    'SplitGroupwiseFC', 'GroupedConvFC', 'fake_quantize_weight', 'fake_quantized_deploy_fcs',
    'int8_weight_scale', 'insert_fc3_bn', 'fuse_fc3_bn', 'FC3WithBN', 'prepare_quant_aware',
    'is_quant_aware', 'QuantAwareTrainingHook', 'FaceEmbeddingInferencer'
]
