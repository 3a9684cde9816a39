"""The one way the package and its tools write files.

Every output is written to a temporary file beside its destination, flushed to disk and then
renamed over the destination, so a crash, a full disk or Ctrl-C never leaves a partial file
and never destroys the previous version. Outputs that belong together (a deploy checkpoint and
its config) are staged first and committed together: either all of them replace their
destinations or, on any failure, none does. Files get the mode the process umask gives a new
file (``0o666 & ~umask``), like ``open(path, 'w')``, not the private mode of a temporary file.
"""
import contextlib
import os
import os.path as osp
import re
import shutil
import tempfile

from .errors import InputError


def _umask_mode():
    umask = os.umask(0)  # reading the umask means setting it; restore it at once
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_path(path, directory=False):
    flags = os.O_RDONLY | (getattr(os, 'O_DIRECTORY', 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and /dev/null-like targets) refuse fsync
        pass
    finally:
        os.close(fd)


def _remove_quietly(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _new_temporary(path, suffix):
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = osp.splitext(path)[1]  # writers such as savefig look at the extension
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=f'.tmp{suffix}',
                               dir=directory)
    os.close(fd)
    return tmp


# How _new_temporary names the temporary file (or backup) of a destination NAME:
# '.NAME.' + mkstemp's 8 random characters + '.tmp' + an extension.
_TEMPORARY = re.compile(r'^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$')


def remove_temporaries(folder, names):
    """Remove the temporary files (and backups) that writers killed in the middle of a write
    left in ``folder`` for destinations whose name matches ``names`` (a regular expression).

    Call it only when no other process writes these files: a live writer's temporary would go
    too.

    Returns:
        list[str]: the removed paths.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = _TEMPORARY.match(entry.name)
            if match and re.fullmatch(names, match['name']) and entry.is_file(
                    follow_symlinks=False):
                _remove_quietly(entry.path)
                removed.append(entry.path)
    return sorted(removed)


def _finish_temporary(tmp):
    os.chmod(tmp, _umask_mode())
    _fsync_path(tmp)


@contextlib.contextmanager
def staged_files(paths, suffixes=None):
    """Yield temporary paths for ``paths``; commit them all together when the block succeeds.

    Write each output to its temporary path inside the ``with`` block. On normal exit every
    destination is replaced by its temporary file (see :func:`commit_together`); on any
    exception, KeyboardInterrupt included, the temporaries are removed and the destinations
    keep what they held before.

    Args:
        paths (Sequence[str]): the destinations.
        suffixes (Sequence[str | None], optional): the temporaries' extensions; by default
            each destination's own.
    """
    suffixes = suffixes or [None] * len(paths)
    temporaries = []
    try:
        for path, suffix in zip(paths, suffixes):
            temporaries.append(_new_temporary(path, suffix))
        yield list(temporaries)
        for tmp in temporaries:
            _finish_temporary(tmp)
        commit_together(list(zip(temporaries, paths)))
    finally:
        for tmp in temporaries:
            _remove_quietly(tmp)


def commit_together(pairs):
    """Rename each ``(temporary, destination)`` pair; on failure restore every destination.

    A destination that existed is first hard-linked (or copied) to a backup, so it stays in
    place until its temporary is renamed over it; if a later rename fails (or is
    interrupted), the renamed destinations get their backups back and new ones are removed.
    """
    backups, committed = {}, []
    try:
        for _, path in pairs:
            if osp.exists(path):
                backups[path] = _backup(path)
        for tmp, path in pairs:
            os.replace(tmp, path)
            committed.append(path)
    except BaseException:
        for path in committed:
            if path in backups:
                os.replace(backups.pop(path), path)
            else:
                _remove_quietly(path)
        raise
    finally:
        for backup in backups.values():
            _remove_quietly(backup)
    for directory in {osp.dirname(osp.abspath(path)) for _, path in pairs}:
        _fsync_path(directory, directory=True)


def _backup(path):
    backup = _new_temporary(path, '.bak')
    os.remove(backup)  # os.link needs a free name
    try:
        os.link(path, backup)
    except OSError:  # no hard links on this file system
        shutil.copy2(path, backup)
    return backup


def atomic_write(path, write, suffix=None):
    """Call ``write(tmp_path)`` on a temporary file, then rename it to ``path``."""
    with staged_files([path], [suffix]) as (tmp, ):
        write(tmp)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""

    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)

    atomic_write(path, write)


def torch_save(obj, path):
    """``torch.save(obj, path)``, atomically."""
    import torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def dump(obj, path):
    """``mmengine.dump`` (json, yaml or pickle by the extension), atomically."""
    import mmengine

    atomic_write(path, lambda tmp: mmengine.dump(obj, tmp, file_format=_dump_format(path)))


def _dump_format(path):
    extension = osp.splitext(path)[1].lower().lstrip('.')
    formats = {'json': 'json', 'yaml': 'yaml', 'yml': 'yaml', 'pkl': 'pickle',
               'pickle': 'pickle'}
    if extension not in formats:
        raise InputError(f'cannot tell the format of {path} from its extension; end it with '
                         '.json, .yaml or .pkl')
    return formats[extension]


def check_not_overwriting(outputs, inputs):
    """Refuse to write any of ``outputs`` over one of ``inputs``, by any spelling of the path.

    Relative and absolute paths, symlinks and hard links to the same file all count; an
    output folder is refused when it is an input or holds one. ``None`` entries are skipped.

    Raises:
        InputError: an output is, or contains, one of the inputs.
    """
    for output in outputs:
        if output is None:
            continue
        for given in inputs:
            if given is None or not osp.exists(given):
                continue
            same = osp.realpath(output) == osp.realpath(given) or (
                osp.exists(output) and osp.samefile(output, given))
            inside = osp.isdir(output) and osp.realpath(given).startswith(
                osp.join(osp.realpath(output), ''))
            if same or inside:
                raise InputError(f'refusing to write {output} over the input {given}; choose '
                                 'another output path')


def check_writable(path):
    """Make sure ``path`` (a file to create or replace) can be written, before any work.

    Raises:
        InputError: ``path`` is a directory, or its directory cannot be created or written.
    """
    if osp.isdir(path) or str(path).endswith(os.sep):
        raise InputError(f'output {path} is a directory; give a file path')
    directory = osp.dirname(osp.abspath(path))
    existing = directory
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise InputError(f'cannot create the folder of output {path}: {existing} is a file; '
                         'choose another output path')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f'cannot write output {path}: {existing} is not writable; choose '
                         'another output path')
    if existing == directory:
        # os.access does not know read-only mounts or /proc: try it.
        try:
            _remove_quietly(_new_temporary(path, '.probe'))
        except OSError as exc:
            raise InputError(f'cannot write output {path} ({exc.strerror}); choose another '
                             'output path') from exc
