"""RepMLP's structural re-parameterization: the math and the model-level conversion.

``python -m mmrepmlp.reparam`` runs an equivalence demo.
"""
from .check import deploy_difference, randomize_norm_layers
from .convert import (
    CONVERSION_METHODS,
    conversion_method,
    reparameterize_children,
    reparameterize_model,
    repmlp_model_convert,
)
from .functional import (
    absorb_bn_into_fc,
    absorb_bn_module_into_fc,
    add_conv_to_fc_,
    conv_to_fc,
    fc3_to_partition_major,
    fuse_bn,
    fuse_conv_bn,
    global_fcs_to_partition_major,
    inject_locality,
    pad_kernel,
    permute_features,
)

__all__ = [
    'fuse_bn', 'fuse_conv_bn', 'pad_kernel', 'conv_to_fc', 'add_conv_to_fc_', 'inject_locality',
    'absorb_bn_into_fc', 'absorb_bn_module_into_fc', 'permute_features', 'fc3_to_partition_major',
    'global_fcs_to_partition_major', 'reparameterize_model', 'reparameterize_children',
    'repmlp_model_convert', 'conversion_method', 'CONVERSION_METHODS',
    'randomize_norm_layers', 'deploy_difference'
]
