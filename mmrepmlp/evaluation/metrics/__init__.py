from .dump import DumpPredictions

__all__ = ['DumpPredictions']
