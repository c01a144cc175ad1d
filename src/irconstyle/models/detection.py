"""Which architecture a state dict is, and with which hyper-parameters: read from its keys and shapes.

Works on our layout and on the authors' (their keys are renamed by :mod:`irconstyle.models.official` first).
Block counts, widths, attention heads and token-mixing sizes come from the shapes; switches that change which
tensors exist (biases, LayerNorm kind, the momentum encoder) are told apart by trying each and keeping the
configuration whose tensors match the file's exactly. Hyper-parameters that own no weights (activation slopes,
dropout) cannot be read and keep their defaults.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from irconstyle.models import official, registry
from irconstyle.models.registry import BuildConfig

Shapes = Mapping[str, tuple[int, ...]]

# Wrappers that training frameworks put around a state dict, by preference (BasicSR's EMA weights first).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net_g", "network")
# Prefixes that wrappers put on every key: DataParallel / DistributedDataParallel, torch.compile.
KEY_PREFIXES = ("module.", "_orig_mod.")


class DetectionError(ValueError):
    """The state dict is none of the architectures this package knows, or its hyper-parameters cannot be read."""


def unwrap_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: out of any wrapper dict (``params_ema``, ``params``, ``state_dict``,
    ``model`` …, nested too) and without ``module.`` / ``_orig_mod.`` prefixes; raises ValueError otherwise."""
    for _ in range(4):  # wrappers nest a few levels at most ({"model": {"state_dict": …}})
        if not isinstance(checkpoint, Mapping):
            break
        inner = next((checkpoint[key] for key in WRAPPER_KEYS if isinstance(checkpoint.get(key), Mapping)), None)
        if inner is None:
            break
        checkpoint = inner
    if not isinstance(checkpoint, Mapping) or not checkpoint or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise ValueError(f"expected a state dict (optionally under {', '.join(repr(k) for k in WRAPPER_KEYS[:3])} …)")
    state = dict(checkpoint)
    for prefix in KEY_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


@dataclass(frozen=True)
class _Family:
    """How to recognise one architecture in our layout and read its hyper-parameters."""

    architecture: str
    marker: str  # a key only this architecture has (in our layout)
    read: Callable[[Shapes], dict[str, Any]]
    switches: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # tried in order, defaults first
    guessed: tuple[str, ...] = ()  # options the weights do not fix, filled in by the reader's rule


