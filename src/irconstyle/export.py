"""Exporting a restoration model to ONNX or TorchScript, for any image size.

The exported graph is the model's whole ``forward``: the ConStyle encoder of the ConStyle variants, the padding
to the architecture's size multiple and the crop back, so it takes any batch, height and width from a smallest
side up (:attr:`ExportResult.minimum_side`). ONNX goes through ``torch.export`` (``torch.onnx.export(...,
dynamo=True)``): height and width stay symbolic, and a shape-dependent branch fails the export instead of being
frozen into the graph.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from irconstyle.atomic import atomic_write
from irconstyle.models.maxim import MaximMultiStage
from irconstyle.models.nafnet import NAFNet
from irconstyle.models.registry import architecture_name
from irconstyle.zoo.descriptor import describe

# No torch.export (.pt2) format: its programs keep guards from memory-layout decisions (is a padded map
# contiguous?) that reject every size needing no padding; ONNX has no strides, so the same capture serves all.
FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 18  # the first opset whose Resize antialiases, as MAXIM's downscaling does
INPUT_NAME, OUTPUT_NAME = "image", "restored"


class ExportError(RuntimeError):
    """A model cannot be exported to the requested format."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote."""

    path: Path
    format: str
    architecture: str
    size_multiple: int
    minimum_side: int  # the smallest height and width the graph takes


def architecture_of(model: nn.Module) -> str:
    """The registry name of a model's architecture (its class name for a module from elsewhere)."""
    return architecture_name(model) or type(model).__name__


def size_multiple_of(model: nn.Module) -> int:
    """The sides the model pads its input to (its descriptor's size multiple)."""
    return describe(model).size_multiple


def minimum_side(model: nn.Module) -> int:
    """The smallest height and width a traced graph takes (an ONNX export reports the bound torch.export proves,
    which can be one more).

    NAFNet zero-pads and MAXIM multi-stage pads by index (reflecting as often as needed), so they take any size;
    the other models reflect-pad to their size multiple, which needs sides of at least that multiple.
    """
    if isinstance(model, NAFNet):
        return 1
    if isinstance(model, MaximMultiStage):
        return 2  # a one-pixel side would take a special case of the reflection indices
    return size_multiple_of(model)


def example_input(model: nn.Module) -> torch.Tensor:
    """The image traced for export: sides that are not multiples of the size multiple, so that the padding runs."""
    multiple = size_multiple_of(model)
    side = max(minimum_side(model), 2 * multiple) + 3
    return torch.rand(2, 3, side, side + 2, generator=torch.Generator().manual_seed(0))


def _exported_program(model: nn.Module) -> torch.export.ExportedProgram:
    """The model captured by ``torch.export`` with symbolic batch, height and width.

    ``Dim.DYNAMIC`` lets torch.export infer the valid ranges (padding by reflection bounds the sides from below)
    and still fails where a size would be frozen to the traced one.
    """
    dynamic = torch.export.Dim.DYNAMIC
    name = _forward_parameters(model)[0]
    try:
        with torch.no_grad():
            return torch.export.export(
                model,
                (example_input(model),),
                dynamic_shapes={name: {0: dynamic, 2: dynamic, 3: dynamic}},
                strict=False,
            )
    except Exception as error:  # torch.export raises many types; each means "this graph cannot be captured"
        message = f"{architecture_of(model)}: torch.export cannot capture the model ({_first_line(error)})"
        raise ExportError(message) from None


def _smallest_side(program: torch.export.ExportedProgram) -> int:
    """The smallest height and width that torch.export found the graph valid for (its inferred ranges)."""
    image = [node for node in program.graph.nodes if node.op == "placeholder"][-1].meta["val"]
    lowest = 1
    for side in image.shape[2:]:
        if isinstance(side, torch.SymInt):
            lowest = max(lowest, int(program.range_constraints[side.node.expr].lower))
    return lowest


def _forward_parameters(model: nn.Module) -> list[str]:
    import inspect

    return list(inspect.signature(model.forward).parameters)


def export_model(model: nn.Module, path: str | os.PathLike, *, format: str = "onnx") -> ExportResult:
    """Write ``model`` (in eval mode, on the CPU) to ``path`` in ``format`` (see :data:`FORMATS`), atomically.

    ``onnx``: an ONNX graph (opset :data:`ONNX_OPSET`) with input ``image`` and output ``restored``, both
    B×3×H×W float32 in [0, 1] (the output is not clamped). ``torchscript``: a traced TorchScript module
    (``torch.jit.load``).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = Path(path)
    model = model.cpu().eval()
    smallest = minimum_side(model)
    if format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            with torch.no_grad():
                traced = torch.jit.trace(model, (example_input(model),), check_trace=False)
        with atomic_write(path, suffix=SUFFIXES[format]) as temporary:
            traced.save(str(temporary))
    else:
        program = _exported_program(model)
        smallest = _smallest_side(program)
        _write_onnx(model, program, path)
    return ExportResult(path, format, architecture_of(model), size_multiple_of(model), smallest)


def _write_onnx(model: nn.Module, program: torch.export.ExportedProgram, path: Path) -> None:
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's translator)
    except ImportError:
        raise ExportError(
            "ONNX export needs the onnx and onnxscript packages: pip install 'irconstyle[export]'"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # optimize=False: onnxruntime optimises a graph as it loads it, and onnxscript's optimiser is very
            # slow on a MAXIM graph's thousands of nodes
            onnx_program = torch.onnx.export(
                program, dynamo=True, opset_version=ONNX_OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                optimize=False, verbose=False,
            )
    except Exception as error:  # the translator raises many types; each means "no ONNX graph for this model"
        raise ExportError(f"{architecture_of(model)}: no ONNX translation ({_first_line(error)})") from None
    with atomic_write(path, suffix=SUFFIXES["onnx"]) as temporary:
        onnx_program.save(str(temporary))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
