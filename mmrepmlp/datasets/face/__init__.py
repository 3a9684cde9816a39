"""Face recognition: MXNet RecordIO without mxnet, the training sets stored in it, random faces
for throughput runs, the verification pairs of insightface's ``.bin`` sets, and the IJB-B/C
templates with the 5-point alignment they are embedded through."""
from .alignment import ARCFACE_TEMPLATE, align_face, five_landmarks, similarity_transform
from .ijb import IJB_TARGETS, IJBMeta, ijb_files, read_ijb_meta
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
from .synthetic import SyntheticFaceDataset
from .verification_bin import (
    FaceVerificationDataset,
    decode_face_image,
    dump_verification_bin,
    load_verification_bin,
)

__all__ = [
    'FaceLayout', 'MXFaceDataset', 'Record', 'RecordIOError', 'RecordReader', 'RecordWriter',
    'pack_record', 'read_face_layout', 'unpack_record', 'FaceVerificationDataset',
    'decode_face_image', 'load_verification_bin', 'dump_verification_bin', 'SyntheticFaceDataset',
    'ARCFACE_TEMPLATE', 'align_face', 'five_landmarks', 'similarity_transform', 'IJB_TARGETS',
    'IJBMeta', 'ijb_files', 'read_ijb_meta'
]
