"""MMSegmentation's own entry points on mmrepmlp's models, in a fresh interpreter that never
imports mmrepmlp itself: ``from mmseg.apis import ...`` (mmcv-lite has no mmcv.ops; the import
hook that the install puts into site-packages imports mmrepmlp first), ``MMSegInferencer`` by
config path (the config's custom_imports) and by model name (mmrepmlp's model index)."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import torch
from helpers_tools import TINY_SEG_CONFIG
from PIL import Image

from mmrepmlp.apis import load_model

SEG_MODEL = 'pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713'


def test_mmseg_apis_and_inferencer_without_importing_mmrepmlp(tmp_path):
    config = tmp_path / 'tiny_seg.py'  # MMSeg's inference reads the config's test_pipeline
    config.write_text(f"_base_ = [{TINY_SEG_CONFIG!r}]\n"
                      "test_pipeline = [dict(type='LoadImageFromFile'), "
                      "dict(type='PackSegInputs')]\n")
    meta = dict(dataset_meta=dict(classes=('a', 'b', 'c', 'd'),
                                  palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]))
    torch.save({'state_dict': load_model(TINY_SEG_CONFIG)[0].state_dict(), 'meta': meta},
               tmp_path / 'tiny.pth')
    image = np.random.default_rng(0).integers(0, 256, (48, 60, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / 'street.png')
    script = textwrap.dedent(f"""\
        import json, sys
        from mmseg.apis import MMSegInferencer, init_model, inference_model

        model = init_model({str(config)!r}, {str(tmp_path / 'tiny.pth')!r}, device='cpu')
        by_init = inference_model(model, {str(tmp_path / 'street.png')!r})
        by_path = MMSegInferencer({str(config)!r}, {str(tmp_path / 'tiny.pth')!r},
                                  device='cpu')({str(tmp_path / 'street.png')!r})
        by_name = MMSegInferencer({SEG_MODEL!r}, device='cpu')
        print(json.dumps(dict(
            init=list(by_init.pred_sem_seg.data.shape),
            same=bool((by_init.pred_sem_seg.data[0].numpy() == by_path['predictions']).all()),
            name=[type(by_name.model.backbone).__name__, by_name.cfg.filename])))
        """)
    ran = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)

    assert ran.returncode == 0, ('a fresh interpreter cannot use mmseg.apis (is the install '
                                 'up to date? make venv): ' + ran.stderr[-3000:])
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result['init'] == [1, 48, 60] and result['same']
    assert result['name'][0] == 'RepMLPResNet' and result['name'][1].endswith(f'{SEG_MODEL}.py')
