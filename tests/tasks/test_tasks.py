"""The task axis: configs pick their task in one place, each task's behaviour lives in its
adapter, and a new task is one adapter (plus its model, data and metrics): here a dummy task
defined in the test alone runs through tools/train.py and tools/test.py."""
import os.path as osp
import textwrap

import numpy as np
import pytest
from helpers_tools import load_tool
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmrepmlp.tasks import registered_tasks, task_of
from mmrepmlp.utils import REPO_ROOT
from mmrepmlp.utils.errors import InputError

DUMMY_TASK = textwrap.dedent('''\
    """A task of the test alone: a linear model on random vectors, whose test --out writes a
    text file and whose dataloaders get their collate from the task."""
    import torch
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel
    from mmengine.registry import DATASETS, METRICS, MODELS
    from torch.utils.data import Dataset

    from mmrepmlp.tasks import Task, TestOutput, register_task
    from mmrepmlp.utils.files import write_text


    @MODELS.register_module()
    class DummyRegressor(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, inputs, targets=None, mode='tensor'):
            out = self.fc(inputs)
            if mode == 'loss':
                return dict(loss=((out.squeeze(1) - targets) ** 2).mean())
            return [dict(pred=p, target=t) for p, t in zip(out, targets)] if (
                mode == 'predict') else out


    @DATASETS.register_module()
    class DummyVectors(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            x = torch.randn(4, generator=g)
            return dict(inputs=x, targets=x.sum())


    @METRICS.register_module()
    class DummyError(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results += [float((s['pred'] - s['target']).abs()) for s in data_samples]

        def compute_metrics(self, results):
            return dict(mean_abs_error=sum(results) / len(results))


    class WriteCount(BaseMetric):
        def __init__(self, path):
            super().__init__()
            self.path = path

        def process(self, data_batch, data_samples):
            self.results.append(len(data_samples))

        def compute_metrics(self, results):
            write_text(self.path, f'{sum(results)} predictions\\n')
            return {}


    @register_task
    class DummyTask(Task):
        name = 'dummy'
        default_scope = 'mmengine'

        def dataloader_defaults(self):
            return dict(collate_fn=dict(type='default_collate'))

        def check_test_output(self, out, out_item):
            if not out.endswith('.txt'):
                raise ValueError('the dummy task writes .txt')

        def prepare_test_output(self, cfg, out, out_item):
            return TestOutput(metrics=[WriteCount(out)])
    ''')

DUMMY_CONFIG = textwrap.dedent('''\
    custom_imports = dict(imports=['dummy_task'], allow_failed_imports=False)
    task = 'dummy'
    model = dict(type='DummyRegressor')
    loader = dict(dataset=dict(type='DummyVectors'), batch_size=4, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    train_dataloader = loader
    val_dataloader = loader
    test_dataloader = loader
    val_evaluator = dict(type='DummyError')
    test_evaluator = val_evaluator
    optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))
    train_cfg = dict(by_epoch=False, max_iters=4, val_interval=4)
    val_cfg = dict()
    test_cfg = dict()
    default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4))
    ''')


def test_a_task_defined_outside_the_package_runs_through_the_tools(tmp_path, monkeypatch):
    (tmp_path / 'dummy_task.py').write_text(DUMMY_TASK)
    (tmp_path / 'dummy.py').write_text(DUMMY_CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)

    load_tool('train.py').main(['dummy.py', '--work-dir', 'work'])
    assert 'dummy' in registered_tasks()
    assert (tmp_path / 'work' / 'iter_4.pth').is_file()
    load_tool('test.py').main(['dummy.py', 'work/iter_4.pth', '--work-dir', 'work',
                               '--out', 'count.txt'])

    assert (tmp_path / 'count.txt').read_text() == '8 predictions\n'
    cfg = Config.fromfile(str(tmp_path / 'dummy.py'))
    assert task_of(cfg).name == 'dummy'


@pytest.mark.parametrize('config, task', [
    (dict(model=dict(type='ImageClassifier')), 'classification'),
    (dict(default_scope='mmpretrain', model=dict(type='ImageClassifier')), 'classification'),
    (dict(default_scope='mmseg', model=dict(type='EncoderDecoder')), 'segmentation'),
    (dict(model=dict(type='FaceRecognizer')), 'face'),
    (dict(model=dict(type='mmpretrain.FaceRecognizer')), 'face'),
    (dict(task='segmentation', model=dict(type='ImageClassifier')), 'segmentation'),
])
def test_configs_pick_their_task(config, task):
    assert task_of(Config(config)).name == task


def test_unknown_tasks_are_named():
    with pytest.raises(InputError, match="task = 'detection'.*not one of"):
        task_of(Config(dict(task='detection', model=dict(type='X'))))
    with pytest.raises(InputError, match='cannot tell the task'):
        task_of(Config(dict(default_scope='mmdet', model=dict(type='X'))))


def test_face_task_behaviour(tmp_path):
    face = registered_tasks()['face']
    cfg = Config(dict(model=dict(type='FaceRecognizer'),
                      test_evaluator=dict(type='FaceVerificationMetric')))

    face.enable_visualization(cfg, False, str(tmp_path / 'plots'), 0, 1)

    assert cfg.test_evaluator[0].plot_dir == str(tmp_path / 'plots')
    with pytest.raises(InputError, match='already add the mirrored'):
        face.enable_tta(cfg)
    with pytest.raises(InputError, match='.npz'):
        face.check_test_output(str(tmp_path / 'x.pkl'), None)
    output = face.prepare_test_output(cfg, str(tmp_path / 'e.npz'), None)
    assert [type(m).__name__ for m in output.metrics] == ['FaceEmbeddingDump']


@pytest.mark.parametrize('config, image_size, input_size', [
    ('configs/repmlp_res50_g8_in1k.py', (300, 260), (224, 224)),  # load, resize, crop, pack
    ('configs/repmlp_face/mobilefacenet_8xb64_ms1mv2.py', (112, 112), (96, 96)),
])
def test_image_pipeline_makes_a_model_input_of_a_decoded_image(config, image_size, input_size):
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    image = np.random.default_rng(0).integers(0, 256, (*image_size, 3), dtype=np.uint8)

    sample = task_of(cfg).image_pipeline(cfg)(image)

    assert tuple(sample['inputs'].shape) == (3, *input_size)


def test_image_pipeline_leaves_the_current_registry_scope():
    """The pipeline is built in the task's scope (MMSeg's here) without making it the
    process's current scope, which would send later builds of other tasks to MMSeg."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/repmlp_pspnet/'
                                   'pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713.py'))
    def current_scope():
        return getattr(DefaultScope.get_current_instance(), 'scope_name', None)

    before = current_scope()
    assert before != 'mmseg'

    task_of(cfg).image_pipeline(cfg)

    assert current_scope() == before
