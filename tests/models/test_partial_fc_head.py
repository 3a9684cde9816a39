"""PartialFCHead against MarginSoftmaxHead on the same batch and weights: on one process, and on
two gloo processes (one spawn runs every multi-process check): loss, gradients of the
embeddings and of every centre, sampling, the gathered checkpoint and optimizer state, the
initial centres, and FaceRecognizer's gradients under DDP."""
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from helpers_tools import free_port, relative_difference
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmrepmlp  # noqa: F401  (registers the models)
from mmrepmlp.models import MarginSoftmaxHead, PartialFCHead
from mmrepmlp.models.heads.sharding import class_slice

NUM_CLASSES, DIM, SCALE, ARCFACE = 21, 8, 64.0, (1.0, 0.5, 0.0)
LOCAL_BATCHES = (5, 3)  # unequal, as the last batch of an epoch can be
TOLERANCE = 1e-6
# the backbone's gradients are sums over two batch halves through four layers, in float32
BACKBONE_TOLERANCE = 1e-5
SAMPLE_RATIO = 0.3


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def global_batch():
    """Centres, embeddings and labels (classes of both ranks' slices), the same in every
    process."""
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(NUM_CLASSES, DIM, generator=generator)
    embeddings = torch.randn(sum(LOCAL_BATCHES), DIM, generator=generator)
    labels = torch.tensor([0, 20, 11, 3, 10, 12, 3, 19])
    return weight, embeddings, labels


def rank_rows(rank):
    start = sum(LOCAL_BATCHES[:rank])
    return slice(start, start + LOCAL_BATCHES[rank])


def head_loss(head, embeddings, labels):
    """The loss and the gradients of the embeddings and of the head's centres."""
    embeddings = embeddings.clone().requires_grad_(True)
    loss = head.loss((embeddings, ), samples(labels))['loss']
    loss.backward()
    return loss.detach(), embeddings.grad, head.weight.grad


def reference_loss(weight, embeddings, labels):
    head = MarginSoftmaxHead(NUM_CLASSES, DIM, scale=SCALE, margins=ARCFACE)
    head.load_state_dict({'weight': weight})
    return head_loss(head, embeddings, labels)


def build_recognizer(head_type):
    """A tiny face model (LeNet-5 features, no BN) with the given head, same weights for the
    same seed whatever the head."""
    torch.manual_seed(3)
    model = MODELS.build(dict(
        type='FaceRecognizer', backbone=dict(type='LeNet5', num_classes=-1),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type=head_type, num_classes=NUM_CLASSES, in_channels=120, scale=SCALE,
                  margins=ARCFACE)))
    model.head.load_state_dict({'weight': global_batch()[0].repeat(1, 15)})
    return model


def recognizer_images():
    return torch.randn(sum(LOCAL_BATCHES), 1, 32, 32, generator=torch.Generator().manual_seed(9))


def local_labels_of(head, labels):
    """What PartialFCHead.loss scores on this rank: the labels of its slice, -1 elsewhere."""
    here = (labels >= head.class_start) & (labels < head.class_end)
    return torch.where(here, labels - head.class_start, -1)


