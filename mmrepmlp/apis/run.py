"""Build the Runner of a prepared config, and run the test of ``tools/test.py``."""
import glob
import logging
import math
import numbers
import os
import os.path as osp
import shutil

from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..deployment import optimize_for_inference
from ..utils.errors import InputError
from ..utils.files import dump
from .checks import check_checkpoint_fits
from .cli import ToolError


def build_runner(cfg):
    """The Runner of ``cfg``: MMEngine's, or the registered ``runner_type``."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def build_checked_runner(cfg, check):
    """The Runner of ``cfg``, after ``check(runner)``; when the check refuses (an
    :class:`~mmrepmlp.utils.errors.InputError`), what building the Runner created is removed
    (its timestamped log folder, its copy of the config, and the work dir and its parents if
    this run made them), so that a refused run leaves nothing behind."""
    work_dir = osp.abspath(cfg.work_dir)
    new_folders = _missing_ancestors(work_dir)
    config_copy = osp.join(work_dir, osp.basename(cfg.filename))
    new_copy = not osp.exists(config_copy)
    runner = build_runner(cfg)
    try:
        check(runner)
    except InputError:
        _forget_run(runner)
        shutil.rmtree(runner.log_dir, ignore_errors=True)
        if new_copy and osp.isfile(config_copy):
            os.remove(config_copy)
        for folder in new_folders:  # deepest first; one holding other files stays
            if osp.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise
    return runner


def _forget_run(runner):
    """Close the Runner's log file and drop its logger and visualizer instances, which write
    into its log folder: a later Runner of the same name (one started within the same second
    in this process) would reuse them."""
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)
    for instance in (runner.logger, runner.visualizer):  # each class keeps its own instances
        type(instance)._instance_dict.pop(instance.instance_name, None)


def _missing_ancestors(path):
    """``path`` and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    while not osp.exists(path):
        missing.append(path)
        path = osp.dirname(path)
    return missing


def checkpoints_left(work_dir):
    """What an interrupted training leaves: its checkpoints in ``work_dir`` (the latest
    first) and how to resume, or that none was saved."""
    checkpoints = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime,
                         reverse=True)
    if not checkpoints:
        return f'training stopped before any checkpoint was saved in {work_dir}'
    listed = ', '.join(checkpoints[:3]) + (f' and {len(checkpoints) - 3} more'
                                           if len(checkpoints) > 3 else '')
    return (f'training stopped; saved checkpoints (latest first): {listed}; continue with '
            f'--resume (from the latest) or --resume {checkpoints[0]}')


def run_test(cfg, checkpoint, out=None, out_item=None, test_output=None, strict=True,
             optimize=False):
    """Test ``checkpoint`` with ``cfg``'s runner; write predictions or metrics to ``out``.

    Args:
        cfg (Config): the config from :func:`~mmrepmlp.apis.config.prepare_test_config`.
        checkpoint (str): the weights, loaded strictly unless ``strict`` is False.
        out (str, optional): ``--out``.
        out_item (str, optional): ``'metrics'`` or ``'pred'`` (the default).
        test_output (TestOutput, optional): what ``prepare_test_config`` returned.
        strict (bool): refuse a checkpoint that does not fit the model.
        optimize (bool): load the checkpoint, then test the model as
            :func:`~mmrepmlp.deployment.optimize_for_inference` makes it (deploy form,
            compiled).

    Returns:
        dict: the metrics.

    Raises:
        ToolError: the checkpoint does not fit, or a metric is not finite.
    """
    runner = build_checked_runner(cfg, lambda r: check_checkpoint_fits(r, checkpoint, strict))
    if optimize:
        _optimize_runner_model(runner, checkpoint)
    if test_output is not None:
        runner.test_evaluator.metrics.extend(test_output.metrics)
    succeeded = False
    try:
        metrics = runner.test()
        _check_finite(metrics)
        if out and out_item == 'metrics':
            dump(metrics, out)
        succeeded = True
    finally:
        if test_output is not None:
            test_output.commit(succeeded)
    return metrics


def _optimize_runner_model(runner, checkpoint):
    """Load ``checkpoint`` into the Runner's model and put its optimized copy in its place.

    The test loop needs no DDP wrapper (it calls ``test_step``); a test-time augmentation
    wrapper is kept, around the optimized model.
    """
    runner.load_checkpoint(checkpoint, map_location='cpu')  # test() then loads nothing
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    log = runner.logger.info
    if isinstance(model, BaseTTAModel):
        model.module = optimize_for_inference(model.module.eval(), log=log)
    else:
        model = optimize_for_inference(model.eval(), log=log)
    runner.model = model


def _check_finite(metrics):
    bad = [name for name, value in (metrics or {}).items()
           if isinstance(value, numbers.Number) and not math.isfinite(float(value))]
    if bad:
        raise ToolError(f'the test gave non-finite metrics ({", ".join(bad)}); the model '
                        'outputs NaN or inf: check the checkpoint (e.g. with '
                        'tools/deploy_convert.py, which names non-finite weights)')
