"""Decoding the encoded images of the face data (RecordIO records, ``.bin`` sets, image files).

An empty buffer, and a header declaring more pixels than a limit, are refused before anything
is decoded: OpenCV asserts on an empty buffer, and a 100 KB PNG can declare 30000 x 30000
pixels, 2.7 GB once decoded. The declared size is read from the header without decoding
(PNG and JPEG here, other formats by Pillow, a dependency of mmcv).
"""
import io
import struct
import warnings

import cv2
import numpy as np
from PIL import Image

from ...utils.errors import InputError

# Face crops are 112 x 112; 4096 x 4096 leaves room for uncropped photos and keeps a decoded
# image under 50 MB.
MAX_IMAGE_PIXELS = 4096 * 4096
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# start-of-frame markers (SOF0-15 but DHT, JPG and DAC); markers without a length field
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD9)])


def declared_size(encoded):
    """``(width, height)`` that the image header declares, read without decoding: PNG and
    JPEG here, other formats by Pillow (above Pillow's own bomb limit: ``(inf, inf)``); None
    when the header is not understood (OpenCV then decides)."""
    if encoded[:8] == PNG_SIGNATURE and encoded[12:16] == b'IHDR':
        return struct.unpack('>II', encoded[16:24])
    if encoded[:2] == b'\xff\xd8':
        return _jpeg_size(encoded)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(encoded)) as image:
                return image.size
        except Image.DecompressionBombError:
            return float('inf'), float('inf')
        except Exception:  # not a format Pillow reads
            return None


def _jpeg_size(encoded):
    """The size in the first start-of-frame segment of a JPEG (None if there is none)."""
    position = 2
    while position + 9 <= len(encoded) and encoded[position] == 0xFF:
        marker = encoded[position + 1]
        if marker in JPEG_FRAME_MARKERS:
            height, width = struct.unpack('>HH', encoded[position + 5:position + 9])
            return width, height
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker in JPEG_STANDALONE_MARKERS:
            position += 2
        else:
            position += 2 + struct.unpack('>H', encoded[position + 2:position + 4])[0]
    return None


def decode_image(encoded, where, fix, flag=cv2.IMREAD_COLOR, max_pixels=MAX_IMAGE_PIXELS):
    """Decode ``encoded`` with OpenCV (``flag``: BGR ``uint8`` ``(H, W, 3)`` by default).

    Args:
        encoded (bytes): the encoded image.
        where (str): how messages name the image.
        fix (str): what messages tell to do about a bad image.
        flag (int): OpenCV's imread flag.
        max_pixels (int): the most pixels the header may declare.

    Raises:
        InputError: the image is empty, declares more than ``max_pixels`` pixels, or does not
            decode.
    """
    if len(encoded) == 0:
        raise InputError(f'{where} is empty (0 bytes); {fix}')
    size = declared_size(encoded)
    if size is not None and size[0] * size[1] > max_pixels:
        declared = 'more pixels than Pillow reads' if size[0] == float('inf') else (
            f'{size[0]} x {size[1]} pixels')
        raise InputError(f'{where} declares {declared}, more than the limit of '
                         f'{max_pixels:,} (max_image_pixels); {fix}, or raise the limit')
    try:
        image = cv2.imdecode(np.frombuffer(encoded, dtype=np.uint8), flag)
    except cv2.error:
        image = None
    if image is None:
        raise InputError(f'{where} cannot be decoded as an image (OpenCV does not decode it); '
                         f'{fix}')
    return image
