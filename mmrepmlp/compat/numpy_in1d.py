"""numpy 2.4 removed ``np.in1d``, which mmpretrain's retrieval metrics call."""
from .marks import mark


def _in1d(ar1, ar2, assume_unique=False, invert=False, *, kind=None):
    """``numpy.in1d`` (removed in numpy 2.4): ``np.isin`` on the flattened ``ar1``."""
    import numpy as np

    return np.isin(np.asarray(ar1).ravel(), ar2, assume_unique=assume_unique, invert=invert,
                   kind=kind)


def fix_numpy_in1d():
    """Restore ``numpy.in1d`` as an alias of ``np.isin`` on a flattened input.

    Upstream problem: numpy 2.4 removed ``np.in1d`` (deprecated since 2.0), which
    mmpretrain 1.2.0 uses in ``RetrievalRecall.calculate`` and ``RetrievalAveragePrecision``
    (``mmpretrain/evaluation/metrics/retrieval.py``). Only added when numpy lacks it.

    Remove when mmpretrain no longer calls ``np.in1d`` (it still does in 1.2.0) or numpy is
    pinned below 2.4.

    Returns:
        bool: True if ``np.in1d`` was added by this call.
    """
    import numpy as np

    if hasattr(np, 'in1d'):
        return False
    np.in1d = mark(_in1d)
    return True
