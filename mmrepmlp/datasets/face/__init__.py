"""Face recognition: MXNet RecordIO without mxnet, the training sets stored in it, and the
verification pairs of insightface's ``.bin`` sets."""
from .ms1m import MXFaceDataset
from .recordio import (
    FaceLayout,
    Record,
    RecordIOError,
    RecordReader,
    RecordWriter,
    pack_record,
    read_face_layout,
    unpack_record,
)
from .verification_bin import (
    FaceVerificationDataset,
    decode_face_image,
    dump_verification_bin,
    load_verification_bin,
)

__all__ = [
    'FaceLayout', 'MXFaceDataset', 'Record', 'RecordIOError', 'RecordReader', 'RecordWriter',
    'pack_record', 'read_face_layout', 'unpack_record', 'FaceVerificationDataset',
    'decode_face_image', 'load_verification_bin', 'dump_verification_bin'
]
