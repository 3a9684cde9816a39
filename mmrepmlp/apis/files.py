"""Atomic file writes for the tools: a crash never leaves a partial output file."""
import os
import os.path as osp
import tempfile

from .errors import ToolError


def atomic_write(path, write, suffix=''):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``suffix`` keeps the extension for writers that look at it (``savefig``).
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomically(text, path):
    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)

    atomic_write(path, write, suffix=osp.splitext(path)[1])


def check_not_overwriting(outputs, inputs):
    """Refuse to write any of ``outputs`` over one of ``inputs`` (same file, any spelling)."""
    for output in outputs:
        for given in inputs:
            if osp.exists(given) and osp.exists(output) and osp.samefile(output, given):
                raise ToolError(f'refusing to overwrite the input {given}; choose another '
                                'output path (--out)')
