"""The degradation classifier: ConStyle's encoder with a class head and a noise-level head.

The encoder is :class:`~irconstyle.models.constyle.ConStyleEncoder` unchanged; pre-trained alone on views of
mixed degradations (the way ConStyle v2 pre-trains its prompter), its latent separates degradations, and two
linear heads read the class and, for noise, σ off it. See :mod:`irconstyle.detect` for how photos become views
and views a decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.data.degradations import DETECTION_CLASSES
from irconstyle.models.constyle import ConStyleEncoder


class DetectorOutput(NamedTuple):
    logits: torch.Tensor  # B×classes
    sigma: torch.Tensor  # B, the noise σ on the 0–255 scale (meaningful for noisy views)


class DegradationClassifier(nn.Module):
    """``forward(views) -> logits``; :meth:`predict` adds the σ estimate.

    ``level_scale``: σ is predicted as ``level_scale · softplus(head)``, so the head works near unit scale.
    """

    size_multiple = 1  # it reads views of any size (the encoder pools them)

    def __init__(
        self, *, classes: Sequence[str] = DETECTION_CLASSES, latent_dim: int = 128, level_scale: float = 25.0
    ) -> None:
        super().__init__()
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be two or more distinct names, got {list(classes)}")
        self.classes = tuple(classes)
        self.level_scale = level_scale
        self.encoder = ConStyleEncoder(latent_dim=latent_dim)
        self.class_head = nn.Linear(latent_dim, len(self.classes))
        self.level_head = nn.Linear(latent_dim, 1)

    def predict(self, views: torch.Tensor) -> DetectorOutput:
        latent = self.encoder(views).latent_z
        sigma = self.level_scale * F.softplus(self.level_head(latent)[:, 0])
        return DetectorOutput(self.class_head(latent), sigma)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.predict(views).logits
