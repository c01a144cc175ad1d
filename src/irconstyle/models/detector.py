"""The degradation classifier: ConStyle's encoder with a class head and a noise-level head.

The encoder is :class:`~irconstyle.models.constyle.ConStyleEncoder` unchanged; pre-trained alone on views of
mixed degradations (the way ConStyle v2 pre-trains its prompter), its latent separates degradations, and two
linear heads read the class and, for noise, σ off it. See :mod:`irconstyle.detect` for how photos become views
and views a decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    ``class_bias``: log-prior offsets per class name (missing names 0), which :func:`irconstyle.detect` adds to the
    log of the views' averaged probabilities before it decides: a calibration fitted after training on labelled
    photos (``scripts/calibrate_detect.py``), so that a class the network under-calls, such as ``none``, gets
    its share. It leaves :meth:`predict` and the weights unchanged.
    """

    size_multiple = 1  # it reads views of any size (the encoder pools them)

    def __init__(
        self,
        *,
        classes: Sequence[str] = DETECTION_CLASSES,
        latent_dim: int = 128,
        level_scale: float = 25.0,
        class_bias: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be two or more distinct names, got {list(classes)}")
        unknown = sorted(set(class_bias or {}) - set(classes))
        if unknown:
            raise ValueError(f"class_bias names classes the classifier does not have: {', '.join(unknown)}")
        self.classes = tuple(classes)
        self.register_buffer(
            "class_bias", torch.tensor([float((class_bias or {}).get(name, 0.0)) for name in self.classes]),
            persistent=False,
        )
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
