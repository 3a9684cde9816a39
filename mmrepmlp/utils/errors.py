"""Errors that carry a one-line message naming the problem and the fix."""


class InputError(ValueError):
    """Input the library cannot use: a missing or corrupt file, a config and checkpoint that do
    not match, an option this machine cannot honour. The message names the problem and the
    fix; the command-line tools print it as one ``error:`` line and exit 1 (their own
    subclass, :class:`mmrepmlp.apis.ToolError`, is for what only the tools can tell).
    """

    def __init__(self, message):
        # Messages of wrapped exceptions may span lines; the tools promise one line.
        super().__init__(' '.join(_worker_error_message(str(message)).split()))


def _worker_error_message(message):
    """The message of an error raised in a DataLoader worker, which PyTorch raises again in
    the main process as the same type with the worker's whole traceback for a message."""
    if not message.startswith('Caught ') or '\nOriginal Traceback' not in message:
        return message
    last_line = message.rstrip().splitlines()[-1]  # 'module.ErrorType: the message'
    return f'in a dataloader worker: {last_line.partition(": ")[2]}'


def describe_exception(exc, limit=200):
    """``TypeName: first line of the message``, cut to ``limit`` characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f'{type(exc).__name__}: {lines[0] if lines else "(no message)"}'
    return text if len(text) <= limit else text[:limit - 3] + '...'
