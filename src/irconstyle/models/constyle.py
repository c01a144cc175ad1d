"""ConStyle: the contrastive degradation encoder and the restoration model that wraps a body with it.

The encoder sees the degraded image and returns two 128-d latents (``latent_z`` from the first projection
head, ``latent_q`` from the second: the one that modulates the restoration bottleneck) and three feature maps
at 1/2, 1/4 and 1/8 resolution that the restoration U-Net concatenates into its encoder path. ConStyle v2's
prompter adds a classification head on the pooled trunk features (:class:`ConStyleV2Prompter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models.layers import exporting


class ConStyleOutput(NamedTuple):
    """What the ConStyle encoder hands the restoration body."""

    latent_z: torch.Tensor  # B×128, first projection head
    latent_q: torch.Tensor  # B×128, second projection head: modulates the bottleneck
    features: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # 32@H/2, 64@H/4, 128@H/8


def _conv_act(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.LeakyReLU(0.1, inplace=True),
    )


def _projection(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.GELU())


def _classification_head(classes: int) -> nn.Sequential:
    """ConStyle v2's head on the 256 pooled trunk features: 512 hidden units (ReLU, dropout 0.5), then logits."""
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(512, classes))


class ConStyleEncoder(nn.Module):
    """The ConStyle conv trunk (the published ``MyBaseEncoder``): four strided stages, global pooling and two heads.

    ``classes`` > 0 adds ConStyle v2's classification head on the pooled features (:meth:`classify`); the
    ordinary forward does not run it.
    """

    feature_channels = (32, 64, 128)

    def __init__(self, *, latent_dim: int = 128, classes: int = 0) -> None:
        super().__init__()
        if classes < 0:
            raise ValueError(f"classes must be 0 (no classification head) or positive, got {classes}")
        self.latent_dim = latent_dim
        self.stage1 = nn.Sequential(_conv_act(3, 16), _conv_act(16, 16), _conv_act(16, 32, stride=2))
        self.stage2 = nn.Sequential(_conv_act(32, 32), _conv_act(32, 64, stride=2))
        self.stage3 = nn.Sequential(_conv_act(64, 128), _conv_act(128, 128, stride=2))
        self.stage4 = nn.Sequential(_conv_act(128, 256), _conv_act(256, 256, stride=2))
        self.head_z = _projection(256, latent_dim)
        self.head_q = _projection(latent_dim, latent_dim)
        self.classifier = _classification_head(classes) if classes else None

    def forward(self, x: torch.Tensor) -> ConStyleOutput:
        return self._encode(x)[0]

    def classify(self, x: torch.Tensor) -> tuple[ConStyleOutput, torch.Tensor]:
        """The encoder's output and the classification head's logits (B × classes), from one pass."""
        if self.classifier is None:
            raise RuntimeError("this ConStyle encoder was built without a classification head (classes=0)")
        encoded, pooled = self._encode(x)
        return encoded, self.classifier(pooled)

    def _encode(self, x: torch.Tensor) -> tuple[ConStyleOutput, torch.Tensor]:
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        pooled = F.adaptive_avg_pool2d(self.stage4(f3), 1).flatten(1)
        # The heads always run in fp32, also under autocast: their BatchNorm divides by running standard
        # deviations that can be orders of magnitude smaller than the activations, so bf16 rounding there would
        # be amplified into the latents that modulate the restoration body. They are tiny, so fp32 costs little.
        with torch.autocast(device_type=pooled.device.type, enabled=False):
            z = self.head_z(pooled.float())
            q = self.head_q(z)
        return ConStyleOutput(z, q, (f1, f2, f3)), pooled


class ContrastOutput(NamedTuple):
    """What one training forward of :class:`ConStyle` returns: everything the ConStyle losses need."""

    encoded: ConStyleOutput  # the query encoder's output on the degraded image (with gradient)
    key: torch.Tensor  # B×D, momentum encoder's ``latent_q`` of the clean image (no gradient)
    negatives: tuple[torch.Tensor, torch.Tensor]  # (n0, n1), B×D each: queue slices used by the style loss
    logits: torch.Tensor  # B×(1+K): positive first, then the queue, divided by the temperature
    # With ConStyle v2's classification head: its logits for the degraded image (query encoder, with gradient)
    # and for the clean image (momentum encoder, no gradient), B×classes each; None without a head.
    query_classes: torch.Tensor | None = None
    key_classes: torch.Tensor | None = None


