"""Library side of the command-line tools: argument handling (:mod:`.cli`), config preparation
(:mod:`.config`), checks of their input (:mod:`.checks`), running (:mod:`.run`), model
loading, deploy conversion and speed measurement. The tools in ``tools/`` are thin wrappers
over these functions."""
from ..deployment import ExportResult
from .benchmark import ModelSpec, benchmark_models
from .build import build_model, forward_raw, input_shape, load_config, load_model, read_checkpoint
from .checks import check_load_from_fits, check_resume_fits, remove_partial_saves
from .cli import ToolError, add_runner_args, parse_runner_args
from .config import (
    dry_run_summary,
    fit_config_to_device,
    prepare_test_config,
    prepare_train_config,
)
from .deploy import DeployResult, convert_checkpoint, make_deploy_config
from .export import export_checkpoint
from .run import build_runner, run_test

__all__ = [
    'ToolError', 'load_config', 'build_model', 'read_checkpoint', 'load_model', 'input_shape',
    'forward_raw', 'prepare_train_config', 'prepare_test_config', 'fit_config_to_device',
    'build_runner', 'check_resume_fits', 'check_load_from_fits', 'remove_partial_saves',
    'dry_run_summary', 'run_test', 'add_runner_args',
    'parse_runner_args', 'DeployResult', 'convert_checkpoint', 'make_deploy_config',
    'ModelSpec', 'benchmark_models', 'ExportResult', 'export_checkpoint'
]
