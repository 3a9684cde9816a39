"""Writing predictions of ``tools/test.py --out`` atomically."""
from mmengine.evaluator import DumpResults
from mmpretrain.registry import METRICS

from ...utils.files import dump


@METRICS.register_module()
class DumpPredictions(DumpResults):
    """MMEngine's ``DumpResults`` (every prediction into one pickle), written atomically: an
    interrupted test leaves the previous file, never a partial one.

    Args:
        out_file_path (str): the pickle to write (``.pkl``).
        collect_device (str): as in MMEngine's metrics. Defaults to 'cpu'.
        collect_dir (str, optional): as in MMEngine's metrics.
    """

    def compute_metrics(self, results):
        dump(results, self.out_file_path)
        return {}
