"""The ROC plot of IJB-B/IJB-C template verification."""
import numpy as np

from ..utils.files import atomic_write


def plot_ijb_roc(result, path, title='ROC on IJB'):
    """Write a PNG of the ROC curve (TAR against FAR on a log axis from 1e-6 to 1e-1) with the
    TAR read at each target FAR marked and listed.

    Args:
        result (IJBResult): what :func:`~mmrepmlp.evaluation.functional.tar_at_far` returned.
        path (str): the PNG, written atomically.
        title (str): the figure's title.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 5), dpi=100)
    axes = figure.subplots()
    # FAR 0 has no place on a log axis: draw it at half the smallest FAR above 0
    floor = 0.5 / max(1, result.num_negative)
    axes.semilogx(np.maximum(result.roc_far, floor), result.roc_tar,
                  label=f'AUC {100 * result.auc:.2f}%')
    axes.scatter(np.maximum(result.far, floor), result.tar, color='C3', zorder=3,
                 label='TAR at ' + ', '.join(f'{far:.0e}: {100 * tar:.2f}%' for far, tar in
                                             zip(result.far_targets, result.tar)))
    axes.set(xlim=(1e-6, 1e-1), ylim=(0.3, 1.0), xlabel='False Positive Rate',
             ylabel='True Positive Rate', title=title)
    axes.grid(True, which='both', linestyle='--', alpha=0.4)
    axes.legend(loc='lower right', fontsize='x-small')
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format='png'))
