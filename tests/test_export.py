"""Every registered architecture builds, runs, saves, reloads and exports (ONNX in onnxruntime, TorchScript,
torch.export's .pt2), and the reloaded export computes like the PyTorch model at sizes other than the traced one.

Tolerance: the restorers' outputs lie in [0, 1] and everything computes in float32 (unit roundoff 6e-8); the
runtimes differ from PyTorch only in kernel choice, operator decomposition and summation order, which moves a
small network's output by about 1e-7 and a paper-size one's by at most about 1e-5. MAX_DIFFERENCE = 1e-4 sits
above that and 40× below one 8-bit grey level (1/255 = 3.9e-3), so a wrong padding, crop or resize (errors of
1e-2 and more) fails. A classifier's logits are not bounded by 1: the same relative bound applies to their
largest magnitude.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

import irconstyle
from irconstyle.cli import main
from irconstyle.export import (
    FORMATS,
    ExportError,
    example_input,
    export_model,
    minimum_side,
    read_export_metadata,
)
from irconstyle.models.registry import MODELS

MAX_DIFFERENCE = 1e-4
HAS_ONNX = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason="onnx, onnxscript and onnxruntime are not installed (pip install 'irconstyle[export]')"
)
# torch.export's capture takes seconds for the classifiers and tens of seconds for the restorers (minutes for the
# MAXIM families' thousands of nodes): the default suite exports the classifiers to every format, ConStyleNAFNet
# to ONNX (encoder, reflection padding), NAFNet to ONNX (zero padding, in the CLI test) and to .pt2 (sides in
# multiples), and traces the restorers other than the MAXIM families to TorchScript. The rest is marked slow.
FAST = {
    *((name, "torchscript") for name in MODELS if "maxim" not in name),
    *((name, format) for name in MODELS if MODELS[name].kind == "classifier" for format in FORMATS),
    ("constyle_nafnet", "onnx"),
    ("nafnet", "pt2"),
}


def _cases():
    for name in sorted(MODELS):
        for format in FORMATS:
            marks = [] if (name, format) in FAST else [pytest.mark.slow]
            if format == "onnx":
                marks.append(needs_onnx)
            yield pytest.param(name, format, marks=marks, id=f"{name}-{format}")


def _perturbed(descriptor: irconstyle.ModelDescriptor) -> irconstyle.ModelDescriptor:
    """Seeded noise on every parameter, so that no block is an identity (fresh NAFBlocks are) and a weight lost
    on the way through a file or an export changes the output."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in descriptor.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator), alpha=0.05)
    return descriptor.eval()


def _sizes(descriptor: irconstyle.ModelDescriptor, format: str, smallest: int) -> list[tuple[int, int, int]]:
    """(batch, height, width) to check, none the traced size. ONNX and TorchScript: a multiple of the size
    multiple (no padding), sides that are not (padding on both axes) and the smallest side the export reports.
    .pt2: multiples of the size multiple from the smallest side it serves."""
    multiple = descriptor.size_multiple
    if format == "pt2":
        return [(1, smallest, smallest + multiple), (3, smallest + 2 * multiple, smallest)]
    traced = tuple(example_input(descriptor).shape[-2:])
    sizes = [(1, 2 * multiple, 3 * multiple), (2, multiple + 5, 2 * multiple + 3), (1, smallest, multiple + 1)]
    assert all(size[1:] != traced for size in sizes)
    return sizes


def _runner(path, format: str, output_name: str):
    if format == "torchscript":
        loaded = torch.jit.load(str(path))
        return lambda image: loaded(image).numpy()
    if format == "pt2":
        program = torch.export.load(str(path)).module()
        return lambda image: program(image).numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == [output_name]
    return lambda image: session.run(None, {"image": image.numpy()})[0]


