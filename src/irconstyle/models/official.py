"""The authors' names -> ours: class and keyword names for :func:`build`, state-dict keys for the converter.

This is the only module that knows the published implementation's names (``Process_Module_l1``, ``DC1``,
``ConStyle.encoder_q`` …). Each architecture lists ordered regular-expression rewrites of its keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from irconstyle.models.registry import BuildConfig, architecture_name


@dataclass(frozen=True)
class OfficialArchitecture:
    name: str  # our registry name
    keywords: dict[str, str]  # authors' constructor keyword -> ours
    key_rules: list[tuple[str, str]] = field(default_factory=list)  # (pattern, replacement), applied in order


# Shared by the three ConStyle variants: the MoCo module and its encoders.
_CONSTYLE_KEY_RULES = [
    (r"^ConStyle\.encoder_q\.", "constyle.encoder."),
    (r"^ConStyle\.encoder_k\.", "constyle.key_encoder."),
    (r"^ConStyle\.queue", "constyle.queue"),
    (r"^(constyle\.(?:key_)?encoder)\.mlp1\.", r"\1.head_z."),
    (r"^(constyle\.(?:key_)?encoder)\.mlp2\.", r"\1.head_q."),
]
# Authors' ``Train`` flag builds the momentum encoder and queue.
_CONSTYLE_KEYWORDS = {"Train": "contrastive"}

# The ConStyle U-Net body (models/unet.py), shared by ConStyleNAFNet and ConStyleRestormer. The last conv of
# ``Finetune_Module`` (after any refinement blocks) is the only key with a bare ``.weight``/``.bias`` there.
_CONSTYLE_UNET_KEY_RULES = [
    (r"^Preprocess_Module\.(?:0|proj)\.", "body.stem."),
    (r"^AffineTransform(\d)\.", r"body.feature_adapters.\1."),
    (r"^Process_Module_l(\d)\.", r"body.encoder\1."),
    (r"^DC(\d)\.down\.", r"body.down\1."),
    (r"^Process_Module_bottom\.", "body.bottleneck."),
    (r"^mlp\.0\.", "body.latent_projection."),
    (r"^local_fusion\.", "body.latent_fusion."),
    (r"^UC(\d)\.up\.", r"body.up\1."),
    (r"^UC(\d)\.down\.", r"body.merge\1."),
    (r"^Process_Module_r(\d)\.", r"body.decoder\1."),
    (r"^Finetune_Module\.\d+\.(weight|bias)$", r"body.output.\1"),
    (r"^Finetune_Module\.(\d+)\.", r"body.refinement.\1."),
]
# Inside every NAFBlock (models/nafnet.py).
_NAFBLOCK_KEY_RULES = [
    (r"\.norm1\.", ".mixer_norm."),
    (r"\.conv1\.", ".expand."),
    (r"\.conv2\.", ".depthwise."),
    (r"\.sca\.1\.", ".channel_attention."),
    (r"\.conv3\.", ".project."),
    (r"\.beta$", ".mixer_scale"),
    (r"\.norm2\.", ".ffn_norm."),
    (r"\.conv4\.", ".ffn_expand."),
    (r"\.conv5\.", ".ffn_project."),
    (r"\.gamma$", ".ffn_scale"),
]

# Inside every Restormer TransformerBlock (models/restormer.py).
_RESTORMER_BLOCK_KEY_RULES = [
    (r"\.(norm\d)\.body\.", r".\1."),
    (r"\.attn\.qkv_dwconv\.", ".attention.qkv_depthwise."),
    (r"\.attn\.", ".attention."),
    (r"\.ffn\.dwconv\.", ".feedforward.depthwise."),
    (r"\.ffn\.", ".feedforward."),
]
# Restormer's block-stack keywords, shared by the Origin Restormer and ConStyleRestormer.
_RESTORMER_KEYWORDS = {
    "dim": "width",
    "num_refinement_blocks": "refinement_blocks",
    "heads": "heads",
    "ffn_expansion_factor": "ffn_expansion",
    "bias": "bias",
    "LayerNorm_type": "layer_norm",
}

# Inside every KBBlock (models/kbnet.py). ``\.conv1\.`` etc. end in a dot, so they never match ``conv11``/``conv21``.
_KBBLOCK_KEY_RULES = [
    (r"\.w$", ".kba.kernel_bases"),
    (r"\.b$", ".kba.bias_bases"),
    (r"\.ga1$", ".kba_scale"),
    (r"\.attgamma$", ".attention_scale"),
    (r"\.beta$", ".mixer_scale"),
    (r"\.gamma$", ".ffn_scale"),
    (r"\.norm1\.", ".mixer_norm."),
    (r"\.norm2\.", ".ffn_norm."),
    (r"\.sca\.1\.", ".channel_attention."),
    (r"\.conv11\.", ".local_branch."),
    (r"\.conv1\.", ".value_pointwise."),
    (r"\.conv21\.", ".value_depthwise."),
    (r"\.conv2\.", ".basis_attention."),
    (r"\.conv211\.", ".basis_attention_direct."),
    (r"\.conv3\.", ".project."),
    (r"\.conv4\.", ".ffn_expand."),
    (r"\.conv5\.", ".ffn_project."),
]
# KBNet's block keywords, shared by the Origin KBNet and ConStyleKBNet. ``basicblock`` is left out: the
# published code has one block, ``KBBlock_s``.
_KBNET_KEYWORDS = {"lightweight": "lightweight", "ffn_scale": "ffn_expansion"}

# MAXIM (models/maxim.py). Inside every block: multi-axis gMLPs, channel attention, cross gating.
_MAXIM_BLOCK_KEY_RULES = [
    (r"(cross_gating(?:\.\d)?)\.ConvTranspose_0\.", r"\1.upsample_y."),
    (r"(cross_gating(?:\.\d)?)\.Conv_0\.", r"\1.proj_x."),
    (r"(cross_gating(?:\.\d)?)\.Conv_1\.", r"\1.proj_y."),
    (r"\.channel_attention\.Conv_0\.", ".attention.squeeze."),
    (r"\.channel_attention\.Conv_1\.", ".attention.excite."),
    (r"^((?:body\.)?(?:en|de)coders\.\d)\.Conv_0\.", r"\1.input_proj."),
    (r"\.channel_attention_block_1_?(\d)\.", r".channel_attention.\1."),
    (r"\.channel_mixing\.Dense_0\.", ".fc1."),
    (r"\.channel_mixing\.Dense_1\.", ".fc2."),
    (r"\.SplitHeadMultiAxisGmlpLayer_(\d)\.", r".multi_axis.\1."),
    (r"\.GridGmlpLayer\.", ".grid."),
    (r"\.BlockGmlpLayer\.", ".block."),
    (r"\.(?:Grid|Block)GatingUnit\.intermediate_layernorm\.", ".gate_norm."),
    (r"\.(?:Grid|Block)GatingUnit\.Dense_0\.", ".token_mix."),
    (r"\.SplitHeadMultiAxisGating_(x|y)\.", r".gate_\1."),
    (r"\.(gate_[xy])\.Dense_0\.", r".\1.grid_mix."),
    (r"\.(gate_[xy])\.Dense_1\.", r".\1.block_mix."),
    (r"\.LayerNorm_(x|y)\.", r".norm_\1."),
    (r"\.LayerNorm(?:_in)?\.", ".norm."),
    (r"\.in_project_(x|y)\.", r".in_\1."),
    (r"\.out_project_(x|y)\.", r".out_\1."),
    (r"\.in_project\.", ".expand."),
    (r"\.out_project\.", ".project."),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
]


def _maxim_resample_rules(prefix: str) -> list[tuple[str, str]]:
    """``UpSampleRatio_k``: the 18 resizes into the cross-gating blocks (k < 9) and the decoders (k >= 9).

    Cross gating runs at levels 2, 1, 0 (0 = full resolution) and takes the encoder outputs of levels 0, 1, 2
    in that order; each decoder level takes the gated skips of levels 2, 1, 0.
    """
    rules = []
    for position, level in enumerate((2, 1, 0)):
        for target, sources, first in (("gating_inputs", (0, 1, 2), 0), ("decoder_inputs", (2, 1, 0), 9)):
            for order, source in enumerate(sources):
                index = first + 3 * position + order
                rules.append((rf"^UpSampleRatio_{index}\.Conv_0\.", f"{prefix}{target}.{level}.{source}.proj."))
    return rules


# MAXIM's shared constructor keywords (ConStyleMaxim and the Origin Maxim).
_MAXIM_KEYWORDS = {
    "features": "features",
    "lrelu_slope": "leaky_slope",
    "use_global_mlp": "multi_axis_mlp",
    "high_res_stages": "high_res_levels",
    "block_size_hr": "block_size_high_res",
    "block_size_lr": "block_size_low_res",
    "grid_size_hr": "grid_size_high_res",
    "grid_size_lr": "grid_size_low_res",
    "block_gmlp_factor": "block_mlp_factor",
    "grid_gmlp_factor": "grid_mlp_factor",
    "input_proj_factor": "input_projection_factor",
    "channels_reduction": "channel_reduction",
    "num_outputs": "out_channels",
    "dropout_rate": "dropout",
}

# Uformer's LeWin blocks (models/uformer.py), shared by the Origin Uformer and ConStyleUformer. The relative
# position index buffers are stored by the published code; they load onto ours (the same values).
_LEWIN_BLOCK_KEY_RULES = [
    (r"\.cross_attn\.", ".cross_attention."),
    (r"\.attn\.", ".attention."),
    (r"\.relative_position_bias_table$", ".position_bias_table"),
    (r"\.relative_position_index$", ".position_index"),
    (r"\.qkv\.to_q\.", ".query."),
    (r"\.qkv\.to_kv\.", ".key_value."),
    (r"\.qkv\.to_k\.", ".key."),
    (r"\.qkv\.to_v\.", ".value."),
    (r"\.proj\.", ".project."),
    (r"\.norm1\.", ".attention_norm."),
    (r"\.norm2\.", ".mlp_norm."),
    (r"\.norm_cross\.", ".cross_norm."),
    (r"\.modulator\.weight$", ".window_modulator"),
    (r"\.cross_modulator\.weight$", ".cross_modulator"),
    (r"\.mlp\.(?:linear1\.0|fc1)\.", ".feedforward.expand."),
    (r"\.mlp\.dwconv\.0\.", ".feedforward.depthwise."),
    (r"\.mlp\.(?:linear2\.0|fc2)\.", ".feedforward.project."),
]
# Uformer's constructor keywords, shared by both variants. ``norm_layer``, ``dowsample`` / ``upsample`` (classes)
# and ``patch_norm`` (unused by the published code) are left out.
_UFORMER_KEYWORDS = {
    "img_size": "img_size",
    "depths": "depths",
    "num_heads": "heads",
    "win_size": "window_size",
    "mlp_ratio": "mlp_ratio",
    "qkv_bias": "qkv_bias",
    "qk_scale": "qk_scale",
    "drop_rate": "dropout",
    "attn_drop_rate": "attention_dropout",
    "drop_path_rate": "drop_path_rate",
    "use_checkpoint": "gradient_checkpointing",
    "token_projection": "token_projection",
    "token_mlp": "token_mlp",
    "shift_flag": "shifted_windows",
    "modulator": "modulator",
    "cross_modulator": "cross_modulator",
}

ARCHITECTURES: dict[str, OfficialArchitecture] = {
    # The authors' ``img_channel`` is left out: their ConStyle encoder and output conv are RGB-only anyway.
    "ConStyleNAFNet": OfficialArchitecture(
        name="constyle_nafnet",
        keywords={
            **_CONSTYLE_KEYWORDS,
            "dim": "width",
            "left_blk_num": "encoder_blocks",
            "bottom_blk_num": "bottleneck_blocks",
            "right_blk_num": "decoder_blocks",
        },
        key_rules=[*_CONSTYLE_KEY_RULES, *_CONSTYLE_UNET_KEY_RULES, *_NAFBLOCK_KEY_RULES],
    ),
    # ``inp_channels`` / ``out_channels`` are left out: the ConStyle encoder and the image residual are RGB-only.
    "ConStyleRestormer": OfficialArchitecture(
        name="constyle_restormer",
        keywords={
            **_CONSTYLE_KEYWORDS,
            **_RESTORMER_KEYWORDS,
            "left_blk_num": "encoder_blocks",
            "bottom_blk_num": "bottleneck_blocks",
            "right_blk_num": "decoder_blocks",
        },
        key_rules=[*_CONSTYLE_KEY_RULES, *_CONSTYLE_UNET_KEY_RULES, *_RESTORMER_BLOCK_KEY_RULES],
    ),
    "ConStyleMaxim": OfficialArchitecture(
        name="constyle_maxim",
        keywords={**_CONSTYLE_KEYWORDS, **_MAXIM_KEYWORDS, "bias": "bias", "bottom_blk_num": "bottleneck_blocks"},
        key_rules=[
            *_CONSTYLE_KEY_RULES,
            (r"^stage_input_conv_(\d)\.", r"body.input_convs.\1."),
            (r"^AffineTransform(\d)\.", r"body.feature_adapters.\1."),
            (r"^Process_Module_l1\.", "body.encoders.0."),
            (r"^Process_Module_l2\.", "body.encoders.1."),
            (r"^Process_Module_l3\.", "body.encoders.2."),
            (r"^DC1\.down\.", "body.downsamples.0."),
            (r"^DC2\.down\.", "body.downsamples.1."),
            (r"^DC3\.down\.", "body.downsamples.2."),
            (r"^Process_Module_bottom\.", "body.bottleneck."),
            (r"^mlp\.0\.", "body.latent_projection."),
            (r"^local_fusion\.", "body.latent_fusion."),
            *_maxim_resample_rules("body."),
            (r"^cross_gating_block_(\d)\.", r"body.cross_gating.\1."),
            (r"^UC1\.up\.", "body.upsamples.0."),
            (r"^UC2\.up\.", "body.upsamples.1."),
            (r"^UC3\.up\.", "body.upsamples.2."),
            (r"^Process_Module_r1\.UNetEncoderBlock_0\.", "body.decoders.0."),
            (r"^Process_Module_r2\.UNetEncoderBlock_0\.", "body.decoders.1."),
            (r"^Process_Module_r3\.UNetEncoderBlock_0\.", "body.decoders.2."),
            (r"^Finetune_Module\.0\.", "body.output."),
            (r"\.cross_gating_block\.", ".unused_cross_gating."),
            *_MAXIM_BLOCK_KEY_RULES,
        ],
    ),
    # ``in_chans`` / ``dd_in`` are left out: the ConStyle encoder and the image residual are RGB-only.
    "ConStyleUformer": OfficialArchitecture(
        name="constyle_uformer",
        keywords={**_CONSTYLE_KEYWORDS, **_UFORMER_KEYWORDS, "dim": "width"},
        key_rules=[
            *_CONSTYLE_KEY_RULES,
            (r"^Preprocess_Module\.proj\.0\.", "body.stem."),
            (r"^local_fusion\.fusion\.", "body.latent_fusion."),
            (r"^Finetune_Module\.proj\.0\.", "body.output."),
            *_CONSTYLE_UNET_KEY_RULES,
            *_LEWIN_BLOCK_KEY_RULES,
        ],
    ),
    # ``img_channel`` is left out: the ConStyle encoder and the image residual are RGB-only.
    "ConStyleKBNet": OfficialArchitecture(
        name="constyle_kbnet",
        keywords={
            **_CONSTYLE_KEYWORDS,
            **_KBNET_KEYWORDS,
            "dim": "width",
            "left_blk_num": "encoder_blocks",
            "bottom_blk_num": "bottleneck_blocks",
            "right_blk_num": "decoder_blocks",
        },
        key_rules=[*_CONSTYLE_KEY_RULES, *_CONSTYLE_UNET_KEY_RULES, *_KBBLOCK_KEY_RULES],
    ),
    "KBNet": OfficialArchitecture(
        name="kbnet",
        keywords={
            **_KBNET_KEYWORDS,
            "img_channel": "image_channels",
            "width": "width",
            "middle_blk_num": "bottleneck_blocks",
            "enc_blk_nums": "encoder_blocks",
            "dec_blk_nums": "decoder_blocks",
        },
        key_rules=[
            (r"^intro\.", "stem."),
            (r"^ending\.", "output."),
            (r"^downs\.", "downsamples."),
            (r"^ups\.", "upsamples."),
            (r"^middle_blks\.", "bottleneck."),
            *_KBBLOCK_KEY_RULES,
        ],
    ),
    # ConStyle v2's ``ConStyle_v2`` (stage 1): the MoCo module at the top level, its encoders with a classifier.
    "ConStyleV2Prompter": OfficialArchitecture(
        name="constyle_v2_prompter",
        keywords={"Train": "contrastive", "dim": "latent_dim", "K": "queue_size", "m": "momentum", "T": "temperature"},
        key_rules=[(r"^(encoder_[qk]\.|queue)", r"ConStyle.\1"), *_CONSTYLE_KEY_RULES],
    ),
    "NAFNet": OfficialArchitecture(
        name="nafnet",
        keywords={
            "img_channel": "image_channels",
            "width": "width",
            "middle_blk_num": "bottleneck_blocks",
            "enc_blk_nums": "encoder_blocks",
            "dec_blk_nums": "decoder_blocks",
        },
        key_rules=[
            (r"^intro\.", "stem."),
            (r"^ending\.", "output."),
            (r"^downs\.", "downsamples."),
            (r"^ups\.", "upsamples."),
            (r"^middle_blks\.", "bottleneck."),
            *_NAFBLOCK_KEY_RULES,
        ],
    ),
    "Restormer": OfficialArchitecture(
        name="restormer",
        keywords={
            **_RESTORMER_KEYWORDS,
            "inp_channels": "in_channels",
            "out_channels": "out_channels",
            "num_blocks": "level_blocks",
            "dual_pixel_task": "dual_pixel",
        },
        key_rules=[
            (r"^patch_embed\.proj\.", "stem."),
            (r"^encoder_level(\d)\.", r"encoder\1."),
            (r"^down(\d)_\d\.body\.0\.", r"down\1.conv."),
            (r"^latent\.", "bottleneck."),
            (r"^up(\d)_(\d)\.body\.0\.", r"up\2.conv."),
            (r"^reduce_chan_level(\d)\.", r"merge\1."),
            (r"^decoder_level(\d)\.", r"decoder\1."),
            (r"^skip_conv\.", "dual_pixel_skip."),
            *_RESTORMER_BLOCK_KEY_RULES,
        ],
    ),
    "Uformer": OfficialArchitecture(
        name="uformer",
        keywords={**_UFORMER_KEYWORDS, "dd_in": "in_channels", "in_chans": "out_channels", "embed_dim": "width"},
        key_rules=[
            (r"^input_proj\.proj\.0\.", "stem."),
            (r"^output_proj\.proj\.0\.", "output."),
            (r"^encoderlayer_(\d)\.", r"encoders.\1."),
            (r"^dowsample_(\d)\.conv\.0\.", r"downsamples.\1."),
            (r"^conv\.", "bottleneck."),
            (r"^upsample_(\d)\.deconv\.0\.", r"upsamples.\1."),
            (r"^decoderlayer_(\d)\.", r"decoders.\1."),
            *_LEWIN_BLOCK_KEY_RULES,
        ],
    ),
    "Maxim": OfficialArchitecture(
        name="maxim",
        keywords={
            **_MAXIM_KEYWORDS,
            "depth": "depth",
            "use_bias": "bias",
            "num_supervision_scales": "input_scales",
        },
        key_rules=[
            (r"^stage_0_input_conv_(\d)\.", r"input_convs.\1."),
            (r"^stage_0_encoder_block_(\d)\.Conv_1\.", r"downsamples.\1."),
            (r"^stage_0_encoder_block_(\d)\.", r"encoders.\1."),
            (r"^stage_0_global_block_(\d)\.", r"bottleneck.\1."),
            *_maxim_resample_rules(""),
            (r"^stage_0_cross_gating_block_(\d)\.", r"cross_gating.\1."),
            (r"^stage_0_decoder_block_(\d)\.ConvTranspose_0\.", r"upsamples.\1."),
            (r"^stage_0_decoder_block_(\d)\.UNetEncoderBlock_0\.Conv_1\.", r"decoders.\1.unused_downsample."),
            (r"^stage_0_decoder_block_(\d)\.UNetEncoderBlock_0\.", r"decoders.\1."),
            (r"^stage_0_output_conv_0\.", "output."),
            (r"\.cross_gating_block\.", ".unused_cross_gating."),
            *_MAXIM_BLOCK_KEY_RULES,
        ],
    ),
}

# Keys of the training layout that an inference-built model (no momentum encoder, no queue) does not hold.
_TRAINING_ONLY = re.compile(r"^constyle\.(key_encoder\.|queue)")


def build(name: str, **official_kwargs: Any) -> nn.Module:
    """Build our model from the authors' class name and constructor keyword names (see :func:`build_config`)."""
    return build_config(name, **official_kwargs).build()


