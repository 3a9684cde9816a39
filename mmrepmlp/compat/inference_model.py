"""mmpretrain's ``inference_model`` only serves models of its model zoo."""
import functools
import types

from .marks import is_ours, mark

# The MMPretrain task whose inferencer serves each kind of model, by class name.
_TASK_OF_MODEL = {
    'ImageClassifier': 'Image Classification',
    'ImageToImageRetriever': 'Image Retrieval',
}


def _task_metainfo(model):
    """Model-zoo-like metadata naming the task of ``model``, or None for an unknown kind."""
    for cls in type(model).__mro__:
        task = _TASK_OF_MODEL.get(cls.__name__)
        if task is not None:
            return types.SimpleNamespace(results=[types.SimpleNamespace(task=task)])
    return None


def _wrap_inference_model(original):

    @functools.wraps(original)
    def inference_model(model, *args, **kwargs):
        from mmengine.config import Config
        from mmengine.model import BaseModel
        from mmpretrain.apis import get_model

        if isinstance(model, (str, Config)) and _is_config(model):
            model = get_model(model, pretrained=kwargs.pop('pretrained', False),
                              device=kwargs.pop('device', None))
        if isinstance(model, BaseModel) and getattr(model, '_metainfo', None) is None:
            model._metainfo = _task_metainfo(model)
        return original(model, *args, **kwargs)

    return mark(inference_model)


def _is_config(model):
    return not isinstance(model, str) or model.endswith('.py')


def fix_inference_model():
    """Let ``mmpretrain.inference_model`` run models built from a config file.

    Upstream problem: ``inference_model`` chooses its inferencer from the model-zoo metadata
    (``ModelHub``) only. A model built with ``get_model('my_config.py', pretrained=...)``,
    e.g. from the ``*_deploy.py`` config that ``tools/deploy_convert.py`` writes, has none, so
    it fails with ``No available inferencer for the model``, and a config path is looked up
    as a zoo name. The wrapper builds the model of a config path first and, for a model
    without metadata, names the task from its class (an ``ImageClassifier`` is image
    classification); zoo models are served as before.

    Remove when mmpretrain picks the inferencer of config-built models itself (not in 1.2.0).

    Returns:
        bool: True if anything was patched by this call.
    """
    import mmpretrain
    import mmpretrain.apis
    import mmpretrain.apis.model as model_module

    if is_ours(model_module.inference_model):
        return False
    wrapped = _wrap_inference_model(model_module.inference_model)
    for module in (model_module, mmpretrain.apis, mmpretrain):
        if hasattr(module, 'inference_model'):
            module.inference_model = wrapped
    return True
