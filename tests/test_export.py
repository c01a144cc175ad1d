"""Exported graphs (ONNX in onnxruntime, TorchScript) restore like the PyTorch model at any size.

Tolerance: the outputs lie in [0, 1] and everything computes in float32 (unit roundoff 6e-8); the runtimes differ
from PyTorch only in kernel choice and summation order, which moves a small network's output by about 1e-7
and a paper-size one's by at most about 1e-5. MAX_DIFFERENCE = 1e-4 sits above that and 40× below one 8-bit
grey level (1/255 = 3.9e-3), so a wrong padding, crop or resize (errors of 1e-2 and more) fails.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import irconstyle
from conftest import TINY_MODELS, tiny_descriptor, tiny_model
from irconstyle.cli import main
from irconstyle.export import ExportError, example_input, export_model, minimum_side

MAX_DIFFERENCE = 1e-4
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None,
    reason="onnx, onnxscript and onnxruntime are not installed (pip install 'irconstyle[export]')",
)
# An ONNX export takes tens of seconds (minutes for the MAXIM families' thousands of nodes): the default suite
# exports ConStyleNAFNet here (encoder, reflection padding) and NAFNet in the CLI test (zero padding), and traces
# the non-MAXIM families to TorchScript.
SLOW_ONNX = {"constyle_maxim", "maxim", "maxim_multistage", "constyle_restormer", "restormer", "nafnet"}


def _sizes(model: torch.nn.Module, smallest: int) -> list[tuple[int, int, int]]:
    """(batch, height, width) to check, none the traced size: a multiple of the size multiple (no padding), sides
    that are not (padding on both axes), and the smallest side the export reports."""
    multiple = model.size_multiple
    traced = tuple(example_input(model).shape[-2:])
    sizes = [(1, 2 * multiple, 3 * multiple), (2, multiple + 5, 2 * multiple + 3),
             (1, smallest, multiple + 1)]
    assert all(size[1:] != traced for size in sizes)
    return sizes


def _check_against_pytorch(model: torch.nn.Module, run, smallest: int) -> None:
    for batch, height, width in _sizes(model, smallest):
        image = torch.rand(batch, 3, height, width)
        with torch.no_grad():
            expected = model(image).numpy()
        with torch.no_grad():
            restored = run(image)
        assert restored.shape == expected.shape
        assert np.abs(restored - expected).max() <= MAX_DIFFERENCE, (batch, height, width)


def _onnx_runner(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["restored"]
    return lambda image: session.run(None, {"image": image.numpy()})[0]


@needs_onnx
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ONNX else n for n in sorted(TINY_MODELS)]
)
def test_onnx_export_runs_in_onnxruntime_at_other_sizes(name, tmp_path):
    model = tiny_model(name)
    result = export_model(model, tmp_path / f"{name}.onnx", format="onnx")
    assert result.architecture == name and result.path.is_file()
    assert minimum_side(model) <= result.minimum_side <= minimum_side(model) + 1  # as torch.export infers it
    _check_against_pytorch(model, _onnx_runner(result.path), result.minimum_side)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if "maxim" in n else n for n in sorted(TINY_MODELS)]
)
def test_torchscript_export_generalises_to_other_sizes(name, tmp_path):
    model = tiny_model(name)
    result = export_model(model, tmp_path / f"{name}.pt", format="torchscript")
    loaded = torch.jit.load(str(result.path))
    _check_against_pytorch(model, lambda image: loaded(image).numpy(), result.minimum_side)


@needs_onnx
def test_cli_exports_a_model_file_and_reports_bad_input(tmp_path, capsys):
    source = tmp_path / "tiny.safetensors"
    irconstyle.save(tiny_descriptor("nafnet"), source)
    output = tmp_path / "out" / "tiny.onnx"
    assert main(["export", str(source), "--format", "onnx", str(output)]) == 0
    assert "nafnet as onnx" in capsys.readouterr().out
    _check_against_pytorch(irconstyle.load_model(source), _onnx_runner(output), 1)
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temporary left by the atomic write

    assert main(["export", str(tmp_path / "missing.safetensors"), str(tmp_path / "x.onnx")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("irconstyle export: ") and "missing.safetensors" in error and len(error.splitlines()) == 1


def test_a_failing_export_leaves_no_file_and_names_the_model(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Could not guard on data-dependent expression")

    monkeypatch.setattr(torch.export, "export", refuse)
    target = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"^nafnet: torch.export cannot capture the model \(Could not guard"):
        export_model(tiny_model("nafnet"), target, format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="format must be one of onnx, torchscript, got 'tflite'"):
        export_model(tiny_model("nafnet"), tmp_path / "x.bin", format="tflite")


@needs_onnx
@pytest.mark.slow
def test_converted_maxim_exports_to_onnx_and_restores_a_real_photo_alike(tmp_path):
    from convert.test_maxim_packages import converted
    from irconstyle.data.io import image_to_tensor, read_image

    model = converted("deraining").model.eval()  # MAXIM-2S, Google's weights
    result = export_model(model, tmp_path / "maxim-derain.onnx", format="onnx")
    run = _onnx_runner(result.path)
    import tarfile

    from convert.test_maxim_packages import package_path

    with tarfile.open(package_path("deraining")) as archive:
        (tmp_path / "fixture.png").write_bytes(archive.extractfile("package/assets/fixture.png").read())
    photo = image_to_tensor(read_image(tmp_path / "fixture.png"))[None]
    for crop in (photo[..., :131, :197], photo):  # odd sides (Google's centred padding) and the whole fixture
        with torch.no_grad():
            expected = model(crop).numpy()
        assert np.abs(run(crop) - expected).max() <= MAX_DIFFERENCE