def build_config(name: str, **official_kwargs: Any) -> BuildConfig:
    """Our build configuration from the authors' class name and constructor keyword names.

    Omitted keywords take the authors' defaults, which are also ours.
    """
    try:
        architecture = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown official class {name!r}; known: {', '.join(ARCHITECTURES)}") from None
    unknown = sorted(set(official_kwargs) - set(architecture.keywords))
    if unknown:
        raise TypeError(
            f"{name}: unknown keyword(s) {', '.join(unknown)}; accepted: {', '.join(sorted(architecture.keywords))}"
        )
    kwargs = {architecture.keywords[key]: _to_python(value) for key, value in official_kwargs.items()}
    return BuildConfig.create(architecture.name, **kwargs)


def _to_python(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def architecture_of(model: nn.Module) -> OfficialArchitecture:
    """The authors' counterpart of ``model``'s architecture."""
    name = architecture_name(model)
    for architecture in ARCHITECTURES.values():
        if architecture.name == name:
            return architecture
    raise ValueError(f"{type(model).__name__} has no official counterpart to convert checkpoints for")


def convert_key(key: str, architecture: OfficialArchitecture) -> str:
    for pattern, replacement in architecture.key_rules:
        key = re.sub(pattern, replacement, key)
    return key


def convert_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an authors' state dict (training or inference layout, ``module.`` prefix or not) to ours.

    Training-only tensors (momentum encoder, queue) are dropped when ``model`` was built without them.
    """
    architecture = architecture_of(model)
    keep_training_parts = any(_TRAINING_ONLY.match(key) for key in model.state_dict())
    converted = {}
    for key, tensor in state.items():
        ours = convert_key(key.removeprefix("module."), architecture)
        if _TRAINING_ONLY.match(ours) and not keep_training_parts:
            continue
        converted[ours] = tensor
    return converted