def _gather_from_all_ranks(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` over all distributed ranks (identity when not distributed), as MoCo does."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class ConStyle(nn.Module):
    """MoCo-style ConStyle: query encoder, and, when ``contrastive``, a momentum key encoder and a queue.

    Published behaviour by default: latents are not L2-normalised, the queue starts as ``randn`` and
    the *queries* are enqueued. ``normalize_latents=True`` gives standard MoCo (normalised latents and queue);
    ``enqueue="key"`` enqueues the clean-image keys instead. The queue size need not be a multiple of the batch.
    Built without ``contrastive`` it is the query encoder alone, as used at inference. ``classes`` gives both
    encoders ConStyle v2's classification head.
    """

    def __init__(
        self,
        *,
        latent_dim: int = 128,
        classes: int = 0,
        contrastive: bool = False,
        queue_size: int = 65760,
        momentum: float = 0.999,
        temperature: float = 0.07,
        normalize_latents: bool = False,
        enqueue: str = "query",
    ) -> None:
        super().__init__()
        if enqueue not in ("query", "key"):
            raise ValueError(f"enqueue must be 'query' or 'key', got {enqueue!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        self.contrastive = contrastive
        self.queue_size = queue_size
        self.momentum = momentum
        self.temperature = temperature
        self.normalize_latents = normalize_latents
        self.enqueue = enqueue
        self.encoder = ConStyleEncoder(latent_dim=latent_dim, classes=classes)
        if contrastive:
            self.key_encoder = ConStyleEncoder(latent_dim=latent_dim, classes=classes)
            self.key_encoder.load_state_dict(self.encoder.state_dict())
            self.key_encoder.requires_grad_(False)
            queue = torch.randn(latent_dim, queue_size)
            if normalize_latents:
                queue = F.normalize(queue, dim=0)
            self.register_buffer("queue", queue)
            self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> ConStyleOutput:
        return self.encoder(x)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ_k ← m·θ_k + (1−m)·θ_q over parameters only (buffers are not averaged, as published)."""
        key_params = list(self.key_encoder.parameters())
        query_params = list(self.encoder.parameters())
        torch._foreach_mul_(key_params, self.momentum)
        torch._foreach_add_(key_params, query_params, alpha=1.0 - self.momentum)

    def _queue_columns(self, start: int, count: int) -> torch.Tensor:
        return (torch.arange(start, start + count, device=self.queue.device) % self.queue_size)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, batch: int, entries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``entries`` (N×D) at the pointer; return the style negatives read before the write.

        ``n1`` are the ``batch`` columns at the pointer (about to be evicted), ``n0`` the ``batch`` columns after
        them (the next to be evicted), both B×D.
        """
        ptr = int(self.queue_ptr)
        n1 = self.queue[:, self._queue_columns(ptr, batch)].t().clone()
        n0 = self.queue[:, self._queue_columns(ptr + entries.shape[0], batch)].t().clone()
        self.queue[:, self._queue_columns(ptr, entries.shape[0])] = entries.t().to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + entries.shape[0]) % self.queue_size
        return n0, n1

    def contrast(self, degraded: torch.Tensor, clean: torch.Tensor) -> ContrastOutput:
        """One training forward: the degraded image is the query, the clean image the positive key."""
        if not self.contrastive:
            raise RuntimeError("ConStyle was built without contrastive=True: it has no key encoder or queue")
        if self.training and degraded.shape[0] < 2:
            raise ValueError(
                "ConStyle training needs a batch of at least 2 (its projection heads use BatchNorm1d batch statistics)"
            )
        classifies = self.encoder.classifier is not None
        encoded, query_classes = self.encoder.classify(degraded) if classifies else (self.encoder(degraded), None)
        with torch.no_grad():
            self.momentum_update()
            keyed, key_classes = self.key_encoder.classify(clean) if classifies else (self.key_encoder(clean), None)
        key = keyed.latent_q
        query = encoded.latent_q
        if self.normalize_latents:
            query = F.normalize(query, dim=1)
            key = F.normalize(key, dim=1)
        positive = (query * key).sum(dim=1, keepdim=True)
        negative = query @ self.queue.detach().clone()
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        entries = (query if self.enqueue == "query" else key).detach()
        negatives = self._dequeue_and_enqueue(query.shape[0], _gather_from_all_ranks(entries))
        return ContrastOutput(encoded, key, negatives, logits, query_classes, key_classes)


class ConStyleV2Prompter(nn.Module):
    """ConStyle v2's stage-1 prompter: the ConStyle encoder with a classification head over degradation classes.

    ``model(x)`` gives the head's logits (B × ``classes``); :meth:`encode` gives the latents and feature maps
    exactly as :class:`ConStyleEncoder` does, which is what a restoration model uses once the prompter is
    loaded into its ConStyle (:func:`irconstyle.models.checkpoint.load_constyle`). ``contrastive`` adds the
    momentum encoder and queue of stage-1 training (``train.objective: prompter``); the other keywords go to
    :class:`ConStyle`.
    """

    size_multiple = 1  # the encoder pools: any input size

    def __init__(
        self,
        *,
        latent_dim: int = 128,
        classes: int = 1000,
        contrastive: bool = False,
        queue_size: int = 65760,
        momentum: float = 0.999,
        temperature: float = 0.07,
        normalize_latents: bool = False,
        enqueue: str = "query",
    ) -> None:
        super().__init__()
        if classes < 1:
            raise ValueError(f"classes must be positive, got {classes}")
        self.constyle = ConStyle(
            latent_dim=latent_dim, classes=classes, contrastive=contrastive, queue_size=queue_size,
            momentum=momentum, temperature=temperature, normalize_latents=normalize_latents, enqueue=enqueue,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.constyle.encoder.classify(x)[1]

    def encode(self, x: torch.Tensor) -> ConStyleOutput:
        return self.constyle.encoder(x)

    def classify(self, x: torch.Tensor) -> tuple[ConStyleOutput, torch.Tensor]:
        return self.constyle.encoder.classify(x)


class ConStyleRestorer(nn.Module):
    """A restoration body driven by ConStyle: ``model(x)`` encodes ``x`` and restores it.

    ``body(x, latent_q, features)`` is any U-Net that takes ConStyle's latent and three maps. Inputs of any size
    are reflect-padded to the body's ``size_multiple`` (8, the maps' 1/8 scale, for a body that declares none) and
    the output cropped back.
    ``contrastive`` adds the momentum encoder and queue needed for training; ``constyle_options`` are further
    :class:`ConStyle` keywords (``queue_size``, ``momentum``, ``temperature``, ``normalize_latents``, ``enqueue``).
    """

    def __init__(
        self, body: nn.Module, *, contrastive: bool = False, constyle_options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.constyle = ConStyle(contrastive=contrastive, **dict(constyle_options or {}))
        self.body = body
        self.size_multiple: int = int(getattr(body, "size_multiple", 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, (height, width) = pad_to_multiple(x, self.size_multiple)
        encoded = self.constyle(padded)
        return self.body(padded, encoded.latent_q, encoded.features)[..., :height, :width]

    def forward_train(self, degraded: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, ContrastOutput]:
        """Training forward on patches whose size is already a multiple of ``size_multiple``."""
        contrast = self.constyle.contrast(degraded, clean)
        restored = self.body(degraded, contrast.encoded.latent_q, contrast.encoded.features)
        return restored, contrast


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad a B×C×H×W tensor at the bottom/right to multiples of ``multiple``; return it and the original size.

    Reflection where the image is large enough, edge replication otherwise. Under ``torch.export`` and TorchScript
    tracing the padding is always traced (a zero-width pad where the size is already a multiple), so the exported
    graph serves every size; there images need sides of at least ``multiple``, which makes the choice of
    reflection static.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = round_up(height, multiple) - height, round_up(width, multiple) - width
    if not exporting() and pad_h == 0 and pad_w == 0:
        return x, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (height, width)


def round_up(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``, without negative operands: torch.export proves the
    result a multiple, and ONNX's integer division (which truncates) computes it like Python's."""
    return (size + multiple - 1) // multiple * multiple
