from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch.nn.modules.batchnorm import _BatchNorm

from ...reparam import reparameterize_children


class FreezableBackbone(BaseBackbone):
    """``frozen_stages``, ``norm_eval`` and ``switch_to_deploy`` for this package's backbones.

    A subclass sets ``self.norm_eval`` and implements :meth:`frozen_modules`; ``train()`` then
    keeps those modules in eval mode with ``requires_grad=False``, and every BN in eval mode
    when ``norm_eval`` is set.
    """

    def frozen_modules(self):
        """The modules ``frozen_stages`` freezes (stem and leading stages)."""
        raise NotImplementedError

    def _freeze_stages(self):
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def switch_to_deploy(self):
        """Convert every re-parameterizable child to its deploy form (idempotent).

        Frozen parameters stay frozen: the fused ones inherit ``requires_grad=False``.
        """
        reparameterize_children(self)
        self.deploy = True
        self._freeze_stages()
