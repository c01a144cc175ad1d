"""Exporting a model to ONNX, TorchScript or a ``torch.export`` program (``.pt2``), for many image sizes.

The exported graph is the model's whole ``forward``: the ConStyle encoder of the ConStyle variants, and for ONNX
and TorchScript the padding to the architecture's size multiple and the crop back, so it takes any batch, height
and width from a smallest side up (:attr:`ExportResult.minimum_side`). ONNX goes through ``torch.export``
(``torch.onnx.export(..., dynamo=True)``): height and width stay symbolic, and a shape-dependent branch fails
the export instead of being frozen into the graph. A ``.pt2`` program keeps the guards ``torch.export`` proved,
so it is captured for sides that are multiples of the size multiple (where the padding is empty): the caller
pads, as :func:`irconstyle.inference.restore_tensor` does.

Every export records what the model is (:func:`export_metadata`: architecture, task, size multiple, native
tile, licence …) where its format keeps metadata; :func:`read_export_metadata` reads it back.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from irconstyle.atomic import atomic_write, check_writable
from irconstyle.models.maxim import MaximMultiStage
from irconstyle.models.nafnet import NAFNet
from irconstyle.zoo.descriptor import ModelDescriptor, describe

FORMATS = ("onnx", "torchscript", "pt2")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}
ONNX_OPSET = 18  # the first opset whose Resize antialiases, as MAXIM's downscaling does
INPUT_NAME = "image"
OUTPUT_NAMES = {True: "restored", False: "logits"}  # by whether the model restores images
METADATA_KEY = "irconstyle"  # the ONNX metadata entry; TorchScript and .pt2 files hold "irconstyle.json"
_EXTRA_FILE = f"{METADATA_KEY}.json"
# Traced sides are at least this, so that no map inside is a single pixel (ConStyle's encoder divides the sides
# by 16): torch.export would specialise a side of 1.
_TRACED_SIDE = 32


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
    side_step: int  # the sides it takes are multiples of this (the size multiple for .pt2, else 1)


def size_multiple_of(model: nn.Module | ModelDescriptor) -> int:
    """The sides the model pads its input to (its descriptor's size multiple)."""
    return describe(model).size_multiple


def minimum_side(model: nn.Module | ModelDescriptor) -> int:
    """The smallest height and width a traced graph takes (an ONNX export reports the bound torch.export proves,
    which can be one more).

    NAFNet zero-pads and MAXIM multi-stage pads by index (reflecting as often as needed), so they take any size;
    the other restorers reflect-pad to their size multiple, which needs sides of at least that multiple; the
    classifiers pool, and take any size.
    """
    descriptor = describe(model)
    if isinstance(descriptor.model, NAFNet):
        return 1
    if isinstance(descriptor.model, MaximMultiStage):
        return 2  # a one-pixel side would take a special case of the reflection indices
    return descriptor.size_multiple


def example_input(model: nn.Module | ModelDescriptor) -> torch.Tensor:
    """The image traced for ONNX and TorchScript: sides that are not multiples of the size multiple, so that the
    padding runs."""
    multiple = size_multiple_of(model)
    side = max(minimum_side(model), 2 * multiple, _TRACED_SIDE) + 3
    return torch.rand(2, 3, side, side + 2, generator=torch.Generator().manual_seed(0))


def export_metadata(descriptor: ModelDescriptor, *, minimum_side: int, side_step: int) -> dict[str, Any]:
    """What an exported file records about its model: the build configuration, the descriptor's facts and the
    sizes the graph takes."""
    config = descriptor.build_config
    facts = {
        "architecture": config.to_dict() if config else {"name": descriptor.architecture},
        "name": descriptor.name, "task": descriptor.task, "size_multiple": descriptor.size_multiple,
        "native_tile": descriptor.native_tile, "precisions": list(descriptor.precisions),
        "licence": descriptor.licence, "source": descriptor.source, "training_data": descriptor.training_data,
        "minimum_side": minimum_side, "side_step": side_step,
        "input": INPUT_NAME, "output": OUTPUT_NAMES[descriptor.restores],
    }
    return {key: value for key, value in facts.items() if value not in (None, "")}


def read_export_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The :func:`export_metadata` an exported file records (its format told by its suffix)."""
    path = Path(path)
    if path.suffix == SUFFIXES["onnx"]:
        import onnx

        props = {entry.key: entry.value for entry in onnx.load(str(path), load_external_data=False).metadata_props}
        text = props.get(METADATA_KEY)
    else:
        extra = {_EXTRA_FILE: ""}
        if path.suffix == SUFFIXES["pt2"]:
            torch.export.load(str(path), extra_files=extra)
        else:
            torch.jit.load(str(path), _extra_files=extra)
        text = extra[_EXTRA_FILE]
    if not text:
        raise ExportError(f"{path}: no irconstyle metadata in it")
    return json.loads(text)


def _exported_program(model: nn.Module, architecture: str) -> torch.export.ExportedProgram:
    """The model captured by ``torch.export`` with symbolic batch, height and width (for ONNX).

    ``Dim.DYNAMIC`` lets torch.export infer the valid ranges (padding by reflection bounds the sides from below)
    and still fails where a size would be frozen to the traced one.
    """
    dynamic = torch.export.Dim.DYNAMIC
    return _capture(model, example_input(model), {0: dynamic, 2: dynamic, 3: dynamic}, architecture)


def _capture(model: nn.Module, image: torch.Tensor, dims: dict, architecture: str) -> torch.export.ExportedProgram:
    name = next(iter(inspect.signature(model.forward).parameters))
    try:
        with torch.no_grad():
            return torch.export.export(model, (image,), dynamic_shapes={name: dims}, strict=False)
    except Exception as error:  # torch.export raises many types; each means "this graph cannot be captured"
        raise ExportError(f"{architecture}: torch.export cannot capture the model ({_first_line(error)})") from None


def _smallest_side(program: torch.export.ExportedProgram) -> int:
    """The smallest height and width that torch.export found the graph valid for (its inferred ranges)."""
    image = [node for node in program.graph.nodes if node.op == "placeholder"][-1].meta["val"]
    lowest = 1
    for side in image.shape[2:]:
        if isinstance(side, torch.SymInt):
            lowest = max(lowest, int(program.range_constraints[side.node.expr].lower))
    return lowest


def export_model(model: nn.Module | ModelDescriptor, path: str | os.PathLike, *, format: str = "onnx") -> ExportResult:
    """Write ``model`` (in eval mode, on the CPU) to ``path`` in ``format`` (see :data:`FORMATS`), atomically,
    with its :func:`export_metadata`. ``model`` is best a descriptor (:func:`irconstyle.load`): a bare module's
    file records no task, native tile or licence.

    ``onnx``: an ONNX graph (opset :data:`ONNX_OPSET`) with input ``image``, B×3×H×W float32 in [0, 1], and
    output ``restored`` (not clamped), or ``logits`` for a classifier. ``torchscript``: a traced TorchScript
    module (``torch.jit.load``). ``pt2``: a ``torch.export`` program (``torch.export.load(path).module()``)
    whose height and width are multiples of the size multiple; the export checks that the saved program loads
    back and serves sizes other than the traced one, and raises :class:`ExportError` where it does not.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = check_writable(path)  # before a trace that can take minutes
    descriptor = describe(model)
    network = descriptor.model.cpu().eval()
    architecture, multiple = descriptor.architecture, descriptor.size_multiple
    if format == "pt2":
        smallest = _write_pt2(descriptor, path)
        step = multiple
    elif format == "torchscript":
        smallest, step = minimum_side(descriptor), 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            with torch.no_grad():
                traced = torch.jit.trace(network, (example_input(descriptor),), check_trace=False)
        metadata = export_metadata(descriptor, minimum_side=smallest, side_step=step)
        with atomic_write(path, suffix=SUFFIXES[format]) as temporary:
            torch.jit.save(traced, str(temporary), _extra_files={_EXTRA_FILE: json.dumps(metadata)})
    else:
        program = _exported_program(network, architecture)
        smallest, step = _smallest_side(program), 1
        _write_onnx(descriptor, program, path, export_metadata(descriptor, minimum_side=smallest, side_step=step))
    return ExportResult(path, format, architecture, multiple, smallest, step)


def _write_onnx(descriptor: ModelDescriptor, program: torch.export.ExportedProgram, path: Path,
                metadata: dict[str, Any]) -> None:
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
                program, dynamo=True, opset_version=ONNX_OPSET, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAMES[descriptor.restores]], optimize=False, verbose=False,
            )
    except Exception as error:  # the translator raises many types; each means "no ONNX graph for this model"
        raise ExportError(f"{descriptor.architecture}: no ONNX translation ({_first_line(error)})") from None
    onnx_program.model.metadata_props[METADATA_KEY] = json.dumps(metadata)
    with atomic_write(path, suffix=SUFFIXES["onnx"]) as temporary:
        onnx_program.save(str(temporary))


