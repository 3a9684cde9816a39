"""Segmentation data checked before any work: Cityscapes images without the labelTrainIds maps
(MMSeg's converter not run) are one error line naming the converter, not a traceback at the
first batch."""
import pytest
from helpers_data import make_cityscapes
from helpers_tools import REPO_ROOT, load_tool

SEG_CONFIG = (f'{REPO_ROOT}/configs/repmlp_pspnet/'
              'pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713.py')


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_missing_label_maps_name_the_converter(tmp_path, monkeypatch, tool):
    make_cityscapes(tmp_path / 'data' / 'cityscapes', label_maps=False)
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'not read by a dry run')
    args = [SEG_CONFIG] + ([str(checkpoint)] if tool == 'test.py' else []) + [
        '--dry-run', '--cfg-options', 'model.backbone.init_cfg=None']

    with pytest.raises(SystemExit) as refused:
        load_tool(tool).main(args)

    error = refused.value.code
    assert error.startswith('error: ') and '\n' not in error
    assert '_gtFine_labelTrainIds.png' in error and 'city_000000_000019' in error
    assert 'dataset_converters/cityscapes.py' in error


def test_complete_data_passes(tmp_path, monkeypatch, capsys):
    make_cityscapes(tmp_path / 'data' / 'cityscapes')
    monkeypatch.chdir(tmp_path)

    load_tool('train.py').main([SEG_CONFIG, '--dry-run', '--cfg-options',
                                'model.backbone.init_cfg=None'])

    assert capsys.readouterr().out.startswith('dry run: ')


def test_missing_pretrained_checkpoint_offers_training_from_scratch(tmp_path, monkeypatch):
    make_cityscapes(tmp_path / 'data' / 'cityscapes')
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SystemExit) as refused:
        load_tool('train.py').main([SEG_CONFIG, '--dry-run'])

    error = refused.value.code
    assert 'checkpoints/repmlp-res50-g4g8_8xb32_in1k-320px.pth' in error
    assert '--cfg-options model.backbone.init_cfg=None' in error  # from scratch
    assert 'model.backbone.init_cfg.strict=False' in error  # what fits of another model
