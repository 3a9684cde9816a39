# RepMLP-FaceRes (paper Sec. 4.3) for 112x112 faces, insightface's input size. The stage maps
# are 28, 14, 7 and 4 (96x96: 24, 12, 6, 3), so the RepMLP Bottlenecks of c2, c3 and c4 use
# partitions h = w = 7: 4x4, 2x2 and 1 partition per map, the counts of the paper's h = w = 6
# at 96x96 (each partition covers the same part of the face; c4 is one partition, without
# Global Perceptron). r = 2, g = 4, K = 1, 3, 5 as the paper. 512-d embedding, AM-Softmax.
custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

model = dict(
    type='FaceRecognizer',
    backbone=dict(
        type='RepMLPResNet',
        img_size=112,
        out_indices=(3, ),
        arch=dict(num_blocks=(3, 2, 2, 2), widths=(128, 256, 512, 1024), stem_channels=64,
                  expansion=1, block_type=('bottleneck', 'bottleneck', 'bottleneck', 'base'),
                  r=2, groups=4, partition=7, local_kernels=(1, 3, 5))),
    # the last map: 1024 x 4 x 4 at 112x112
    neck=dict(type='FaceEmbeddingNeck', in_channels=1024, in_size=4, embedding_dim=512),
    # num_classes: each config sets its training set's identities
    head=dict(type='MarginSoftmaxHead', num_classes=85742, in_channels=512, scale=30.0,
              margins=(1.0, 0.0, 0.35)),
    flip_test=True)
