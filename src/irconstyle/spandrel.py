"""irconstyle's architectures in spandrel's registry, so that ComfyUI, chaiNNer and other spandrel users load
irconstyle checkpoints as they load any other model::

    import irconstyle.spandrel, spandrel
    irconstyle.spandrel.register()
    model = spandrel.ModelLoader().load_from_file("denoise.safetensors")   # an ImageModelDescriptor
    restored = model(image)                                                 # 1×3×H×W in [0, 1]

spandrel hands an architecture only the state dict (not our file's metadata), so each architecture here is
recognised from its keys and its hyper-parameters are read from the tensor shapes. The keys are distinct from
spandrel's own architectures (spandrel's NAFNet, for one, names its layers ``intro``, ``middle_blks`` …), and
:func:`register` puts ours ahead of them in detection order all the same. Settings that leave no trace in the
weights take their defaults: MAXIM's ``leaky_slope`` and ``multi_axis_mlp``, MAXIM multi-stage's ``gelu``; a
checkpoint trained with other values loads but computes differently (``irconstyle.load_model`` reads them
from the file's metadata instead).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import spandrel
import torch
from torch import nn

from irconstyle.models.registry import build_model

StateDict = Mapping[str, torch.Tensor]
ID_PREFIX = "irconstyle."
CONSTYLE_KEYS = ("constyle.encoder.stage1.0.0.weight", "constyle.encoder.head_q.0.weight")


def _count(state: StateDict, prefix: str) -> int:
    """How many numbered children ``prefix.0``, ``prefix.1`` … hold tensors (0 for an empty stack)."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    indices = [int(match.group(1)) for key in state if (match := pattern.match(key))]
    return max(indices) + 1 if indices else 0


def _has(state: StateDict, *keys: str) -> bool:
    return all(key in state for key in keys)


def _side(state: StateDict, key: str) -> tuple[int, int]:
    """The (rows, cols) of a square MAXIM partition from its M×M position-mixing weight."""
    positions = state[key].shape[0]
    side = math.isqrt(positions)
    if side * side != positions:
        raise ValueError(f"{key}: {positions} positions is not a square partition; load it with irconstyle.load_model")
    return side, side


def _constyle_options(state: StateDict) -> dict[str, Any]:
    """``contrastive`` (a training checkpoint with the momentum encoder and queue) and the queue size."""
    if "constyle.queue" not in state:
        return {}
    return {"contrastive": True, "constyle_options": {"queue_size": int(state["constyle.queue"].shape[1])}}


def _stage_counts(state: StateDict, prefix: str, names: tuple[str, ...]) -> list[int]:
    return [_count(state, f"{prefix}{name}") for name in names]


def _nafnet_unet(state: StateDict) -> dict[str, Any]:
    return {
        "width": int(state["body.stem.weight"].shape[0]),
        "encoder_blocks": _stage_counts(state, "body.", ("encoder1", "encoder2", "encoder3")),
        "bottleneck_blocks": _count(state, "body.bottleneck"),
        "decoder_blocks": _stage_counts(state, "body.", ("decoder1", "decoder2", "decoder3")),
        **_constyle_options(state),
    }


def _nafnet(state: StateDict) -> dict[str, Any]:
    levels = _count(state, "downsamples")
    return {
        "image_channels": int(state["stem.weight"].shape[1]),
        "width": int(state["stem.weight"].shape[0]),
        "encoder_blocks": [_count(state, f"encoders.{level}") for level in range(levels)],
        "bottleneck_blocks": _count(state, "bottleneck"),
        "decoder_blocks": [_count(state, f"decoders.{level}") for level in range(levels)],
    }


