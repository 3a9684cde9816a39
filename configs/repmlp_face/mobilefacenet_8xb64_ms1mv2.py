# MobileFaceNet (Chen et al., 2018), the paper's light baseline, at 96x96 (a 6x6 last map for
# its global depthwise conv), 512-d embedding.
_base_ = './repmlp-faceres50_8xb64_ms1mv2.py'

model = dict(
    backbone=dict(_delete_=True, type='MobileFaceNet', arch='mbf', img_size=96,
                  out_indices=(3, )),
    neck=dict(_delete_=True, type='GDCEmbeddingNeck', in_channels=512, in_size=6,
              embedding_dim=512))
