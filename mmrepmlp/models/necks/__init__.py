from .face_embedding import FaceEmbeddingNeck, GDCEmbeddingNeck, LinearBN

__all__ = ['FaceEmbeddingNeck', 'GDCEmbeddingNeck', 'LinearBN']
