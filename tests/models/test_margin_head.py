"""MarginSoftmaxHead: the combined margin against an independent float64 computation, finite
gradients on and opposite a class centre (float32 and under autocast), training, memory at
MS1M-V2's class count, class sampling and the MMPretrain head interface."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils._python_dispatch import TorchDispatchMode

from mmrepmlp.models import MarginSoftmaxHead

AM_SOFTMAX = (1.0, 0.0, 0.35)
ARCFACE = (1.0, 0.5, 0.0)
SPHEREFACE_LIKE = (2.0, 0.0, 0.0)
COMBINED = (1.2, 0.3, 0.2)
ALL_MARGINS = [AM_SOFTMAX, ARCFACE, SPHEREFACE_LIKE, COMBINED]


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def expected_logits(features, weight, labels, scale, margins):
    """The margin logits in float64 from the formulas, written out independently."""
    m1, m2, m3 = margins
    cosine = F.normalize(features.double(), dim=1) @ F.normalize(weight.double(), dim=1).t()
    logits = cosine.clone()
    theta_limit = (math.pi - m2) / m1
    for i, label in enumerate(labels.tolist()):
        c = cosine[i, label].item()
        theta = math.acos(max(-1.0, min(1.0, c)))
        if m1 * theta + m2 <= math.pi:
            logits[i, label] = math.cos(m1 * theta + m2) - m3
        elif margins == ARCFACE:  # ArcFace's own rule, spelled out
            logits[i, label] = c - m2 * math.sin(m2)
        else:
            logits[i, label] = c - m3 - (math.pi - theta_limit) * math.sin(theta_limit)
    return logits * scale


def centre_features(head, labels, signs):
    """Features equal (sign 1, theta = 0) or opposite (-1, theta = pi) to their class centre."""
    return (head.weight.detach()[labels] * torch.tensor(signs)[:, None]).clone()


@pytest.mark.parametrize('margins', ALL_MARGINS)
def test_target_logit_matches_formula(margins):
    torch.manual_seed(0)
    head = MarginSoftmaxHead(num_classes=7, in_channels=16, scale=64, margins=margins)
    labels = torch.tensor([0, 3, 6, 2, 5, 1])
    features = torch.randn(6, 16)
    # Two samples far beyond theta = pi - m2 (or pi / m1), where the fallback applies.
    features[:2] = -centre_features(head, labels[:2], [1, 1]) + 0.001 * torch.randn(2, 16)
    logits = head.margin_logits((features, ), labels)
    expected = expected_logits(features, head.weight.detach(), labels, 64, margins)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits.double(), expected, atol=2e-4, rtol=0)
    target = logits.gather(1, labels[:, None])
    plain = 64 * F.cosine_similarity(features, head.weight.detach()[labels])[:, None]
    assert (target < plain - 1e-3).all(), 'every margin must lower the target logit'


def test_arcface_target_logit_decreases_with_the_angle():
    """Also across theta = pi - m2, where the margined angle would pass pi."""
    head = MarginSoftmaxHead(num_classes=1, in_channels=2, margins=ARCFACE)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0]]))
    angles = torch.linspace(0, math.pi, 2001)
    features = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    target = head.margin_logits((features, ), torch.zeros(2001, dtype=torch.long))[:, 0]
    assert (target[1:] <= target[:-1] + 1e-4).all()


@pytest.mark.parametrize('autocast', [False, True], ids=['float32', 'cpu-bf16-autocast'])
@pytest.mark.parametrize('axis_centres', [False, True], ids=['random-centres', 'exact-cosines'])
@pytest.mark.parametrize('margins', ALL_MARGINS)
def test_gradients_finite_on_and_opposite_class_centre(margins, axis_centres, autocast):
    torch.manual_seed(0)
    head = MarginSoftmaxHead(num_classes=5, in_channels=8, scale=64, margins=margins)
    if axis_centres:  # centres 2 * e_k: the cosines come out exactly 1 and -1
        with torch.no_grad():
            head.weight.copy_(2 * torch.eye(5, 8))
    labels = torch.tensor([0, 1, 2, 3])
    features = centre_features(head, labels, [1, -1, 1, -1])
    if autocast:
        features = features.bfloat16()
    features.requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        cosine = head((features, ))
        loss = head.loss((features, ), samples(labels))['loss']
    loss.backward()
    assert cosine.dtype == torch.float32 and torch.isfinite(cosine).all()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all() and torch.isfinite(head.weight.grad).all()
    assert head.weight.grad.abs().sum() > 0


def test_cpu_autocast_computes_in_float32():
    torch.manual_seed(0)
    head = MarginSoftmaxHead(num_classes=9, in_channels=8, margins=ARCFACE)
    features = torch.randn(4, 8).bfloat16()
    labels = torch.tensor([1, 2, 3, 4])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = head.margin_logits((features, ), labels)
    expected = head.margin_logits((features.float(), ), labels)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_fp16_autocast_computes_in_float32():
    torch.manual_seed(0)
    head = MarginSoftmaxHead(num_classes=9, in_channels=8, margins=ARCFACE).cuda()
    features = torch.randn(4, 8, device='cuda').half().requires_grad_(True)
    labels = torch.tensor([1, 2, 3, 4], device='cuda')
    with torch.autocast('cuda', dtype=torch.float16):
        logits = head.margin_logits((features, ), labels)
        loss = head.loss((features, ), samples(labels.cpu()))['loss']
    loss.backward()
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    torch.testing.assert_close(logits, head.margin_logits((features.float(), ), labels),
                               atol=1e-5, rtol=0)
    assert torch.isfinite(features.grad).all()


@pytest.mark.parametrize('margins', [AM_SOFTMAX, ARCFACE])
def test_loss_decreases_on_a_toy_problem(margins):
    torch.manual_seed(0)
    num_classes, dim = 4, 8
    centres = torch.randn(num_classes, dim) * 3
    labels = torch.arange(num_classes).repeat(8)
    inputs = centres[labels] + torch.randn(len(labels), dim)
    embed = torch.nn.Linear(dim, dim)
    head = MarginSoftmaxHead(num_classes, dim, margins=margins)
    optimizer = torch.optim.SGD([*embed.parameters(), *head.parameters()], lr=0.1)
    losses = []
    for _ in range(30):
        loss = head.loss((embed(inputs), ), samples(labels))['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


class AllocationLog(TorchDispatchMode):
    """Records dtype, element count and bytes of every new tensor an operator returns.

    Views and in-place results share an input's storage and are not new allocations.
    """

    def __init__(self):
        super().__init__()
        self.outputs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [*args, *(kwargs or {}).values()]
        input_storages = {t.untyped_storage().data_ptr() for t in inputs
                          if isinstance(t, torch.Tensor)}
        for tensor in out if isinstance(out, (tuple, list)) else (out, ):
            if (isinstance(tensor, torch.Tensor)
                    and tensor.untyped_storage().data_ptr() not in input_storages):
                self.outputs.append((tensor.dtype, tensor.numel(), tensor.nbytes))
        return out


def test_ms1m_class_count_forward_backward_memory():
    num_classes, dim, batch = 85742, 512, 4
    head = MarginSoftmaxHead(num_classes, dim, margins=ARCFACE)
    features = torch.randn(batch, dim, requires_grad=True)
    log = AllocationLog()
    with log:
        loss = head.loss((features, ), samples(torch.randint(num_classes, (batch, ))))['loss']
        loss.backward()
    assert torch.isfinite(loss) and head.weight.grad.shape == (num_classes, dim)
    assert not any(dtype == torch.float64 for dtype, _, _ in log.outputs)
    assert all(dtype in (torch.float32, torch.bool) for dtype, numel, _ in log.outputs
               if numel >= batch * num_classes)
    # Everything allocated in forward and backward together: the weight gradient and the
    # temporaries of the row norms' backward, no normalised copy of the weight.
    weight_bytes = head.weight.nbytes
    assert sum(nbytes for _, _, nbytes in log.outputs) < 4.5 * weight_bytes


def test_sample_classes_keeps_targets_and_maps_labels():
    torch.manual_seed(0)
    head = MarginSoftmaxHead(num_classes=100, in_channels=4, sample_ratio=0.1)
    labels = torch.tensor([5, 17, 5, 99, 42])
    class_index, local_labels = head.sample_classes(labels)
    assert class_index.numel() == 10 == class_index.unique().numel()
    assert torch.equal(class_index[local_labels], labels)
    # A batch with more classes than the sample keeps every one of them.
    many = torch.arange(0, 100, 5)
    class_index, local_labels = head.sample_classes(many)
    assert torch.equal(class_index.sort().values, many)
    assert torch.equal(class_index[local_labels], many)


def test_sampled_loss_is_the_loss_over_the_sampled_classes():
    torch.manual_seed(0)
    head = MarginSoftmaxHead(num_classes=50, in_channels=8, margins=ARCFACE, sample_ratio=0.3)
    features, labels = torch.randn(6, 8), torch.tensor([1, 4, 4, 30, 49, 7])
    torch.manual_seed(1)
    loss = head.loss((features, ), samples(labels))['loss']
    torch.manual_seed(1)
    class_index, local_labels = head.sample_classes(labels)
    full_logits = head.margin_logits((features, ), labels)
    expected = F.cross_entropy(full_logits[:, class_index], local_labels)
    torch.testing.assert_close(loss, expected)
    assert class_index.numel() == 15


@pytest.mark.parametrize('sample_ratio', [1.0, 0.99])
def test_loss_matches_full_softmax_when_every_class_is_scored(sample_ratio):
    """Ratio 1 skips sampling; 0.99 of 10 classes samples all 10, in a shuffled order."""
    torch.manual_seed(0)
    full = MarginSoftmaxHead(num_classes=10, in_channels=8, margins=COMBINED)
    head = MarginSoftmaxHead(num_classes=10, in_channels=8, margins=COMBINED,
                             sample_ratio=sample_ratio)
    head.load_state_dict(full.state_dict())
    features, labels = torch.randn(5, 8), torch.tensor([0, 9, 3, 3, 6])
    loss = head.loss((features, ), samples(labels))['loss']
    expected = F.cross_entropy(full.margin_logits((features, ), labels), labels)
    torch.testing.assert_close(loss, expected)


def test_predict_gives_cosine_scores():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='MarginSoftmaxHead', num_classes=6, in_channels=8))
    features = torch.randn(3, 8)
    predictions = head.predict((features, ), [DataSample(), None, DataSample()])
    cosine = F.normalize(features, dim=1) @ F.normalize(head.weight.detach(), dim=1).t()
    scores = torch.stack([p.pred_score for p in predictions])
    torch.testing.assert_close(scores, cosine, atol=1e-6, rtol=0)
    assert [p.pred_label.item() for p in predictions] == cosine.argmax(1).tolist()


@pytest.mark.parametrize('kwargs, error, name', [
    (dict(num_classes=0), ValueError, 'num_classes'),
    (dict(num_classes=10.0), TypeError, 'num_classes'),
    (dict(in_channels=-1), ValueError, 'in_channels'),
    (dict(scale=0), ValueError, 'scale'),
    (dict(margins=(1.0, 0.5)), TypeError, 'margins'),
    (dict(margins=(0.5, 0.0, 0.0)), ValueError, 'margins'),
    (dict(margins=(1.0, 4.0, 0.0)), ValueError, 'margins'),
    (dict(sample_ratio=0.0), ValueError, 'sample_ratio'),
    (dict(sample_ratio=1.5), ValueError, 'sample_ratio'),
])
def test_bad_arguments_name_the_argument(kwargs, error, name):
    args = {**dict(num_classes=10, in_channels=8), **kwargs}
    with pytest.raises(error, match=name):
        MarginSoftmaxHead(**args)