def two_process_worker(rank, port, out_dir):
    torch.set_num_threads(1)  # two processes on the CI's two cores
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    weight, embeddings, labels = global_batch()
    rows, results = rank_rows(rank), {}

    torch.manual_seed(0)
    head = PartialFCHead(NUM_CLASSES, DIM, scale=SCALE, margins=ARCFACE)
    results['slice'] = (head.class_start, head.class_end)
    results['initial'] = head.state_dict()['weight']
    head.load_state_dict({'weight': weight})
    loss, embedding_grad, centre_grad = head_loss(head, embeddings[rows], labels[rows])
    results.update(loss=loss, embedding_grad=embedding_grad,
                   centre_grad=head.gather_centres(centre_grad))

    optimizer = torch.optim.SGD([head.weight], lr=0.1, momentum=0.9)
    head.attach_optimizer(optimizer)
    optimizer.step()
    saved = optimizer.state_dict()
    results['momentum'] = saved['state'][0]['momentum_buffer']
    results['local_momentum'] = optimizer.state[head.weight]['momentum_buffer'].clone()
    fresh = torch.optim.SGD([head.weight], lr=0.1, momentum=0.9)
    head.attach_optimizer(fresh)
    fresh.load_state_dict(saved)
    results['reloaded_momentum'] = fresh.state[head.weight]['momentum_buffer']

    sampled = PartialFCHead(NUM_CLASSES, DIM, scale=SCALE, margins=ARCFACE,
                            sample_ratio=SAMPLE_RATIO)
    sampled.load_state_dict({'weight': weight})
    torch.manual_seed(100 + rank)
    results['sampled_loss'] = head_loss(sampled, embeddings[rows], labels[rows])[0]
    torch.manual_seed(100 + rank)
    class_index, _ = sampled.sample_classes(local_labels_of(sampled, labels))
    results['sampled_classes'] = class_index + sampled.class_start

    model = build_recognizer('PartialFCHead')
    results['ignored_by_ddp'] = model._ddp_params_and_buffers_to_ignore
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    losses = ddp(recognizer_images()[rows], samples(labels[rows]), mode='loss')
    losses['loss'].backward()
    results['backbone_grads'] = {name: p.grad for name, p in model.backbone.named_parameters()}
    results['recognizer_centre_grad'] = model.head.gather_centres(model.head.weight.grad)

    torch.save(results, os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('partial_fc')
    # spawned, not forked: a fork of a process whose autograd threads have run (an earlier
    # test in the same worker) cannot run backward
    mp.start_processes(two_process_worker, args=(free_port(), str(out_dir)), nprocs=2,
                       start_method='spawn')
    return [torch.load(out_dir / f'rank{rank}.pth') for rank in range(2)]


def test_two_processes_hold_contiguous_slices_of_the_same_initial_centres(two_processes):
    assert [r['slice'] for r in two_processes] == [(0, 11), (11, 21)]
    torch.manual_seed(0)
    one_process = PartialFCHead(NUM_CLASSES, DIM).weight.detach()
    for result in two_processes:
        assert torch.equal(result['initial'], one_process)


def test_two_processes_equal_margin_softmax_head(two_processes):
    weight, embeddings, labels = global_batch()
    loss, embedding_grad, centre_grad = reference_loss(weight, embeddings, labels)
    for rank, result in enumerate(two_processes):
        assert relative_difference(result['loss'], loss) <= TOLERANCE
        assert relative_difference(result['embedding_grad'], embedding_grad[rank_rows(rank)]) \
            <= TOLERANCE
        assert relative_difference(result['centre_grad'], centre_grad) <= TOLERANCE


def test_two_processes_gather_and_slice_the_momentum(two_processes):
    centre_grad = reference_loss(*global_batch())[2]
    for result in two_processes:
        start, end = result['slice']
        assert relative_difference(result['momentum'], centre_grad) <= TOLERANCE  # first step
        assert torch.equal(result['momentum'][start:end], result['local_momentum'])
        assert torch.equal(result['reloaded_momentum'], result['local_momentum'])


def test_two_processes_sample_every_positive_and_restrict_the_full_loss(two_processes):
    weight, embeddings, labels = global_batch()
    sampled = [set(r['sampled_classes'].tolist()) for r in two_processes]
    for result, chosen in zip(two_processes, sampled):
        start, end = result['slice']
        assert all(start <= c < end for c in chosen)
        assert len(chosen) == max(math.ceil(SAMPLE_RATIO * (end - start)),
                                  len({c for c in labels.tolist() if start <= c < end}))
    classes = torch.tensor(sorted(sampled[0] | sampled[1]))
    assert set(labels.tolist()) <= set(classes.tolist())
    full = MarginSoftmaxHead(NUM_CLASSES, DIM, scale=SCALE, margins=ARCFACE)
    full.load_state_dict({'weight': weight})
    logits = full.margin_logits((embeddings, ), labels)[:, classes]
    expected = F.cross_entropy(logits, torch.searchsorted(classes, labels))
    for result in two_processes:
        assert relative_difference(result['sampled_loss'], expected) <= TOLERANCE


def test_face_recognizer_under_ddp_gets_the_one_process_gradients(two_processes):
    model = build_recognizer('MarginSoftmaxHead')
    _, _, labels = global_batch()
    model.loss(recognizer_images(), samples(labels))['loss'].backward()
    for result in two_processes:
        assert result['ignored_by_ddp'] == ['head.weight']
        for name, param in model.backbone.named_parameters():
            assert relative_difference(result['backbone_grads'][name], param.grad) \
                <= BACKBONE_TOLERANCE
        assert relative_difference(result['recognizer_centre_grad'], model.head.weight.grad) \
            <= TOLERANCE


@pytest.mark.parametrize('margins', [ARCFACE, (1.0, 0.0, 0.35)])
def test_one_process_equals_margin_softmax_head(margins):
    weight, embeddings, labels = global_batch()
    head = PartialFCHead(NUM_CLASSES, DIM, scale=SCALE, margins=margins)
    head.load_state_dict({'weight': weight})
    reference = MarginSoftmaxHead(NUM_CLASSES, DIM, scale=SCALE, margins=margins)
    reference.load_state_dict(head.state_dict())
    for actual, expected in zip(head_loss(head, embeddings, labels),
                                head_loss(reference, embeddings, labels)):
        assert relative_difference(actual, expected) <= TOLERANCE
    assert head.sharded_parameters == () and head.ddp_gradient_scale == 1


def test_one_process_sampling_keeps_positives_and_restricts_the_full_loss():
    weight, embeddings, labels = global_batch()
    head = PartialFCHead(NUM_CLASSES, DIM, scale=SCALE, margins=ARCFACE,
                         sample_ratio=SAMPLE_RATIO)
    head.load_state_dict({'weight': weight})
    torch.manual_seed(5)
    loss = head_loss(head, embeddings, labels)[0]
    torch.manual_seed(5)
    classes, local_labels = head.sample_classes(labels)
    assert set(labels.tolist()) <= set(classes.tolist()) and torch.equal(classes[local_labels],
                                                                         labels)
    logits = head.margin_logits((embeddings, ), labels)[:, classes]
    assert relative_difference(loss, F.cross_entropy(logits, local_labels)) <= TOLERANCE


@pytest.mark.parametrize('num_classes, world_size', [(21, 2), (10, 3), (4, 4), (85742, 8)])
def test_class_slices_cover_every_class_once(num_classes, world_size):
    slices = [class_slice(num_classes, rank, world_size) for rank in range(world_size)]
    assert slices[0][0] == 0 and slices[-1][1] == num_classes
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
    sizes = [end - start for start, end in slices]
    # the first num_classes % world_size ranks hold one class more
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1
    assert sum(s == max(sizes) for s in sizes) == (num_classes % world_size or world_size)


def test_more_processes_than_classes_are_refused():
    with pytest.raises(ValueError, match='3 classes cannot be split across 4 processes'):
        class_slice(3, 0, 4)


def test_cpu_autocast_computes_in_float32():
    weight, embeddings, labels = global_batch()
    head = PartialFCHead(NUM_CLASSES, DIM, scale=SCALE, margins=ARCFACE)
    head.load_state_dict({'weight': weight})
    half = embeddings.bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss((half, ), samples(labels))['loss']
    assert loss.dtype == torch.float32
    assert relative_difference(loss, head.loss((half.float(), ), samples(labels))['loss']) \
        <= TOLERANCE


def test_prediction_on_one_process_scores_every_class():
    weight, embeddings, _ = global_batch()
    head = PartialFCHead(NUM_CLASSES, DIM)
    head.load_state_dict({'weight': weight})
    cosine = F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).t()
    assert relative_difference(head((embeddings, )), cosine) <= TOLERANCE
