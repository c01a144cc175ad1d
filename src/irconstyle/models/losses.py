"""Losses: pixel losses for the restored image, the three ConStyle losses (InfoNCE, content, style) and
ConStyle v2's distillation, as plain functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1_loss(restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(restored, target)


def charbonnier_loss(restored: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((restored - target).square() + eps * eps).mean()


def psnr_loss(restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative PSNR per image (images in [0, 1]), averaged: minimising it maximises PSNR."""
    mse = (restored - target).square().flatten(1).mean(dim=1)
    return (10.0 * torch.log10(mse + 1e-8)).mean()


def infonce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the positive at index 0 of every row."""
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


def content_loss(latent_q: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """MSE between the degraded image's latent and the clean image's momentum key."""
    return F.mse_loss(latent_q, key)


def batch_gram(x: torch.Tensor, normalizer: float) -> torch.Tensor:
    """Batch-similarity matrix X·Xᵀ / n (B×B) of B×D latents, the "Gram" matrix of the ConStyle style loss."""
    return x @ x.t() / normalizer


def style_loss(
    latent_z: torch.Tensor,
    latent_q: torch.Tensor,
    negatives: tuple[torch.Tensor, torch.Tensor],
    *,
    margin: float | None = None,
) -> torch.Tensor:
    """Reverse style transfer: push the queries' batch-Gram matrices away from the negatives'.

    Published form (``margin=None``): ``−MSE(G(z), G(n0)) − MSE(G(q), G(n1))`` with ``n = B·D`` for all four
    matrices; it is unbounded below. With a ``margin`` each distance is hinged, ``relu(margin − MSE)``, so the
    loss stops pushing once the matrices are that far apart.
    """
    n0, n1 = negatives
    normalizer = float(latent_z.shape[0] * latent_z.shape[1])
    d0 = F.mse_loss(batch_gram(latent_z, normalizer), batch_gram(n0, normalizer))
    d1 = F.mse_loss(batch_gram(latent_q, normalizer), batch_gram(n1, normalizer))
    if margin is None:
        return -d0 - d1
    return F.relu(margin - d0) + F.relu(margin - d1)


def distillation_loss(query_logits: torch.Tensor, key_logits: torch.Tensor) -> torch.Tensor:
    """ConStyle v2's KL(softmax(key) ‖ softmax(query)), summed over classes and averaged over the batch.

    The clean image's class prediction (the momentum encoder's, a fixed target without gradient) teaches the
    degraded image's: Σ_c p_key · (log p_key − log p_query).
    """
    return F.kl_div(
        F.log_softmax(query_logits, dim=1), F.log_softmax(key_logits.detach(), dim=1), reduction="batchmean",
        log_target=True,
    )