def _write_pt2(descriptor: ModelDescriptor, path: Path) -> int:
    """Capture, check, save and reload a ``.pt2`` program; returns the smallest side it serves.

    Height and width are symbolic multiples of the size multiple (sides that need no padding: a program keeps
    guards from the memory-layout decisions that padding makes). The program is run at batch 1 and square sides
    from one multiple up, neither of which was traced: the first that passes its guards is the smallest side,
    and none passing means the program is specialised to what was traced. The saved file must load back and
    serve that side too.
    """
    network, architecture, multiple = descriptor.model, descriptor.architecture, descriptor.size_multiple
    rows = max(2, -(-_TRACED_SIDE // multiple))
    image = torch.rand(2, 3, rows * multiple, (rows + 1) * multiple, generator=torch.Generator().manual_seed(0))
    if multiple == 1:
        dynamic = torch.export.Dim.DYNAMIC
        dims = {0: dynamic, 2: dynamic, 3: dynamic}
    else:
        dims = {0: torch.export.Dim("batch"), 2: multiple * torch.export.Dim("rows"),
                3: multiple * torch.export.Dim("cols")}
    program = _capture(network, image, dims, architecture)
    smallest = _smallest_served(program.module(), multiple, rows, architecture)
    metadata = export_metadata(descriptor, minimum_side=smallest, side_step=multiple)
    with atomic_write(path, suffix=SUFFIXES["pt2"]) as temporary:
        torch.export.save(program, temporary, extra_files={_EXTRA_FILE: json.dumps(metadata)})
        try:
            served = torch.export.load(temporary).module()
            with torch.no_grad():
                served(torch.rand(1, 3, smallest, smallest))
        except Exception as error:  # the deserialiser raises many types; each means "this file does not serve"
            raise ExportError(
                f"{architecture}: the saved torch.export program does not load back ({_first_line(error)})"
            ) from None
    return smallest


def _smallest_served(program: nn.Module, multiple: int, traced_rows: int, architecture: str) -> int:
    failure: BaseException | None = None
    for count in range(1, traced_rows + 2):
        side = count * multiple
        try:
            with torch.no_grad():
                program(torch.rand(1, 3, side, side))
            return side
        except Exception as error:  # a guard the program keeps (an AssertionError or a RuntimeError)
            failure = error
    raise ExportError(
        f"{architecture}: the torch.export program does not serve one image at any side up to the traced ones "
        f"({_first_line(failure)})"
    )


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
