# MobileFaceNet at 112x112, insightface's mbf: a 7x7 last map for its global depthwise conv.
_base_ = './repmlp-faceres50_8xb64_ms1mv2-112px.py'

model = dict(
    backbone=dict(_delete_=True, type='MobileFaceNet', arch='mbf', img_size=112,
                  out_indices=(3, )),
    neck=dict(_delete_=True, type='GDCEmbeddingNeck', in_channels=512, in_size=7,
              embedding_dim=512))
