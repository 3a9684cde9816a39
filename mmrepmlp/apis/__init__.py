"""Library side of the command-line tools: config preparation, model loading, deploy conversion
and speed measurement. The tools in ``tools/`` are thin wrappers over these functions."""
from ..deployment import ExportResult
from ..utils.errors import ToolError
from .benchmark import ModelSpec, benchmark_models
from .build import build_model, forward_raw, input_shape, load_config, load_model, read_checkpoint
from .deploy import DeployResult, convert_checkpoint, make_deploy_config
from .export import export_checkpoint
from .runner import (
    add_runner_args,
    build_runner,
    check_resume_fits,
    dry_run_summary,
    fit_config_to_device,
    parse_runner_args,
    prepare_test_config,
    prepare_train_config,
    run_test,
)

__all__ = [
    'ToolError', 'load_config', 'build_model', 'read_checkpoint', 'load_model', 'input_shape',
    'forward_raw', 'prepare_train_config', 'prepare_test_config', 'fit_config_to_device',
    'build_runner', 'check_resume_fits', 'dry_run_summary', 'run_test', 'add_runner_args',
    'parse_runner_args', 'DeployResult', 'convert_checkpoint', 'make_deploy_config',
    'ModelSpec', 'benchmark_models', 'ExportResult', 'export_checkpoint'
]
