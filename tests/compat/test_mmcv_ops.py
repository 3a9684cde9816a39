"""mmrepmlp.compat.mmcv_ops: mmseg's models import on mmcv-lite, and the two pure-PyTorch ops
are right."""
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmrepmlp.compat import mmcv_ops


def test_mmseg_models_needs_mmcv_ops_upstream(upstream):
    kind, message = upstream['import_mmseg_models']
    assert kind == 'ModuleNotFoundError' and 'mmcv._ext' in message


def test_pspnet_builds_and_runs_with_fix(fixed):
    kind, value = fixed['pspnet']
    assert kind == 'ok', value
    # output stride 8 of a 32x32 input; predict resizes to the input size
    assert value == ['EncoderDecoder', 'PSPHead', [2, 3, 4, 4], True, [1, 32, 32]]


def test_mmcv_ops_stub_contents():
    import mmcv
    import mmcv.ops
    from mmcv.ops import point_sample, sigmoid_focal_loss

    assert mmcv.ops is sys.modules['mmcv.ops']
    assert point_sample is mmcv_ops.point_sample
    assert sigmoid_focal_loss is mmcv_ops.sigmoid_focal_loss
    # mmseg's optional imports catch ModuleNotFoundError: any other op must raise exactly that
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        mmcv.ops.SyncBatchNorm  # noqa: B018
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        import mmcv.ops.nms  # noqa: F401
    with pytest.raises(ModuleNotFoundError):
        from mmcv.ops.point_sample import bilinear_grid_sample  # noqa: F401
    # dunder lookups keep the normal protocol (no crash in hasattr/inspect)
    assert not hasattr(mmcv.ops, '__file__')
    # the guarded imports of mmseg now resolve to "not available"
    from mmseg.models.decode_heads import cc_head, psa_head

    assert cc_head.CrissCrossAttention is None and psa_head.PSAMask is None


def test_mmcv_ops_untouched_when_full_mmcv_is_installed(monkeypatch):
    monkeypatch.setattr(mmcv_ops, '_mmcv_ext_available', lambda: True)
    monkeypatch.delitem(sys.modules, 'mmcv.ops')
    assert mmcv_ops.fix_mmcv_ops() is False
    assert 'mmcv.ops' not in sys.modules


def _bilinear_reference(img, x, y, align_corners):
    """Bilinear sample of img (C, H, W) at relative (x, y) in [0, 1], zero padding."""
    c, h, w = img.shape
    if align_corners:
        px, py = x * (w - 1), y * (h - 1)
    else:
        px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = torch.zeros(c, dtype=img.dtype)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= xx < w and 0 <= yy < h:
                out += wx * wy * img[:, yy, xx]
    return out


@pytest.mark.parametrize('align_corners', [False, True])
def test_point_sample_matches_manual_bilinear(align_corners):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    points = torch.rand(2, 6, 2, generator=g, dtype=torch.float64)
    points[0, 0] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # corners: padding matters
    out = mmcv_ops.point_sample(feats, points, align_corners=align_corners)
    assert out.shape == (2, 3, 6)
    for n in range(2):
        for p in range(6):
            x, y = points[n, p].tolist()
            ref = _bilinear_reference(feats[n], x, y, align_corners)
            torch.testing.assert_close(out[n, :, p], ref)
    # grid-shaped points (N, Hg, Wg, 2) give (N, C, Hg, Wg)
    grid = points.view(2, 2, 3, 2)
    out_grid = mmcv_ops.point_sample(feats, grid, align_corners=align_corners)
    assert out_grid.shape == (2, 3, 2, 3)
    torch.testing.assert_close(out_grid.reshape(2, 3, 6), out)


def _focal_reference(logits, target, gamma, alpha, weight):
    n, c = logits.shape
    loss = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        for j in range(c):
            p = 1 / (1 + np.exp(-logits[i, j].item()))
            if target[i] == j:
                v = -alpha * (1 - p) ** gamma * np.log(p)
            else:
                v = -(1 - alpha) * p ** gamma * np.log(1 - p)
            if weight is not None and 0 <= target[i] < c:
                v *= weight[target[i]].item()
            loss[i, j] = v
    return loss


def test_sigmoid_focal_loss_matches_reference_formula():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    target = torch.tensor([0, 3, 1, 4, 2])  # 4 == num_classes: background
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    for gamma, alpha, w in ((2.0, 0.25, None), (1.5, 0.6, weight)):
        ref = _focal_reference(logits, target, gamma, alpha, w)
        none = mmcv_ops.sigmoid_focal_loss(logits, target, gamma, alpha, w, 'none')
        torch.testing.assert_close(none, ref)
        torch.testing.assert_close(
            mmcv_ops.sigmoid_focal_loss(logits, target, gamma, alpha, w, 'sum'), ref.sum())
        torch.testing.assert_close(
            mmcv_ops.sigmoid_focal_loss(logits, target, gamma, alpha, w), ref.sum() / 5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: mmcv_ops.sigmoid_focal_loss(x, target, 2.0, 0.25, weight, 'mean'), (logits,))


def test_sigmoid_focal_loss_agrees_with_mmseg_python_version():
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 3, generator=g)
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    one_hot = nn.functional.one_hot(target, 3).float()
    ours = mmcv_ops.sigmoid_focal_loss(logits, target, 2.0, 0.5, None, 'none')
    theirs = py_sigmoid_focal_loss(logits, one_hot, alpha=0.5, gamma=2.0, reduction='none')
    torch.testing.assert_close(ours, theirs)
