"""mmrepmlp.compat.inferencer_model_names: MMSeg's inferencer finds mmrepmlp's segmentation
models by name; names of other scopes are still unknown to it."""
import pytest
from mmengine.infer import BaseInferencer

import mmrepmlp  # noqa: F401  (applies the fixes)

SEG_MODEL = 'pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713'


@pytest.fixture
def seg_inferencer():
    from mmseg.apis import MMSegInferencer

    inferencer = object.__new__(MMSegInferencer)  # what __init__ has set when it looks up
    inferencer.scope = 'mmseg'
    return inferencer


def test_seg_model_name_unknown_upstream_and_found_with_fix(seg_inferencer):
    with pytest.raises(ValueError, match='Cannot find model'):
        BaseInferencer._load_model_from_metafile.__wrapped__(seg_inferencer, SEG_MODEL)

    cfg, weights = seg_inferencer._load_model_from_metafile(SEG_MODEL.upper())

    assert cfg.filename.endswith(f'configs/repmlp_pspnet/{SEG_MODEL}.py')
    assert cfg.model.backbone.type == 'mmpretrain.RepMLPResNet' and weights is None


def test_models_of_another_scope_stay_unknown(seg_inferencer):
    with pytest.raises(ValueError, match='Cannot find model'):
        seg_inferencer._load_model_from_metafile('repmlp-res50-g8g8_8xb32_in1k')
