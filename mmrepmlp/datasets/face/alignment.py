"""Face alignment to the 112x112 ArcFace template: the least-squares similarity transform
(rotation, uniform scale, translation) of five landmarks onto the template, and the warp.

This is how insightface aligns the loose crops of IJB-B/IJB-C (and how its training sets were
made): eye centres, nose tip and mouth corners, estimated as scikit-image's
``SimilarityTransform.estimate`` does (Umeyama, 1991), warped with ``cv2.warpAffine`` and a
black border.
"""
import cv2
import numpy as np

# (x, y) of the left eye, right eye, nose tip, left and right mouth corner in a 112x112 face:
# the 96x112 template of SphereFace shifted 8 pixels right.
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float32)
ALIGNED_SIZE = 112


def five_landmarks(landmarks):
    """``(5, 2)`` landmarks from 5 or 68 (x, y) points; of 68 (the iBUG layout), the eye
    centres (36+39)/2 and (42+45)/2, the nose tip 30 and the mouth corners 48 and 54."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape == (5, 2):
        return landmarks
    if landmarks.shape != (68, 2):
        raise ValueError(f'landmarks must be 5 or 68 (x, y) points, got shape {landmarks.shape}')
    return np.stack([(landmarks[36] + landmarks[39]) / 2, (landmarks[42] + landmarks[45]) / 2,
                     landmarks[30], landmarks[48], landmarks[54]])


def similarity_transform(source, target):
    """The ``2 x 3`` matrix of the similarity that maps ``source`` points closest to ``target``
    points in the least-squares sense (never a reflection).

    Args:
        source (np.ndarray): ``(K, 2)`` points.
        target (np.ndarray): ``(K, 2)`` points.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    covariance = centred_target.T @ centred_source / len(source)
    u, singular_values, vt = np.linalg.svd(covariance)
    # the last axis flipped when U V^T would be a reflection
    signs = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(signs) @ vt
    variance = (centred_source**2).sum() / len(source)
    scale = (singular_values * signs).sum() / variance if variance > 0 else 0.0
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(image, landmarks, size=ALIGNED_SIZE):
    """The ``size x size`` face of ``image`` with its landmarks moved onto
    :data:`ARCFACE_TEMPLATE` (scaled to ``size``), outside pixels black.

    Args:
        image (np.ndarray): ``(H, W, C)`` image (any channel order; it is kept).
        landmarks (np.ndarray): 5 or 68 ``(x, y)`` points of the face in ``image``.
        size (int): side of the aligned face. Defaults to 112.
    """
    template = ARCFACE_TEMPLATE * (size / ALIGNED_SIZE)
    matrix = similarity_transform(five_landmarks(landmarks), template)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0)