def _check_against_pytorch(descriptor, run, sizes) -> None:
    generator = torch.Generator().manual_seed(3)
    for batch, height, width in sizes:
        image = torch.rand(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = descriptor(image).numpy()
        with torch.no_grad():
            restored = run(image)
        assert restored.shape == expected.shape
        bound = MAX_DIFFERENCE * max(1.0, float(np.abs(expected).max()))
        assert np.abs(restored - expected).max() <= bound, (batch, height, width)


@pytest.mark.parametrize(("name", "format"), _cases())
def test_every_architecture_builds_runs_saves_reloads_exports_and_reloads_the_export(name, format, tmp_path):
    entry = MODELS[name]
    assert entry.small is not None, f"MODELS[{name!r}] has no small configuration for the tests"
    built = _perturbed(irconstyle.build(name, **entry.small))
    multiple = built.size_multiple
    if built.restores:  # facts a file and an export must carry over
        built = built.with_facts(task="denoise", native_tile=4 * multiple, licence="MIT")
    image = torch.rand(2, 3, multiple + 3, 2 * multiple + 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        output = built(image)
    if built.restores:
        assert output.shape == image.shape  # padded to the size multiple and cropped back
    else:
        assert output.ndim == 2 and output.shape[0] == 2 and output.shape[1] > 1  # one row of logits per image

    path = tmp_path / f"{name}.safetensors"
    irconstyle.save(built, path)
    loaded = irconstyle.load(path)
    assert (loaded.build_config, loaded.native_tile, loaded.task) == (built.build_config, built.native_tile, built.task)
    with torch.no_grad():
        assert torch.equal(loaded(image), output)

    exported = tmp_path / f"{name}.{format}"
    result = export_model(loaded, exported, format=format)
    assert (result.architecture, result.size_multiple, result.path) == (name, multiple, exported)
    assert result.side_step == (multiple if format == "pt2" else 1)
    if format == "onnx":
        assert minimum_side(loaded) <= result.minimum_side <= minimum_side(loaded) + 1  # as torch.export infers it
    metadata = read_export_metadata(exported)
    assert metadata["architecture"] == loaded.build_config.to_dict()
    assert (metadata["size_multiple"], metadata.get("native_tile"), metadata.get("task")) == (
        multiple, loaded.native_tile, loaded.task)
    assert (metadata["minimum_side"], metadata["side_step"]) == (result.minimum_side, result.side_step)

    run = _runner(exported, format, "restored" if loaded.restores else "logits")
    _check_against_pytorch(loaded, run, _sizes(loaded, format, result.minimum_side))
    if format == "pt2" and multiple > 1:  # sides off the multiple are refused, not computed wrongly
        with pytest.raises((AssertionError, RuntimeError), match="Guard failed"):
            run(torch.rand(1, 3, result.minimum_side + 1, result.minimum_side))


@needs_onnx
def test_cli_exports_a_model_file_with_its_descriptor_and_reports_bad_input(tmp_path, capsys):
    descriptor = _perturbed(irconstyle.build("nafnet", **MODELS["nafnet"].small)).with_facts(
        task="dehaze", native_tile=64, licence="CC-BY-4.0")
    source = tmp_path / "tiny.safetensors"
    irconstyle.save(descriptor, source)
    output = tmp_path / "out" / "tiny.onnx"
    assert main(["export", str(source), str(output)]) == 0
    assert "nafnet as onnx" in capsys.readouterr().out
    metadata = read_export_metadata(output)  # what the model file's descriptor says
    assert (metadata["task"], metadata["native_tile"], metadata["licence"]) == ("dehaze", 64, "CC-BY-4.0")
    _check_against_pytorch(descriptor, _runner(output, "onnx", "restored"), [(1, 1, 5), (2, 13, 17)])
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temporary left by the atomic write

    assert main(["export", str(tmp_path / "missing.safetensors"), str(tmp_path / "x.onnx")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("irconstyle export: ") and "missing.safetensors" in error and len(error.splitlines()) == 1


def test_a_failing_export_leaves_no_file_and_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise RuntimeError("Could not guard on data-dependent expression\nmore detail")

    monkeypatch.setattr(torch.export, "export", refuse)
    descriptor = irconstyle.build("nafnet", **MODELS["nafnet"].small)
    for format in ("onnx", "pt2"):
        target = tmp_path / "out" / f"model.{format}"
        with pytest.raises(ExportError, match=r"^nafnet: torch.export cannot capture the model \(Could not guard"):
            export_model(descriptor, target, format=format)
    irconstyle.save(descriptor, tmp_path / "nafnet.safetensors")
    assert main(["export", str(tmp_path / "nafnet.safetensors"), "--format", "pt2", str(tmp_path / "out" / "x")]) == 2
    assert capsys.readouterr().err == (
        "irconstyle export: nafnet: torch.export cannot capture the model (Could not guard on data-dependent "
        "expression)\n")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


class _NotForOneImage(nn.Module):
    """A module from elsewhere that branches on batch × height against the width: its program keeps the traced
    branch's guard, which one square image fails."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image * 0.5 if image.shape[0] * image.shape[2] > image.shape[3] else image


def test_a_program_that_does_not_serve_one_image_is_refused(tmp_path):
    with pytest.raises(ExportError, match=r"^_NotForOneImage: the torch.export program does not serve one image "):
        export_model(_NotForOneImage(), tmp_path / "batch.pt2", format="pt2")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="format must be one of onnx, torchscript, pt2, got 'tflite'"):
        export_model(irconstyle.build("nafnet", **MODELS["nafnet"].small), tmp_path / "x.bin", format="tflite")


@needs_onnx
@pytest.mark.slow
def test_converted_maxim_exports_to_onnx_and_restores_a_real_photo_alike(tmp_path):
    from convert.test_maxim_packages import converted
    from irconstyle.data.io import image_to_tensor, read_image

    model = converted("deraining").eval()  # MAXIM-2S, Google's weights
    result = export_model(model, tmp_path / "maxim-derain.onnx", format="onnx")
    assert read_export_metadata(result.path)["task"] == "derain"
    run = _runner(result.path, "onnx", "restored")
    import tarfile

    from convert.test_maxim_packages import package_path

    with tarfile.open(package_path("deraining")) as archive:
        (tmp_path / "fixture.png").write_bytes(archive.extractfile("package/assets/fixture.png").read())
    photo = image_to_tensor(read_image(tmp_path / "fixture.png"))[None]
    for crop in (photo[..., :131, :197], photo):  # odd sides (Google's centred padding) and the whole fixture
        with torch.no_grad():
            expected = model(crop).numpy()
        assert np.abs(run(crop) - expected).max() <= MAX_DIFFERENCE
