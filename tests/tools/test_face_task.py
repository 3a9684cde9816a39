"""The face-recognition task end to end on generated data, through the tools: RepMLP-FaceRes
(the real ``face-repmlp-res50`` preset at 96x96) trained a few iterations with AM-Softmax on a
RecordIO file written by the repo's packer, validated on a generated ``.bin`` set, resumed,
tested, converted (exactly) and tested again in deploy form, on one process and on two."""
import pickle
import re

import cv2
import numpy as np
import pytest
import torch
from helpers_tools import (
    REPO_ROOT,
    assert_resumed_from,
    assert_same_final_state,
    free_port,
    load_tool,
    probe_hooks,
    run_tool,
    tool_env,
)
from mmengine.config import Config

from mmrepmlp.apis import convert_checkpoint

FACE_CONFIG = f'{REPO_ROOT}/configs/repmlp_face/repmlp-faceres50_8xb64_ms1mv2.py'
IDENTITIES, IMAGES_PER_IDENTITY, PAIRS = 4, 3, 12
THREE_ITERS = ['--cfg-options', 'train_cfg.max_iters=3', 'train_cfg.val_interval=3']


def face_image(rng, identity):
    """A 112x112 'face': an identity-specific colour pattern plus noise."""
    base = np.zeros((112, 112, 3), np.uint8)
    base[:, :, identity % 3] = 60 + 40 * identity
    base[identity * 20:identity * 20 + 30] = 200
    return np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def face_data(tmp_path_factory):
    """``faces/train.rec|idx`` packed from a folder per identity, and ``faces/lfw.bin``."""
    root = tmp_path_factory.mktemp('faces')
    rng = np.random.default_rng(0)
    for identity in range(IDENTITIES):
        folder = root / 'folders' / f'id{identity}'
        folder.mkdir(parents=True)
        for index in range(IMAGES_PER_IDENTITY):
            cv2.imwrite(str(folder / f'{index}.jpg'), face_image(rng, identity))
    packed = load_tool('dataset_converters/face_folder_to_rec.py').main(
        [str(root / 'folders'), str(root / 'data' / 'train')])
    assert packed is None and (root / 'data' / 'train.rec').is_file()
    bins, issame = [], []
    for pair in range(PAIRS):
        first = pair % IDENTITIES
        second = first if pair % 2 == 0 else (first + 1) % IDENTITIES
        for identity in (first, second):
            bins.append(cv2.imencode('.jpg', face_image(rng, identity))[1].tobytes())
        issame.append(first == second)
    with open(root / 'data' / 'lfw.bin', 'wb') as f:
        pickle.dump((bins, issame), f, protocol=2)
    return root / 'data'


def face_config(path, data_root, dump=None):
    """The real RepMLP-FaceRes config at a CPU test's scale (4 identities, 2 iterations); with
    ``dump``, training runs dump their state there (probe_hooks)."""
    root = str(data_root)
    text = f"""_base_ = [{FACE_CONFIG!r}]
model = dict(head=dict(num_classes={IDENTITIES}))
data_preprocessor = dict(num_classes={IDENTITIES})
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(data_root={root!r}))
val_dataloader = dict(batch_size=8, num_workers=0, dataset=dict(
    data_root={root!r}, bin_files=dict(_delete_=True, lfw='lfw.bin')))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = dict(milestones=[1])
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
randomness = dict(seed=0)
"""
    path.write_text(text + ('' if dump is None else probe_hooks(dump)))
    return str(path)


def metric(text, name):
    return float(re.findall(rf'{re.escape(name)}: ([0-9.]+)', text)[-1])


@pytest.fixture(scope='module')
def trained(face_data, tmp_path_factory):
    """The config, a checkpoint trained 2 iterations (validated) and resumed to 3, and the
    folder of the training runs' state dumps."""
    root = tmp_path_factory.mktemp('face_train')
    training = face_config(root / 'train.py', face_data, root / 'dump')
    work = root / 'work'
    trained = run_tool(['train.py', training, '--work-dir', work], root)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    log = trained.stdout + trained.stderr
    assert 'loss:' in log and 0 <= metric(log, 'lfw/accuracy') <= 1
    assert (work / 'iter_2.pth').is_file()

    resumed = run_tool(['train.py', training, '--work-dir', work, '--resume', *THREE_ITERS],
                       root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r'Iter\(train\) \[3/3\]', resumed.stdout + resumed.stderr)
    config = face_config(root / 'face.py', face_data)
    return config, str(work / 'iter_3.pth'), root / 'dump'


def test_resumed_run_ends_as_an_uninterrupted_run(trained, face_data, tmp_path):
    """Trained 2 iterations, resumed to 3 from the checkpoint of 2: the weights and optimizer
    state of 3 iterations in one run (validating changes neither; the resume replays the
    random flips of the data it skips)."""
    _, checkpoint, resumed_dump = trained
    assert_resumed_from(resumed_dump, checkpoint.replace('iter_3', 'iter_2'))
    config = face_config(tmp_path / 'plain.py', face_data, tmp_path / 'dump')

    plain = run_tool(['train.py', config, '--work-dir', tmp_path / 'work', '--no-validate',
                      *THREE_ITERS], tmp_path)

    assert plain.returncode == 0, plain.stderr[-3000:]
    assert_same_final_state(resumed_dump, tmp_path / 'dump', iters=3)


