from .margin_head import MarginSoftmaxHead

__all__ = ['MarginSoftmaxHead']
