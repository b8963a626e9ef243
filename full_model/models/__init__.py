"""Networks = backbone + head, exposing features, head and classifier.

:class:`Network` follows the timm convention so geometry needs no hooks:

* ``forward_features(x)`` → h (B, d), the features the classifier acts on
  (for fixed heads: after the head's BatchNorm and normalisation);
* ``head`` → the classifier module; ``get_classifier()`` → W (K, d);
* ``forward(x)`` → logits z = W h (B, K); ``forward(x, with_features=True)``
  → (h, z), one pass for the loss and the metrics; after
  :meth:`Network.set_logit_offset` (post-hoc logit adjustment) z = W h + b
  with that fixed offset b.

Backbones (:data:`full_model.config.BACKBONES`): ``resnet32`` (16/32/64,
64-d), ``resnet32-wide`` (32/64/128, 128-d), ``resnet50`` (2048-d),
``resnet50-wide`` (4096-d), ``cnn1d``, ``mlp``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import BACKBONES
from .heads import FixedHead, LearnableHead, build_head
from .resnet50 import resnet50
from .resnet_cifar import resnet32
from .small import MLP, Conv1dNet

__all__ = ["Network", "build_backbone", "build_network", "build_head",
           "FixedHead", "LearnableHead"]


class Network(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.embed(self.backbone.forward_features(x))   # (B, d)

    def forward(self, x: torch.Tensor, with_features: bool = False):
        h = self.forward_features(x)
        with torch.autocast(device_type=h.device.type, enabled=False):
            z = self.head.logits(h.float())                          # (B, K)
            offset = self._buffers.get("logit_offset")
            if offset is not None:
                z = z + offset
        return (h, z) if with_features else z

    def set_logit_offset(self, offset) -> None:
        """Add a fixed offset (K,) to every row of logits from now on (post-hoc logit adjustment,
        z − τ log π); kept as the buffer ``logit_offset``, so it is saved and restored with the model."""
        value = torch.as_tensor(offset, dtype=torch.float32, device=self.get_classifier().device).clone()
        if "logit_offset" in self._buffers:
            self._buffers["logit_offset"] = value
        else:
            self.register_buffer("logit_offset", value)

    def get_classifier(self) -> torch.Tensor:
        return self.head.classifier()                                # (K, d)


def build_backbone(name: str, input_shape: tuple[int, ...], feature_dim: int = 64) -> nn.Module:
    """A backbone for inputs of shape (C, H, W), (C, L) or (L,)."""
    channels = input_shape[0] if len(input_shape) > 1 else 1
    if name in ("resnet32", "resnet32-wide"):
        return resnet32(channels, wide=name.endswith("wide"))
    if name in ("resnet50", "resnet50-wide"):
        return resnet50(channels, wide=name.endswith("wide"))
    if name == "cnn1d":
        return Conv1dNet(channels, feature_dim)
    if name == "mlp":
        return MLP(input_shape, feature_dim)
    raise ValueError(f"backbone {name!r} is listed in BACKBONES {BACKBONES} but has no builder here")


def build_network(backbone: str, head: str, num_classes: int, input_shape: tuple[int, ...], *,
                  feature_dim: int = 64, head_seed: int = 0, normalize: bool = True,
                  head_batchnorm: bool = True, head_bias: bool = False,
                  cosine_scale: float | None = None) -> Network:
    net = build_backbone(backbone, input_shape, feature_dim)
    return Network(net, build_head(head, net.feature_dim, num_classes, head_seed, normalize,
                                   head_batchnorm, head_bias, cosine_scale))
