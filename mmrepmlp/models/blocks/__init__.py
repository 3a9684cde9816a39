from .repmlp_block import RepMLP1d, RepMLPBlock

__all__ = ['RepMLPBlock', 'RepMLP1d']
