"""mmengine's distributed evaluation leaves an empty ``.dist_test`` folder in the working
directory."""
import contextlib
import functools
import os

from .marks import is_ours, mark

_FOLDER = '.dist_test'


def _wrap_collect_results_cpu(original):

    @functools.wraps(original)
    def collect_results_cpu(result_part, size, tmpdir=None):
        from mmengine.dist import get_rank

        created_here = tmpdir is None and get_rank() == 0 and not os.path.isdir(_FOLDER)
        try:
            return original(result_part, size, tmpdir)
        finally:
            if created_here:
                with contextlib.suppress(OSError):  # not empty: something else uses it
                    os.rmdir(_FOLDER)

    return mark(collect_results_cpu)


def fix_dist_test_dir():
    """Remove the ``.dist_test`` folder that distributed evaluation creates, once it is empty.

    Upstream problem: ``mmengine.dist.collect_results_cpu`` (how the evaluator gathers the
    results of every rank without a ``tmpdir``) creates ``.dist_test`` in the current
    directory for a temporary folder shared by the ranks, removes the temporary folder but not
    ``.dist_test``: every multi-process test or validation leaves an empty folder behind (in a
    repository checkout, in the user's project). The wrapper removes it when rank 0 created
    it and it is empty again; a shared folder keeps working across nodes as before.

    Remove when mmengine cleans up ``.dist_test`` itself (it does not in 0.10.7).

    Returns:
        bool: True if anything was patched by this call.
    """
    import mmengine.dist
    import mmengine.dist.dist as dist_module

    if is_ours(dist_module.collect_results_cpu):
        return False
    wrapped = _wrap_collect_results_cpu(dist_module.collect_results_cpu)
    # collect_results() calls it through the module; the package re-exports it.
    dist_module.collect_results_cpu = wrapped
    mmengine.dist.collect_results_cpu = wrapped
    return True
