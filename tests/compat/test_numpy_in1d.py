"""mmrepmlp.compat.numpy_in1d: mmpretrain's retrieval metrics on numpy>=2.4."""
import numpy as np
import pytest
import torch

from mmrepmlp.compat import numpy_in1d


def test_np_in1d_missing_upstream(upstream):
    assert upstream['np_in1d'][0] == 'AttributeError'


def test_retrieval_metrics_with_in1d_fix(monkeypatch):
    from mmpretrain.evaluation import RetrievalAveragePrecision, RetrievalRecall

    def inputs():
        # ranked predictions per query and the relevant items
        return ([torch.tensor([1, 2, 0]), torch.tensor([2, 0, 1])],
                [torch.tensor([0]), torch.tensor([2])])

    monkeypatch.delattr(np, 'in1d', raising=False)  # numpy>=2.4 as installed
    with pytest.raises(AttributeError):
        RetrievalRecall.calculate(*inputs(), topk=1, pred_indices=True, target_indices=True)
    assert numpy_in1d.fix_numpy_in1d() is True
    assert numpy_in1d.fix_numpy_in1d() is False
    recall = RetrievalRecall.calculate(*inputs(), topk=(1, 2, 3), pred_indices=True,
                                       target_indices=True)
    assert [float(r) for r in recall] == pytest.approx([50.0, 50.0, 100.0])
    ap = RetrievalAveragePrecision.calculate(*inputs(), topk=3, pred_indices=True,
                                             target_indices=True)
    assert ap == pytest.approx((100 / 3 + 100) / 2)
    # old in1d semantics: flattened, invert supported
    assert np.in1d([[1, 2], [3, 4]], [2, 3]).tolist() == [False, True, True, False]
    assert np.in1d([1, 2], [2], invert=True).tolist() == [True, False]