def _restormer_blocks(state: StateDict, prefix: str, stages: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Heads, feed-forward expansion, bias and LayerNorm type of a Restormer-block network.

    ``stages`` maps each head entry to the stages that use it (the first one with blocks tells).
    """
    pattern = re.compile(rf"({re.escape(prefix)}\w+\.\d+)\.attention\.temperature$")
    blocks = sorted({match.group(1) for key in state if (match := pattern.match(key))})
    if not blocks:
        return {}
    heads = []
    for index, names in enumerate(stages.values()):
        found = [state[f"{prefix}{name}.0.attention.temperature"].shape[0] for name in names
                 if f"{prefix}{name}.0.attention.temperature" in state]
        heads.append(int(found[0]) if found else (1, 2, 4, 8)[index])
    first = blocks[0]
    return {
        "heads": heads,
        "ffn_expansion": _ffn_expansion(state, blocks),
        "bias": f"{first}.attention.qkv.bias" in state,
        "layer_norm": "WithBias" if f"{first}.norm1.bias" in state else "BiasFree",
    }


def _ffn_expansion(state: StateDict, blocks: list[str]) -> float:
    """An expansion ``e`` with ``int(channels · e)`` equal to every block's feed-forward width (2.66 if it fits)."""
    widths = {(int(state[f"{block}.feedforward.project_out.weight"].shape[0]),
               int(state[f"{block}.feedforward.project_out.weight"].shape[1])) for block in blocks}
    if all(int(channels * 2.66) == hidden for channels, hidden in widths):
        return 2.66
    low = max(hidden / channels for channels, hidden in widths)
    high = min((hidden + 1) / channels for channels, hidden in widths)
    for candidate in (low, (low + high) / 2):
        if all(int(channels * candidate) == hidden for channels, hidden in widths):
            return candidate
    raise ValueError(f"no single feed-forward expansion gives the widths {sorted(widths)}")


_RESTORMER_HEADS = {
    "level1": ("encoder1", "decoder1", "refinement"), "level2": ("encoder2", "decoder2"),
    "level3": ("encoder3", "decoder3"), "bottleneck": ("bottleneck",),
}


def _constyle_restormer(state: StateDict) -> dict[str, Any]:
    return {
        **_nafnet_unet(state),
        "refinement_blocks": _count(state, "body.refinement"),
        **_restormer_blocks(state, "body.", _RESTORMER_HEADS),
        "bias": "body.output.bias" in state,
    }


def _restormer(state: StateDict) -> dict[str, Any]:
    options = _restormer_blocks(state, "", _RESTORMER_HEADS)
    return {
        "in_channels": int(state["stem.weight"].shape[1]),
        "out_channels": int(state["output.weight"].shape[0]),
        "width": int(state["stem.weight"].shape[0]),
        "level_blocks": _stage_counts(state, "", ("encoder1", "encoder2", "encoder3", "bottleneck")),
        "refinement_blocks": _count(state, "refinement"),
        **options,
        "bias": "output.bias" in state,
        "dual_pixel": "dual_pixel_skip.weight" in state,
    }


def _maxim_blocks(state: StateDict, prefix: str) -> dict[str, Any]:
    """The partition sizes, expansion factors, reduction and bias of a MAXIM U-Net under ``prefix``."""
    channels = int(state[f"{prefix}encoders.0.input_proj.weight"].shape[0])
    mab = f"{prefix}encoders.0.multi_axis.0"
    squeeze = state[f"{prefix}encoders.0.channel_attention.0.attention.squeeze.weight"]
    hidden = int(state[f"{mab}.expand.weight"].shape[0])
    levels = [
        (_side(state, f"{prefix}encoders.{level}.multi_axis.0.block.token_mix.weight"),
         _side(state, f"{prefix}encoders.{level}.multi_axis.0.grid.token_mix.weight"))
        for level in range(3)
    ]
    block_low = _side(state, f"{prefix}bottleneck.0.multi_axis.0.block.token_mix.weight")
    grid_low = _side(state, f"{prefix}bottleneck.0.multi_axis.0.grid.token_mix.weight")
    high_res_levels = next((level for level, sizes in enumerate(levels) if sizes == (block_low, block_low)), 3)
    if any(sizes != levels[0] for sizes in levels[:high_res_levels]) or any(
        sizes != (block_low, block_low) for sizes in levels[high_res_levels:]
    ):
        raise ValueError(f"MAXIM partitions {levels} do not follow the published high/low resolution pattern")
    block_high, grid_high = levels[0] if high_res_levels else ((16, 16), (16, 16))
    return {
        "bias": f"{prefix}encoders.0.input_proj.bias" in state,
        "high_res_levels": high_res_levels,
        "block_size_high_res": block_high,
        "block_size_low_res": block_low,
        "grid_size_high_res": grid_high,
        "grid_size_low_res": grid_low,
        "input_projection_factor": hidden // channels,
        "block_mlp_factor": int(state[f"{mab}.block.expand.weight"].shape[0]) // (hidden // 2),
        "grid_mlp_factor": int(state[f"{mab}.grid.expand.weight"].shape[0]) // (hidden // 2),
        "channel_reduction": channels // int(squeeze.shape[0]),
    }


def _constyle_maxim(state: StateDict) -> dict[str, Any]:
    return {
        "features": int(state["body.input_convs.0.weight"].shape[0]),
        "bottleneck_blocks": _count(state, "body.bottleneck"),
        **_maxim_blocks(state, "body."),
        **_constyle_options(state),
    }


def _maxim(state: StateDict) -> dict[str, Any]:
    return {"features": int(state["input_convs.0.weight"].shape[0]), **_maxim_blocks(state, "")}


def _maxim_multistage(state: StateDict) -> dict[str, Any]:
    stages = _count(state, "stages")
    return {
        "stages": stages,
        "features": int(state["stages.0.input_convs.0.weight"].shape[0]),
        "bottleneck_blocks": _count(state, "stages.0.bottleneck"),
        "output_levels": _count(state, f"stages.{stages - 1}.outputs"),
        **_maxim_blocks(state, "stages.0."),
    }


def _is_constyle_nafnet(state: StateDict) -> bool:
    return (_has(state, *CONSTYLE_KEYS, "body.stem.weight", "body.merge3.weight")
            and "body.feature_adapters.0.1.weight" not in state)  # the Restormer variant's PReLU adapters


def _is_constyle_restormer(state: StateDict) -> bool:
    return _has(state, *CONSTYLE_KEYS, "body.stem.weight", "body.merge3.weight", "body.feature_adapters.0.1.weight")


def _is_constyle_maxim(state: StateDict) -> bool:
    return _has(state, *CONSTYLE_KEYS, "body.input_convs.0.weight", "body.cross_gating.0.proj_x.weight")


def _is_nafnet(state: StateDict) -> bool:
    return _has(state, "stem.weight", "stem.bias", "downsamples.0.weight", "upsamples.0.0.weight", "output.weight")


def _is_restormer(state: StateDict) -> bool:
    return _has(state, "stem.weight", "down1.conv.weight", "up1.conv.weight", "merge3.weight", "output.weight")


def _is_maxim(state: StateDict) -> bool:
    return _has(state, "input_convs.0.weight", "encoders.0.multi_axis.0.block.token_mix.weight",
                "bottleneck.0.multi_axis.0.grid.token_mix.weight", "output.weight")


def _is_maxim_multistage(state: StateDict) -> bool:
    stages = _count(state, "stages")
    return stages > 0 and _has(state, "stages.0.input_convs.0.weight",
                               "stages.0.encoders.0.multi_axis.0.block.token_mix.weight",
                               f"stages.{stages - 1}.outputs.0.weight")


class IrconstyleArchitecture(spandrel.Architecture[nn.Module]):
    """One irconstyle family for spandrel: detection from the keys, the model from :func:`irconstyle.build_model`
    with hyper-parameters read from the shapes."""

    def __init__(
        self,
        model_name: str,
        class_name: str,
        detect: Callable[[StateDict], bool],
        hyperparameters: Callable[[StateDict], dict[str, Any]],
        *,
        supports_bfloat16: bool,
    ) -> None:
        super().__init__(id=f"{ID_PREFIX}{class_name}", name=f"{class_name} (irconstyle)", detect=detect)
        self.model_name = model_name
        self.hyperparameters = hyperparameters
        self.supports_bfloat16 = supports_bfloat16

    def load(self, state_dict: StateDict) -> spandrel.ImageModelDescriptor[nn.Module]:
        model = build_model(self.model_name, **self.hyperparameters(state_dict))
        first_conv = next(tensor for key, tensor in state_dict.items() if key.endswith(".weight") and tensor.ndim == 4)
        return spandrel.ImageModelDescriptor(
            model,
            dict(state_dict),
            architecture=self,
            purpose="Restoration",
            tags=[f"{int(first_conv.shape[0])}w"],
            supports_half=False,
            supports_bfloat16=self.supports_bfloat16,
            scale=1,
            input_channels=3,
            output_channels=3,
            # none: every model pads to its size multiple itself, as it was trained (zeros for NAFNet, centred
            # reflection for MAXIM multi-stage), so spandrel's call gives exactly what irconstyle's does
            size_requirements=spandrel.SizeRequirements(),
        )


# The ConStyle variants' projection heads always compute in float32 (their BatchNorm divides by tiny running
# deviations), so a model cast to bfloat16 as a whole fails there; the other families run in bfloat16.
ARCHITECTURES: tuple[IrconstyleArchitecture, ...] = (
    IrconstyleArchitecture("constyle_nafnet", "ConStyleNAFNet", _is_constyle_nafnet, _nafnet_unet,
                           supports_bfloat16=False),
    IrconstyleArchitecture("constyle_restormer", "ConStyleRestormer", _is_constyle_restormer, _constyle_restormer,
                           supports_bfloat16=False),
    IrconstyleArchitecture("constyle_maxim", "ConStyleMaxim", _is_constyle_maxim, _constyle_maxim,
                           supports_bfloat16=False),
    IrconstyleArchitecture("nafnet", "NAFNet", _is_nafnet, _nafnet, supports_bfloat16=True),
    IrconstyleArchitecture("restormer", "Restormer", _is_restormer, _restormer, supports_bfloat16=True),
    IrconstyleArchitecture("maxim", "Maxim", _is_maxim, _maxim, supports_bfloat16=True),
    IrconstyleArchitecture("maxim_multistage", "MaximMultiStage", _is_maxim_multistage, _maxim_multistage,
                           supports_bfloat16=True),
)


def register(registry: spandrel.ArchRegistry | None = None) -> list[str]:
    """Add irconstyle's architectures to ``registry`` (spandrel's ``MAIN_REGISTRY`` by default), detected before
    every architecture already there; calling it again changes nothing. Returns the ids added."""
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    others = tuple(support.architecture.id for support in registry if not support.architecture.id.startswith(ID_PREFIX))
    supports = [spandrel.ArchSupport.from_architecture(architecture, before=others) for architecture in ARCHITECTURES]
    return [support.architecture.id for support in registry.add(*supports, ignore_duplicates=True)]
