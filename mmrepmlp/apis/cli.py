"""The command-line side of the tools: their error, what they do with bad input and Ctrl-C,
and the arguments ``tools/train.py`` and ``tools/test.py`` share."""
import contextlib
import functools
import logging
import os
import sys

import torch.distributed as dist
from mmengine.config import DictAction

from ..utils.errors import InputError

INTERRUPTED_STATUS = 130  # 128 + SIGINT, what shells report for Ctrl-C


class Interrupted(KeyboardInterrupt):
    """Ctrl-C in a tool that wrote outputs before it: ``message`` says which (e.g. the
    checkpoints a training saved), printed by :func:`tool_main` instead of "no output was
    written or changed"."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class ToolError(InputError):
    """Bad input to a command-line tool (an argument, a config, a checkpoint).

    The library below the tools raises :class:`~mmrepmlp.utils.errors.InputError` (or a
    ``ValueError``/``TypeError``/``RuntimeError``); this subclass is for what only the tools'
    layer can tell, such as an option that does not fit the others.
    """


def tool_main(main):
    """Decorator for a tool's ``main(argv=None)``.

    An :class:`~mmrepmlp.utils.errors.InputError` (a :class:`ToolError` included) ends the
    tool with ``error: <message>`` on stderr (one line, printed by rank 0 only when several
    processes run the tool) and exit status 1; Ctrl-C ends it with one line (an
    :class:`Interrupted`'s message, if the tool raised one) and status 130. The tools write
    outputs atomically, so neither leaves a partial file.
    """

    @functools.wraps(main)
    def run(argv=None):
        try:
            result = main(argv)
            close_process_group()
            return result
        except InputError as error:
            if launcher_rank() != 0:
                raise SystemExit(1) from None
            raise SystemExit(f'error: {error}') from None
        except KeyboardInterrupt as interrupt:
            message = getattr(interrupt, 'message', 'no output was written or changed')
            print(f'interrupted: {message}', file=sys.stderr)
            raise SystemExit(INTERRUPTED_STATUS) from None

    return run


def close_process_group():
    """End a distributed run that succeeded: every rank waits for the others, then destroys
    the default process group, as torch asks; left to the interpreter's exit, gloo's threads
    could abort a rank that had finished ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def quiet_mmengine_logs(verbose=False):
    """Keep MMEngine's info-level log (e.g. the weight initialization of every parameter,
    thousands of lines for a ResNet) out of a tool's output, unless ``verbose``."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def add_runner_args(parser):
    """Add the arguments ``train.py`` and ``test.py`` share last: config overrides, a dry
    run, and the launcher."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value (a list: key="[a,b]" or key=a,b)')
    parser.add_argument(
        '--dry-run', action='store_true',
        help='check the config, its data paths and the checkpoint, then stop (the '
        'distributed launchers do this once before starting the processes)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK instead).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser, argv=None):
    """Parse ``argv``; a launcher's ``--local-rank`` becomes ``LOCAL_RANK`` for MMEngine."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def launcher_rank():
    """This process's rank as the launchers set it (0 without a launcher)."""
    for variable in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(variable, '').isdigit():
            return int(os.environ[variable])
    return 0
