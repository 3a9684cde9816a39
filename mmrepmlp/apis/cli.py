"""What every command-line tool does with bad input and with Ctrl-C."""
import functools
import sys

from ..utils.errors import ToolError
from .runner import launcher_rank

INTERRUPTED_STATUS = 130  # 128 + SIGINT, what shells report for Ctrl-C


def tool_main(main):
    """Decorator for a tool's ``main(argv=None)``.

    A :class:`ToolError` ends the tool with ``error: <message>`` on stderr (one line, printed
    by rank 0 only when several processes run the tool) and exit status 1; Ctrl-C ends it
    with one line and status 130. The tools write outputs atomically, so neither leaves a
    partial file.
    """

    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except ToolError as error:
            if launcher_rank() != 0:
                raise SystemExit(1) from None
            raise SystemExit(f'error: {error}') from None
        except KeyboardInterrupt:
            print('interrupted: no output was written or changed', file=sys.stderr)
            raise SystemExit(INTERRUPTED_STATUS) from None

    return run
