"""mmrepmlp.compat.package_lookup: ``mmpretrain::``/``mmseg::`` bases without pkg_resources."""
import os.path as osp

import pytest

from mmrepmlp.compat import package_lookup


def test_external_base_configs_fail_upstream_without_pkg_resources(upstream):
    for key in ('config_mmpretrain', 'config_mmseg'):
        kind, message = upstream[key]
        assert kind == 'ModuleNotFoundError' and 'pkg_resources' in message


def test_external_base_configs_load_with_fix(fixed):
    assert fixed['config_mmpretrain'] == ['ok', ['ImageClassifier', 'ResNet', 7]]
    assert fixed['config_mmseg'] == ['ok', ['EncoderDecoder', 'ResNetV1c', 5]]


def test_package_lookup_without_pkg_resources():
    import mmengine.config.config
    import mmengine.utils
    import mmpretrain
    import mmseg

    import mmrepmlp

    assert mmengine.utils.get_installed_path is package_lookup._get_installed_path
    assert mmengine.config.config.is_installed is package_lookup._is_installed
    assert package_lookup._get_installed_path('mmsegmentation') == osp.dirname(mmseg.__file__)
    assert package_lookup._get_installed_path('mmpretrain') == osp.dirname(mmpretrain.__file__)
    # editable install: the module is not next to the metadata
    assert package_lookup._get_installed_path('mmrepmlp') == osp.dirname(mmrepmlp.__file__)
    assert package_lookup._package2module('mmsegmentation') == 'mmseg'
    assert package_lookup._is_installed('mmsegmentation')
    assert package_lookup._is_installed('mmcv-lite')
    assert not package_lookup._is_installed('surely-not-installed-mmrepmlp-pkg')
    with pytest.raises(ModuleNotFoundError):
        package_lookup._get_installed_path('surely-not-installed-mmrepmlp-pkg')
