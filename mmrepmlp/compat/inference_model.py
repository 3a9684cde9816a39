"""mmpretrain's ``inference_model`` only serves models of its model zoo, and tasks it has an
inferencer for."""
import functools
import types

from .marks import is_ours, mark

FACE_RECOGNITION = 'Face Recognition'  # the task of the face models' zoo entries
# The MMPretrain task whose inferencer serves each kind of model, by class name (the most
# specific class first: a FaceRecognizer is an ImageClassifier).
_TASK_OF_MODEL = {
    'FaceRecognizer': FACE_RECOGNITION,
    'ImageClassifier': 'Image Classification',
    'ImageToImageRetriever': 'Image Retrieval',
}
# Inferencers of tasks MMPretrain has none for, by task (filled by register_inferencer).
_INFERENCERS = {}
# What mmpretrain.inference_model's own inferencers serve (mmpretrain 1.2.0).
_MMPRETRAIN_TASKS = ('Image Classification', 'Image Retrieval', 'Image Caption',
                     'Visual Question Answering', 'Visual Grounding', 'Text-To-Image Retrieval',
                     'Image-To-Text Retrieval', 'NLVR')


def register_inferencer(task, inferencer_class):
    """Let ``inference_model`` serve the models of ``task`` (a zoo entry's ``Results`` task, or
    :data:`_TASK_OF_MODEL`'s for a model built from a config) with ``inferencer_class``, an
    ``mmpretrain.apis.BaseInferencer``."""
    _INFERENCERS[task] = inferencer_class


def _task_metainfo(model):
    """Model-zoo-like metadata naming the task of ``model``, or None for an unknown kind."""
    for cls in type(model).__mro__:
        task = _TASK_OF_MODEL.get(cls.__name__)
        if task is not None:
            return types.SimpleNamespace(results=[types.SimpleNamespace(task=task)])
    return None


def _tasks(model):
    """The tasks of a model object or zoo name, as ``inference_model`` reads them."""
    from mmengine.model import BaseModel
    from mmpretrain.apis import ModelHub

    metainfo = model._metainfo if isinstance(model, BaseModel) else ModelHub.get(model)
    return [result.task for result in (getattr(metainfo, 'results', None) or [])]


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
        tasks = _tasks(model) if isinstance(model, (str, BaseModel)) else []
        ours = [_INFERENCERS[task] for task in tasks if task in _INFERENCERS]
        if ours:
            return ours[0](model, **kwargs)(*args)[0]
        if tasks and not set(tasks) & set(_MMPRETRAIN_TASKS):
            raise NotImplementedError(
                f'no inferencer serves the task {tasks[0]!r} of this model: '
                f'mmpretrain.inference_model runs {", ".join(_MMPRETRAIN_TASKS)} and '
                f'{", ".join(_INFERENCERS) or "nothing else"}; call the model\'s test_step '
                'on a preprocessed batch instead')
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
    classification); zoo models are served as before. Added: a task MMPretrain has no
    inferencer for is served by one given to :func:`register_inferencer` (face recognition:
    :class:`mmrepmlp.deployment.FaceEmbeddingInferencer`), and any other such task is a
    ``NotImplementedError`` naming it (upstream: an ``IndexError``).

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
