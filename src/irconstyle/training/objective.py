"""The training objectives as modules: the model's training forward plus every loss of the recipe.

Putting the losses inside ``forward`` gives DistributedDataParallel a plain ``forward(degraded, clean)`` to
wrap, so gradients are all-reduced for ConStyle models too (their training forward is not ``model(x)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models import losses
from irconstyle.models.constyle import ConStyleRestorer, ConStyleV2Prompter, ContrastOutput
from irconstyle.models.detector import DegradationClassifier
from irconstyle.training.schema import LossSection

PIXEL_LOSSES = {"l1": losses.l1_loss, "charbonnier": losses.charbonnier_loss, "psnr": losses.psnr_loss}


class TrainingObjective(nn.Module):
    """``forward(degraded, clean) -> (total loss, {name: unweighted loss})`` for ConStyle or Origin models.

    ConStyle models add InfoNCE, content and style losses while ``use_constyle_losses`` is set (until
    ``constyle_iters``). Once the encoder is frozen with ``encoder_in_eval`` set, the training forward no
    longer runs the momentum encoder or the queue: the frozen encoder (in eval mode) encodes the degraded
    image without gradients and the body restores it, exactly as at inference.
    """

    def __init__(self, model: nn.Module, weights: LossSection) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.is_constyle = isinstance(model, ConStyleRestorer)
        self.use_constyle_losses = self.is_constyle
        self.encoder_in_eval = False

    def forward(self, degraded: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        weights = self.weights
        parts: dict[str, torch.Tensor] = {}
        if not self.is_constyle:
            restored = self.model(degraded)
        elif self.encoder_in_eval:
            with torch.no_grad():
                encoded = self.model.constyle(degraded)
            restored = self.model.body(degraded, encoded.latent_q, encoded.features)
        else:
            restored, contrast = self.model.forward_train(degraded, clean)
            if self.use_constyle_losses:
                parts = constyle_losses(contrast, weights)
        parts = {"pixel": PIXEL_LOSSES[weights.pixel](restored, clean), **parts}
        total = sum(getattr(weights, f"{name}_weight") * value for name, value in parts.items())
        return total, parts


def constyle_losses(contrast: ContrastOutput, weights: LossSection) -> dict[str, torch.Tensor]:
    """The three ConStyle losses of one contrastive forward (spec 2.4), those of non-zero weight, unweighted."""
    encoded = contrast.encoded
    parts: dict[str, torch.Tensor] = {}
    if weights.infonce_weight:
        parts["infonce"] = losses.infonce_loss(contrast.logits)
    if weights.content_weight:
        parts["content"] = losses.content_loss(encoded.latent_q, contrast.key)
    if weights.style_weight:
        parts["style"] = losses.style_loss(
            encoded.latent_z, encoded.latent_q, contrast.negatives, margin=weights.style_margin
        )
    return parts


class PrompterObjective(nn.Module):
    """``forward(degraded, clean, labels) -> (total loss, parts)``: ConStyle v2's stage 1 for a contrastive
    :class:`ConStyleV2Prompter`, trained alone.

    The ConStyle losses of the degraded query against the clean key, plus, while ``iteration <= class_iters``,
    the cross-entropy (``class``) of the query's class logits against ``labels`` and, while
    ``iteration <= kl_iters``, the distillation ``kl`` of the momentum encoder's logits on the clean image into
    the query's (None: throughout). The trainer sets ``iteration`` (1-based) before each step. The parts also
    report the batch accuracy of the query's logits (not part of the loss).
    """

    def __init__(
        self, model: ConStyleV2Prompter, weights: LossSection, *, class_iters: int | None, kl_iters: int | None
    ) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.class_iters = class_iters
        self.kl_iters = kl_iters
        self.iteration = 1

    def _active(self, limit: int | None) -> bool:
        return limit is None or self.iteration <= limit

    def forward(
        self, degraded: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        weights = self.weights
        contrast = self.model.constyle.contrast(degraded, clean)
        parts = constyle_losses(contrast, weights)
        if weights.class_weight and self._active(self.class_iters):
            parts["class"] = F.cross_entropy(contrast.query_classes, labels, label_smoothing=weights.label_smoothing)
        if weights.kl_weight and self._active(self.kl_iters):
            parts["kl"] = losses.distillation_loss(contrast.query_classes, contrast.key_classes)
        total = sum(getattr(weights, f"{name}_weight") * value for name, value in parts.items())
        parts["accuracy"] = (contrast.query_classes.argmax(dim=1) == labels).float().mean().detach()
        return total, parts


class DetectionObjective(nn.Module):
    """``forward(views, labels, levels) -> (total loss, parts)`` for a :class:`DegradationClassifier`.

    Cross-entropy over the classes, plus ``level_weight`` × the L1 error of the predicted noise σ (divided by the
    model's ``level_scale``) over the views whose ``levels`` are finite (native-resolution noise views). The
    parts also report the batch accuracy (not part of the loss).
    """

    def __init__(self, model: DegradationClassifier, weights: LossSection) -> None:
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(
        self, views: torch.Tensor, labels: torch.Tensor, levels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, sigma = self.model.predict(views)
        parts = {"class": F.cross_entropy(logits, labels, label_smoothing=self.weights.label_smoothing)}
        measured = torch.isfinite(levels)
        if measured.any():
            error = (sigma[measured] - levels[measured]).abs() / self.model.level_scale
            parts["level"] = error.mean()
        else:
            parts["level"] = sigma.sum() * 0.0  # keeps the head in the graph and the logged parts the same
        total = parts["class"] + self.weights.level_weight * parts["level"]
        parts["accuracy"] = (logits.argmax(dim=1) == labels).float().mean().detach()
        return total, parts
