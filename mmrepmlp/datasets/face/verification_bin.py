"""Face verification pairs in insightface's ``.bin`` format (LFW, CFP-FP, AgeDB-30, ...).

A ``.bin`` file is a pickle of ``(images, issame)``: ``images`` holds ``2P`` encoded images
(JPEG), images ``2k`` and ``2k + 1`` forming pair ``k``, and ``issame`` ``P`` booleans. The
published files were written by Python 2 (``str`` payloads, read back as ``bytes`` with
``encoding='bytes'``); files packed with ``cv2.imencode`` hold each image as a numpy ``uint8``
array instead of ``bytes``. They are downloaded from the internet, so they are unpickled with
an allow-list: lists, tuples, bytes, booleans, and numpy ``uint8``/``bool`` arrays and
scalars; any other global (``os.system``, ``builtins.eval``, ...) is refused before it runs,
and so is a call of ``numpy.ndarray`` itself, which allocates an array of any size from a few
bytes (a pickled array is rebuilt from its data in the file, bounded by the file's size).
"""
import os.path as osp
import pickle

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from ...utils.errors import InputError
from ...utils.files import atomic_write
from .images import MAX_IMAGE_PIXELS, decode_image

__all__ = [
    'FaceVerificationDataset', 'decode_face_image', 'load_verification_bin',
    'dump_verification_bin'
]

# What numpy arrays in these files may hold: images (uint8) and pair labels (bool).
_ALLOWED_DTYPES = (np.dtype(np.uint8), np.dtype(np.bool_))


class _RefusedPickle(pickle.UnpicklingError):
    """The pickle asks for something a verification ``.bin`` never contains."""


def _allowed_dtype(dtype):
    # a copy: the pickle then sets its state, which must not alter numpy's own dtype objects
    dtype = np.dtype(dtype, copy=True)
    if dtype not in _ALLOWED_DTYPES:
        raise _RefusedPickle(f'a numpy array of dtype {dtype}, not uint8 or bool')
    return dtype


def _dtype(spec, align=False, copy=True):
    """``numpy.dtype`` for ``uint8`` and ``bool`` only (Python 2 gives the name as bytes)."""
    if isinstance(spec, bytes):
        spec = spec.decode('ascii')
    if not isinstance(spec, str):
        raise _RefusedPickle(f'numpy.dtype({spec!r})')
    return _allowed_dtype(spec)


class _CheckedArray(np.ndarray):
    """An array whose pickled state is refused unless its dtype (as the pickle left it after
    setting the dtype's own state) is still uint8 or bool."""

    def __setstate__(self, state):
        for part in state:
            if isinstance(part, np.dtype):
                _allowed_dtype(part)
        super().__setstate__(state)


class _NdarrayType:
    """What ``numpy.ndarray`` unpickles to: the type argument of ``_reconstruct``. Called,
    it would allocate an array of any size (and any dtype, given as a string): refused."""

    def __new__(cls, *args, **kwargs):
        raise _RefusedPickle(f'numpy.ndarray{args!r}, an array allocated without its data')


def _empty_array(subtype, shape, typecode):
    """``numpy.core.multiarray._reconstruct``: an empty array, filled by its pickled state."""
    if subtype is not _NdarrayType:
        raise _RefusedPickle(f'an array of type {subtype!r}')
    return np.empty(0, dtype=np.uint8).view(_CheckedArray)


def _array_from_buffer(buffer, dtype, shape, order='C'):
    """``numpy.core.numeric._frombuffer``, how protocol 5 pickles an array."""
    return np.frombuffer(buffer, dtype=_allowed_dtype(dtype)).reshape(shape, order=order)


def _scalar(dtype, data):
    """``numpy.core.multiarray.scalar``: a numpy bool (or uint8) from its bytes."""
    if isinstance(data, str):  # Python 2 pickles read with encoding='latin1'
        data = data.encode('latin1')
    return np.frombuffer(data, dtype=_allowed_dtype(dtype), count=1)[0]


