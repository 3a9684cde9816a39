# RepMLP-FaceRes at 112x112 on WebFace42M (2,059,906 identities; 20% of each GPU's centres
# scored per batch, as insightface): the class centres split across 8 GPUs x 128 faces,
# insightface's 20-epoch schedule, AM-Softmax as the paper.
_base_ = [
    '../_base_/models/repmlp-faceres50-pfc_112px.py',
    '../_base_/datasets/webface42m_bs128_112px.py',
    '../_base_/schedules/face_sgd_poly_20e.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(head=dict(num_classes={{_base_.num_identities}},
                       sample_ratio={{_base_.sample_ratio}}))
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3, save_best='lfw/accuracy', rule='greater'))