def test_test_convert_and_test_deploy(trained, tmp_path):
    config, checkpoint, _ = trained

    result = convert_checkpoint(config, checkpoint, log=lambda line: None)
    assert result.max_rel_diff <= 1e-5

    accuracies, embeddings = {}, {}
    for form, (cfg, ckpt) in {'train': (config, checkpoint),
                              'deploy': (result.config, result.checkpoint)}.items():
        tested = run_tool(['test.py', cfg, ckpt, '--work-dir', tmp_path / form,
                           '--out', tmp_path / f'{form}.npz',
                           '--show-dir', tmp_path / f'{form}_plots'], tmp_path)
        assert tested.returncode == 0, tested.stderr[-3000:]
        accuracies[form] = metric(tested.stdout + tested.stderr, 'lfw/accuracy')
        embeddings[form] = np.load(tmp_path / f'{form}.npz')
        assert (tmp_path / f'{form}_plots' / 'lfw.png').is_file()
    assert accuracies['deploy'] == accuracies['train']
    train_emb, deploy_emb = embeddings['train']['lfw'], embeddings['deploy']['lfw']
    assert train_emb.shape == (2 * PAIRS, 512)
    assert np.abs(train_emb - deploy_emb).max() <= 1e-5 * np.abs(train_emb).max()
    assert embeddings['deploy']['lfw_issame'].tolist() == [p % 2 == 0 for p in range(PAIRS)]
    deploy_cfg = Config.fromfile(result.config)
    assert deploy_cfg.model.backbone.deploy and deploy_cfg.model.neck.deploy


def test_identification_from_image_lists(trained, face_data, tmp_path):
    config, checkpoint, _ = trained
    folders = face_data.parent / 'folders'
    probe = [f'{folders}/id{i}/{j}.jpg {i}' for i in range(IDENTITIES) for j in range(2)]
    (tmp_path / 'probe.txt').write_text('\n'.join(probe) + '\n')
    (tmp_path / 'distractors.txt').write_text(f'{folders}/id0/2.jpg\n{folders}/id1/2.jpg\n')

    result = run_tool(['analysis_tools/face_identification.py', '--config', config,
                       '--checkpoint', checkpoint, '--probe', tmp_path / 'probe.txt',
                       '--distractors', tmp_path / 'distractors.txt',
                       '--save-features', tmp_path / 'features'], tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'rank-1: [0-9.]+% \(\d+ of 8 same-identity probe pairs\)', result.stdout)
    assert 'backend: faiss,' in result.stdout  # what the default 'auto' picks when installed
    saved = np.load(tmp_path / 'features' / 'probe.npz')
    assert saved['embeddings'].shape == (8, 512) and saved['labels'].tolist() == [
        i for i in range(IDENTITIES) for _ in range(2)]
    assert np.load(tmp_path / 'features' / 'distractors.npy').shape == (2, 512)
    again = run_tool(['analysis_tools/face_identification.py', '--probe',
                      tmp_path / 'features' / 'probe.npz', '--distractors',
                      tmp_path / 'features' / 'distractors.npy'], tmp_path)
    rank1 = [line for line in result.stdout.splitlines() if line.startswith('rank-1')]
    assert again.stdout.splitlines()[0] == rank1[0]


def test_two_cpu_processes_train_with_dist_train(face_data, tmp_path):
    config = face_config(tmp_path / 'face.py', face_data)
    env = dict(tool_env(), PORT=str(free_port()), CUDA_VISIBLE_DEVICES='')

    result = run_tool(['dist_train.sh', config, 2, '--work-dir', tmp_path / 'work'],
                      tmp_path, env)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'Distributed training: True' in log and 0 <= metric(log, 'lfw/accuracy') <= 1
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()
    assert not (tmp_path / '.dist_test').exists()


@pytest.mark.parametrize('config', ['mobilefacenet_8xb64_ms1mv2.py', 'faceres50_8xb64_ms1mv2.py',
                                    'repmlp-faceres50_8xb64_ms1mv2.py'])
def test_every_face_backbone_converts_exactly(config, tmp_path):
    from mmrepmlp.apis import load_model
    from mmrepmlp.reparam import randomize_norm_layers

    path = tmp_path / 'face.py'
    path.write_text(f"_base_ = [{REPO_ROOT + '/configs/repmlp_face/' + config!r}]\n"
                    f'model = dict(head=dict(num_classes={IDENTITIES}))\n')
    model = randomize_norm_layers(load_model(str(path))[0])
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'face.pth')

    result = convert_checkpoint(str(path), str(tmp_path / 'face.pth'), log=lambda line: None)

    assert result.max_rel_diff <= 1e-5
    assert any(name.startswith('neck') for name in result.converted)
    assert any(name.startswith('backbone') for name in result.converted)