def _latin1_bytes(text, encoding='latin1'):
    """``_codecs.encode``, how protocol 2 pickles written by Python 3 store ``bytes``."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise _RefusedPickle(f'_codecs.encode with encoding {encoding!r}')
    return text.encode('latin1')


def _empty_bytes(*args):
    """``bytes()``: how protocol 2 pickles written by Python 3 store ``b''`` (an empty image);
    with arguments it would allocate memory, so none is accepted."""
    if args:
        raise _RefusedPickle(f'bytes{args!r}')
    return b''


_ALLOWED_GLOBALS = {('_codecs', 'encode'): _latin1_bytes, ('numpy', 'dtype'): _dtype,
                    ('numpy', 'ndarray'): _NdarrayType, ('__builtin__', 'bytes'): _empty_bytes,
                    ('builtins', 'bytes'): _empty_bytes}
for _core in ('numpy.core', 'numpy._core'):  # written by numpy 1.x, 2.x
    _ALLOWED_GLOBALS.update({(f'{_core}.multiarray', '_reconstruct'): _empty_array,
                             (f'{_core}.multiarray', 'scalar'): _scalar,
                             (f'{_core}.numeric', '_frombuffer'): _array_from_buffer})


class _BinUnpickler(pickle.Unpickler):

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedPickle(f'{module}.{name}') from None


def _unpickle(path):
    with open(path, 'rb') as f:
        return _BinUnpickler(f, encoding='bytes').load()


def _encoded_image(item, index, path):
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise InputError(f'{path}: image {index} is a {type(item).__name__}, not encoded image bytes; '
                     'the file is not a verification .bin')


def _pair_labels(issame, path):
    labels = np.asarray(issame)
    is_binary = labels.dtype == np.bool_ or (np.issubdtype(labels.dtype, np.integer)
                                             and np.isin(labels, (0, 1)).all())
    if labels.ndim != 1 or labels.size == 0 or not is_binary:
        raise InputError(f'{path}: the pair labels are not a non-empty list of booleans; the '
                         'file is not a verification .bin')
    return labels.astype(bool)


def load_verification_bin(path):
    """Read an insightface verification ``.bin`` (see the module docstring).

    Args:
        path (str): the ``.bin`` file.

    Returns:
        tuple[list[bytes], np.ndarray]: the ``2P`` encoded images in pair order and the
        ``(P,)`` bool array of whether each pair shows one person.

    Raises:
        InputError: the file is missing, is not such a pickle, or names a global outside the
            allow-list (nothing of it is run).
    """
    if not osp.isfile(path):
        raise InputError(f'verification set {path} does not exist; download the .bin files '
                         "(insightface's faces_emore package has lfw.bin, cfp_fp.bin, "
                         'agedb_30.bin) or fix the path')
    try:
        content = _unpickle(path)
    except _RefusedPickle as refused:
        raise InputError(f'{path} asks to unpickle {refused}, which a verification .bin never '
                         'contains; refusing to load it (the file may be malicious)') from None
    except Exception as error:  # any failure to parse means a truncated or foreign file
        raise InputError(f'{path} is not a readable verification .bin ({type(error).__name__}: '
                         f'{error}); download it again') from error
    if not (isinstance(content, (tuple, list)) and len(content) == 2
            and isinstance(content[0], (tuple, list))):
        raise InputError(f'{path} does not hold a pair (images, issame); the file is not a '
                         'verification .bin')
    images = [_encoded_image(item, index, path) for index, item in enumerate(content[0])]
    issame = _pair_labels(content[1], path)
    if len(images) != 2 * issame.size:
        raise InputError(f'{path} holds {len(images)} images for {issame.size} pairs, not '
                         f'{2 * issame.size}; the file is truncated or corrupt')
    return images, issame


def dump_verification_bin(images, issame, path):
    """Write pairs as a verification ``.bin`` that insightface's loader and
    :func:`load_verification_bin` read: a pickle of ``(images, issame)``, atomically.

    Args:
        images (Sequence[bytes]): ``2P`` encoded images, pair ``k`` being ``2k`` and ``2k + 1``.
        issame (Sequence[bool]): the ``P`` pair labels.
        path (str): the ``.bin`` to write.
    """
    issame = [bool(same) for same in issame]
    if len(images) != 2 * len(issame) or not issame:
        raise InputError(f'{len(images)} images for {len(issame)} pairs: a verification .bin '
                         'needs two images per pair and at least one pair')

    def write(tmp):
        with open(tmp, 'wb') as f:
            pickle.dump(([bytes(image) for image in images], issame), f, protocol=4)

    atomic_write(path, write)


def _named_bin_files(bin_files):
    """``{set name: path}`` from a dict, or from a path or a list of paths (names = stems)."""
    if isinstance(bin_files, dict):
        named = dict(bin_files)
    else:
        paths = [bin_files] if isinstance(bin_files, str) else list(bin_files)
        named = {osp.splitext(osp.basename(path))[0]: path for path in paths}
        if len(named) != len(paths):
            raise ValueError(f'FaceVerificationDataset: bin_files {paths} repeat a file name; '
                             'give a dict {set_name: path} to name them apart')
    if not named:
        raise ValueError('FaceVerificationDataset: bin_files is empty; give at least one .bin')
    return named


def decode_face_image(encoded, where, max_pixels=MAX_IMAGE_PIXELS):
    """Decode an encoded image to a BGR ``uint8`` ``(H, W, 3)`` array.

    Raises:
        InputError: the bytes are empty, too large an image or not an image; ``where`` names
            it in the message.
    """
    return decode_image(encoded, where, 'the file is corrupt, download it again',
                        max_pixels=max_pixels)


@DATASETS.register_module()
class FaceVerificationDataset(BaseDataset):
    """Verification pairs of one or several insightface ``.bin`` files, one sample per image.

    Each sample holds ``img`` (BGR ``uint8``, decoded in :meth:`prepare_data`), ``img_shape``,
    ``ori_shape`` and the fields :class:`FaceVerificationMetric` reads, to be packed with
    ``PackInputs(meta_keys=('set_name', 'index_in_set', 'issame'))``:

    - ``set_name``: the set's name (``'lfw'``);
    - ``index_in_set``: ``0 .. 2P-1``, images ``2k`` and ``2k + 1`` form pair ``k``;
    - ``issame``: whether that pair shows one person.

    The dataset's ``metainfo['set_sizes']`` is ``{set_name: number of images}``, in the order
    of ``bin_files``; the metric uses it to check that every image was evaluated.

    Args:
        bin_files (dict | list | str): ``{set_name: path}``, or paths named by their stems
            (``['lfw.bin', 'cfp_fp.bin']`` -> ``lfw``, ``cfp_fp``). Relative paths are
            relative to ``data_root``.
        data_root (str): the folder of the files. Defaults to ''.
        max_image_pixels (int): the most pixels an image may declare; a larger one (a
            decompression bomb) is refused before it is decoded. Defaults to 4096 x 4096.
        **kwargs: other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ...), except ``indices``, which would split pairs.
    """

    def __init__(self, bin_files, data_root='', max_image_pixels=MAX_IMAGE_PIXELS, **kwargs):
        if kwargs.get('indices') is not None:
            raise ValueError('FaceVerificationDataset does not take indices: a subset would '
                             'split pairs and folds; pack a smaller .bin instead')
        self.bin_files = _named_bin_files(bin_files)
        self.max_image_pixels = max_image_pixels
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def load_data_list(self):
        data_list, set_sizes = [], {}
        for name, path in self.bin_files.items():
            path = osp.join(self.data_root, osp.expanduser(path))
            images, issame = load_verification_bin(path)
            set_sizes[name] = len(images)
            data_list += [
                dict(img_bytes=encoded, bin_file=path, set_name=name, index_in_set=index,
                     issame=bool(issame[index // 2])) for index, encoded in enumerate(images)
            ]
        self._metainfo['set_sizes'] = set_sizes
        return data_list

    def prepare_data(self, idx):
        data_info = self.get_data_info(idx)
        img = decode_face_image(
            data_info.pop('img_bytes'),
            f'{data_info["bin_file"]}: image {data_info["index_in_set"]}', self.max_image_pixels)
        data_info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return self.pipeline(data_info)
