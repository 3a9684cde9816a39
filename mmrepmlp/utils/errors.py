"""The error the command-line tools report as one line (and exit 1) instead of a traceback."""


class ToolError(Exception):
    """Bad input to a tool (missing file, corrupt checkpoint, config and checkpoint that do not
    match, an option this machine cannot honour). The message names the problem and the fix.
    """

    def __init__(self, message):
        # Messages of wrapped exceptions may span lines; the tools promise one line.
        super().__init__(' '.join(str(message).split()))


def describe_exception(exc, limit=200):
    """``TypeName: first line of the message``, cut to ``limit`` characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f'{type(exc).__name__}: {lines[0] if lines else "(no message)"}'
    return text if len(text) <= limit else text[:limit - 3] + '...'