def _count(shapes: Shapes, prefix: str) -> int:
    """How many numbered children ``prefix`` has (``encoders.`` -> 1 + the largest N of ``encoders.N.…``)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = [int(match.group(1)) for key in shapes if (match := pattern.match(key))]
    return max(indices) + 1 if indices else 0


def _square(shapes: Shapes, key: str) -> list[int]:
    """The (rows, cols) of a square MAXIM partition from its M×M token-mixing weight."""
    positions = shapes[key][0]
    side = math.isqrt(positions)
    if side * side != positions:
        raise DetectionError(f"{key}: {positions} positions is not a square partition")
    return [side, side]


def _maxim_sizes(shapes: Shapes, prefix: str) -> dict[str, Any]:
    """The partition sizes, how many levels use the high-resolution ones, the expansion factors and the channel
    reduction of a MAXIM U-Net under ``prefix``."""
    channels = shapes[f"{prefix}encoders.0.input_proj.weight"][0]
    gating = f"{prefix}encoders.0.multi_axis.0"
    hidden = shapes[f"{gating}.expand.weight"][0]
    levels = [
        (_square(shapes, f"{prefix}encoders.{level}.multi_axis.0.block.token_mix.weight"),
         _square(shapes, f"{prefix}encoders.{level}.multi_axis.0.grid.token_mix.weight"))
        for level in range(_count(shapes, f"{prefix}encoders."))
    ]
    block_low = _square(shapes, f"{prefix}bottleneck.0.multi_axis.0.block.token_mix.weight")
    grid_low = _square(shapes, f"{prefix}bottleneck.0.multi_axis.0.grid.token_mix.weight")
    high_res_levels = next((level for level, sizes in enumerate(levels) if sizes == (block_low, block_low)),
                           len(levels))
    if any(sizes != levels[0] for sizes in levels[:high_res_levels]) or any(
        sizes != (block_low, block_low) for sizes in levels[high_res_levels:]
    ):
        raise DetectionError(f"MAXIM partitions {levels} do not follow the published high/low resolution pattern")
    block_high, grid_high = levels[0] if high_res_levels else (block_low, block_low)
    squeeze = shapes[f"{prefix}encoders.0.channel_attention.0.attention.squeeze.weight"][0]
    return {
        "high_res_levels": high_res_levels,
        "block_size_high_res": block_high,
        "grid_size_high_res": grid_high,
        "block_size_low_res": block_low,
        "grid_size_low_res": grid_low,
        "input_projection_factor": hidden // channels,
        "block_mlp_factor": shapes[f"{gating}.block.expand.weight"][0] // (hidden // 2),
        "grid_mlp_factor": shapes[f"{gating}.grid.expand.weight"][0] // (hidden // 2),
        "channel_reduction": channels // squeeze,
    }


def _levels(shapes: Shapes, prefix: str, levels: int) -> list[int]:
    return [_count(shapes, f"{prefix}{level}.") for level in range(1, levels + 1)]


# The stages of a Restormer-block U-Net that share each entry of ``heads``.
_HEAD_STAGES = (("encoder1", "decoder1", "refinement"), ("encoder2", "decoder2"), ("encoder3", "decoder3"),
                ("bottleneck",))


def _heads(shapes: Shapes, prefix: str, architecture: str) -> list[int]:
    """Each level's heads, from the first of its stages that has a block (the default where none has one: the
    heads then own no weights)."""
    defaults = inspect.signature(registry.MODELS[architecture].factory).parameters["heads"].default
    return [
        next((shapes[key][0] for stage in stages if (key := f"{prefix}{stage}.0.attention.temperature") in shapes),
             default)
        for stages, default in zip(_HEAD_STAGES, defaults, strict=True)
    ]


def _ffn_expansions(shapes: Shapes) -> tuple[float, ...]:
    """Candidate feed-forward expansions ``e``, each giving ``int(channels · e)`` hidden channels in every block
    (2.66, the default, first)."""
    widths = {(shape[1], shape[0] // 2) for key, shape in shapes.items()
              if key.endswith(".feedforward.project_in.weight")}
    if not widths:
        return (2.66,)
    low = max(hidden / channels for channels, hidden in widths)
    high = min((hidden + 1) / channels for channels, hidden in widths)
    return (2.66, low, (low + high) / 2)


def _constyle_nafnet(shapes: Shapes) -> dict[str, Any]:
    return {
        "width": shapes["body.stem.weight"][0],
        "encoder_blocks": _levels(shapes, "body.encoder", 3),  # a ConStyle U-Net has three levels
        "bottleneck_blocks": _count(shapes, "body.bottleneck."),
        "decoder_blocks": _levels(shapes, "body.decoder", 3),
    }


def _constyle_restormer(shapes: Shapes) -> dict[str, Any]:
    return {
        **_constyle_nafnet(shapes),
        "refinement_blocks": _count(shapes, "body.refinement."),
        "heads": _heads(shapes, "body.", "constyle_restormer"),
    }


def _constyle_maxim(shapes: Shapes) -> dict[str, Any]:
    return {
        "features": shapes["body.input_convs.0.weight"][0],
        "bottleneck_blocks": _count(shapes, "body.bottleneck."),
        "out_channels": shapes["body.output.weight"][0],
        **_maxim_sizes(shapes, "body."),
    }


def _nafnet(shapes: Shapes) -> dict[str, Any]:
    levels = _count(shapes, "downsamples.")  # one per level, whether or not the level has blocks
    return {
        "image_channels": shapes["stem.weight"][1],
        "width": shapes["stem.weight"][0],
        "encoder_blocks": [_count(shapes, f"encoders.{level}.") for level in range(levels)],
        "bottleneck_blocks": _count(shapes, "bottleneck."),
        "decoder_blocks": [_count(shapes, f"decoders.{level}.") for level in range(levels)],
    }


def _kbnet(shapes: Shapes) -> dict[str, Any]:
    return {**_nafnet(shapes), "ffn_expansion": shapes["encoders.0.0.ffn_expand.weight"][0] // shapes["stem.weight"][0]}


def _constyle_kbnet(shapes: Shapes) -> dict[str, Any]:
    return {
        **_constyle_nafnet(shapes),
        "ffn_expansion": shapes["body.encoder1.0.ffn_expand.weight"][0] // shapes["body.stem.weight"][0],
    }


def _restormer(shapes: Shapes) -> dict[str, Any]:
    return {
        "in_channels": shapes["stem.weight"][1],
        "out_channels": shapes["output.weight"][0],
        "width": shapes["stem.weight"][0],
        "level_blocks": [*_levels(shapes, "encoder", 3), _count(shapes, "bottleneck.")],
        "refinement_blocks": _count(shapes, "refinement."),
        "heads": _heads(shapes, "", "restormer"),
    }


def _maxim(shapes: Shapes) -> dict[str, Any]:
    return {
        "features": shapes["input_convs.0.weight"][0],
        "depth": _count(shapes, "encoders."),
        "input_scales": _count(shapes, "input_convs."),
        "out_channels": shapes["output.weight"][0],
        **_maxim_sizes(shapes, ""),
    }


def _maxim_multistage(shapes: Shapes) -> dict[str, Any]:
    return {
        "stages": _count(shapes, "stages."),
        "features": shapes["stages.0.input_convs.0.weight"][0],
        "bottleneck_blocks": _count(shapes, "stages.0.bottleneck."),
        **_maxim_sizes(shapes, "stages.0."),
    }


# What LeWin blocks' tensors do not tell apart by shape alone: tried, and kept where the tensors match exactly.
_LEWIN_SWITCHES = {"qkv_bias": (True, False), "token_projection": ("linear", "conv"),
                   "token_mlp": ("leff", "fastleff", "mlp")}
# The ConStyle models first: their bodies hold keys that look like the plain models'. KBNet's U-Nets are NAFNet's
# with other blocks: each family is marked by a key of its own block (KBBlock's kernel-basis attention, NAFBlock's
# expansion conv).
def _degradation_classifier(shapes: Shapes) -> dict[str, Any]:
    """Its class names are not in the tensors, only their number: a file with the default number gets the
    default names; one with another number cannot be read (our own files record the names)."""
    count, latent_dim = shapes["class_head.weight"]
    names = inspect.signature(registry.MODELS["degradation_classifier"].factory).parameters["classes"].default
    if count != len(names):
        raise DetectionError(f"a degradation classifier of {count} classes: their names are not in its tensors")
    return {"classes": list(names), "latent_dim": latent_dim}


_UFORMER_STAGES = (
    *((f"encoders.{level}.", level) for level in range(4)), ("bottleneck.", 4),
    *((f"decoders.{k}.", 3 - k) for k in range(4)),
)
_CONSTYLE_UFORMER_STAGES = (
    ("body.encoder1.", 0), ("body.encoder2.", 1), ("body.encoder3.", 2), ("body.bottleneck.", 3),
    ("body.decoder3.", 2), ("body.decoder2.", 1), ("body.decoder1.", 0),
)


def _lewin_stages(shapes: Shapes, stages: tuple[tuple[str, int], ...], architecture: str) -> dict[str, Any]:
    """Depths, heads, window, MLP ratio, modulators and ``img_size`` of a LeWin U-Net (stages in U order).

    Each level's window is the configured one or, where the level's side at ``img_size`` is smaller, that side:
    a level whose window is smaller than the others fixes ``img_size``; where none is, the weights are the same
    for every ``img_size`` from the window times the deepest level's scale up, and the architecture's default
    is kept if it is one of them (else the smallest)."""
    defaults = inspect.signature(registry.MODELS[architecture].factory).parameters
    depths = [_count(shapes, f"{prefix}blocks.") for prefix, _ in stages]
    heads = [
        shapes[f"{prefix}blocks.0.attention.position_bias_table"][1] if depth else default
        for (prefix, _), depth, default in zip(stages, depths, defaults["heads"].default, strict=True)
    ]
    windows = {  # level -> its (possibly clamped) window
        level: math.isqrt(shapes[f"{prefix}blocks.0.attention.position_index"][0])
        for (prefix, level), depth in zip(stages, depths, strict=True) if depth
    }
    if not windows:
        raise DetectionError("no LeWin blocks to read the window from")
    modulator = next(
        (shape for key, shape in shapes.items() if key.endswith((".window_modulator", ".cross_modulator"))), None
    )
    window_size = math.isqrt(modulator[0]) if modulator else max(windows.values())
    clamped = [window << level for level, window in sorted(windows.items()) if window < window_size]
    smallest = window_size << max(windows)
    default_size = defaults["img_size"].default
    img_size = clamped[0] if clamped else default_size if default_size >= smallest else smallest
    first = next(prefix for (prefix, _), depth in zip(stages, depths, strict=True) if depth)
    width = shapes[f"{first}blocks.0.attention_norm.weight"][0]
    return {
        "img_size": img_size,
        "depths": depths,
        "heads": heads,
        "window_size": window_size,
        "mlp_ratio": shapes[f"{first}blocks.0.feedforward.expand.weight"][0] / width,
        "modulator": any(key.endswith(".window_modulator") for key in shapes),
        "cross_modulator": any(key.endswith(".cross_modulator") for key in shapes),
    }


def _uformer(shapes: Shapes) -> dict[str, Any]:
    return {
        "in_channels": shapes["stem.weight"][1],
        "out_channels": shapes["output.weight"][0],
        "width": shapes["stem.weight"][0],
        **_lewin_stages(shapes, _UFORMER_STAGES, "uformer"),
    }


def _constyle_uformer(shapes: Shapes) -> dict[str, Any]:
    return {
        "width": shapes["body.stem.weight"][0],
        **_lewin_stages(shapes, _CONSTYLE_UFORMER_STAGES, "constyle_uformer"),
    }


def _constyle_v2_prompter(shapes: Shapes) -> dict[str, Any]:
    return {
        "latent_dim": shapes["constyle.encoder.head_q.0.weight"][0],
        "classes": shapes["constyle.encoder.classifier.3.weight"][0],
    }


_FAMILIES = (
    _Family("constyle_restormer", "body.encoder1.0.attention.", _constyle_restormer,
            {"bias": (False, True), "layer_norm": ("WithBias", "BiasFree")}),
    _Family("constyle_uformer", "body.encoder1.blocks.", _constyle_uformer, _LEWIN_SWITCHES, ("img_size",)),
    _Family("constyle_kbnet", "body.encoder1.0.kba.", _constyle_kbnet, {"lightweight": (False, True)}),
    _Family("constyle_nafnet", "body.encoder1.0.expand.", _constyle_nafnet),
    _Family("constyle_maxim", "body.cross_gating.", _constyle_maxim,
            {"bias": (False, True), "multi_axis_mlp": (True, False)}),
    _Family("maxim_multistage", "stages.0.input_convs.", _maxim_multistage,
            {"bias": (True, False), "output_levels": (1, 2, 3)}),
    _Family("maxim", "cross_gating.", _maxim, {"bias": (True, False), "multi_axis_mlp": (True, False)}),
    _Family("restormer", "encoder1.0.attention.", _restormer,
            {"bias": (False, True), "layer_norm": ("WithBias", "BiasFree"), "dual_pixel": (False, True)}),
    _Family("uformer", "encoders.0.blocks.", _uformer, _LEWIN_SWITCHES, ("img_size",)),
    _Family("kbnet", "encoders.0.0.kba.", _kbnet, {"lightweight": (False, True)}),
    _Family("nafnet", "encoders.0.0.expand.", _nafnet),
    # Last: a ConStyle restorer given a classification head has these keys too, next to its body's.
    _Family("constyle_v2_prompter", "constyle.encoder.classifier.", _constyle_v2_prompter),
    _Family("degradation_classifier", "class_head.", _degradation_classifier),
)
_TRAINING_ONLY = re.compile(r"^constyle\.(key_encoder\.|queue)")


def guessed_options(architecture: str) -> tuple[str, ...]:
    """The options of ``architecture`` that detection cannot read from a state dict's tensors (beyond those that
    own no weights at all): the reader fills them in by a documented rule, and a file of ours records them."""
    return next((family.guessed for family in _FAMILIES if family.architecture == architecture), ())


def detect_architecture(state: Mapping[str, torch.Tensor]) -> tuple[BuildConfig, dict[str, torch.Tensor]]:
    """The build configuration of a state dict in our layout or the authors', and the state in our layout
    (the authors' training-only momentum encoder and queue dropped: the configuration is the inference build).
    Raises :class:`DetectionError` naming what was not recognised."""
    attempts = [("ours", dict(state))]
    for name, architecture in official.ARCHITECTURES.items():
        renamed = {official.convert_key(key, architecture): value for key, value in state.items()}
        if renamed.keys() != state.keys():
            attempts.append((name, renamed))
    problems = []
    for layout, candidate in attempts:
        candidate = inference_state(candidate)
        shapes = {key: tuple(value.shape) for key, value in candidate.items()}
        for family in _FAMILIES:
            if not any(key.startswith(family.marker) for key in shapes):
                continue
            try:
                config = _search(family, shapes)
            except (DetectionError, KeyError, StopIteration) as error:
                problems.append(f"{family.architecture} ({layout} layout): {error}")
                continue
            return config, candidate
    detail = "; ".join(problems) if problems else "its keys match none of them"
    raise DetectionError(f"not one of the architectures irconstyle knows ({detail})")


def inference_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without the training-only tensors (ConStyle's momentum encoder and queue)."""
    return {key: value for key, value in state.items() if not _TRAINING_ONLY.match(key)}


def family_in_our_layout(state: Mapping[str, torch.Tensor]) -> str | None:
    """The architecture that :func:`detect_architecture` tries first for a state dict in our layout (the first
    family whose marker key it has), or None: each state dict has at most one, so no two families claim it."""
    keys = inference_state(state)
    return next((family.architecture for family in _FAMILIES if any(key.startswith(family.marker) for key in keys)),
                None)


def read_our_layout(state: Mapping[str, torch.Tensor], architecture: str) -> BuildConfig:
    """The build configuration of ``architecture`` whose inference tensors are exactly those of ``state`` (our
    layout; the training-only tensors are not looked at). Raises :class:`DetectionError` where none is."""
    family = next((family for family in _FAMILIES if family.architecture == architecture), None)
    if family is None:
        raise DetectionError(f"no detection for the architecture {architecture!r}")
    shapes = {key: tuple(value.shape) for key, value in inference_state(state).items()}
    try:
        return _search(family, shapes)
    except (KeyError, StopIteration) as error:
        raise DetectionError(f"not a {architecture} state dict ({error})") from None


def _search(family: _Family, shapes: Shapes) -> BuildConfig:
    """The first configuration, over the family's switches, whose tensors have exactly ``shapes``."""
    read = family.read(shapes)
    switches = dict(family.switches)
    if family.architecture in ("constyle_restormer", "restormer"):
        switches["ffn_expansion"] = _ffn_expansions(shapes)
    names = list(switches)
    for values in itertools.product(*(switches[name] for name in names)):
        config = BuildConfig.create(family.architecture, **read, **dict(zip(names, values, strict=True)))
        if _shapes_of(config) == dict(shapes):
            return config
    raise DetectionError("no configuration of its hyper-parameters has exactly these tensors")


def _shapes_of(config: BuildConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = config.build()
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}
