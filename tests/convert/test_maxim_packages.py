"""Google's MAXIM npm packages: conversion, agreement with TensorFlow, installation and bad packages.

The tarballs come from the npm registry (``scripts/test.sh`` runs ``npm pack`` into a cache); the TensorFlow
outputs they are compared with are fixtures made by ``scripts/maxim_tensorflow_reference.py``
(``tests/assets/maxim/README.md``).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import converted_package, package_path
from irconstyle.convert import PackageError, convert_maxim_package, read_graph_model
from irconstyle.data.io import read_image

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "maxim"
PACKAGES = {  # package task -> (stages, our task name)
    "deblurring": (3, "deblur"),
    "denoising": (3, "denoise"),
    "deraining": (2, "derain"),
    "dehazing-indoor": (2, "dehaze"),
    "dehazing-outdoor": (2, "dehaze"),
    "enhancement": (2, "enhance"),
    "retouching": (2, "retouch"),
}
MIN_PSNR_AGAINST_TENSORFLOW = 50.0  # dB on outputs clipped to [0, 1]: the bar the port is held to


def converted(task: str):
    return converted_package(task)


def _as_input(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_image(path).astype(np.float32) / 255).permute(2, 0, 1)[None]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("task", sorted(PACKAGES))
def test_every_package_converts_and_matches_tensorflow(task):
    result = converted(task)
    stages, our_task = PACKAGES[task]
    model = result.model
    assert result.build_config.options["stages"] == stages
    assert result.task == our_task and result.size_multiple == 64
    assert "Apache-2.0" in result.licence
    cases = [
        (ASSETS / task / "fixture_input.png", ASSETS / task / "fixture_tf.png"),
        (ASSETS / "chelsea_128x192.png", ASSETS / task / "chelsea_128x192_tf.png"),
        (ASSETS / "chelsea_97x131.png", ASSETS / task / "chelsea_97x131_tf.png"),  # padded as Google pads
    ]
    with torch.inference_mode():
        for source, reference in cases:
            ours = model(_as_input(source))[0].clamp(0, 1).permute(1, 2, 0).numpy()
            theirs = read_image(reference).astype(np.float64) / 65535
            assert ours.shape == theirs.shape
            assert _psnr(ours, theirs) >= MIN_PSNR_AGAINST_TENSORFLOW, f"{task} on {source.name}"


def test_the_graph_maps_every_tensor_it_holds(tmp_path):
    """Strictness: a parameter tensor the model has no place for is an error that names it."""
    graph = read_graph_model(package_path("deraining"))
    name = next(n for n in graph.weights if n.endswith("stage_0_input_conv_0/Reshape"))
    extra = name.replace("stage_0_input_conv_0", "stage_0_encoder_block_0/Conv_7")
    graph.weights[extra] = graph.weights[name]
    graph.nodes[extra] = {"name": extra, "op": "Const"}
    consumer = dict(graph.nodes[graph.consumers(name)[0]])
    consumer["name"] = consumer["name"].replace("stage_0_input_conv_0", "stage_0_encoder_block_0/Conv_7")
    consumer["input"] = [extra]
    graph.nodes[consumer["name"]] = consumer
    graph._consumers = None
    from irconstyle.convert.maxim import convert_maxim_graph

    with pytest.raises(PackageError, match="stage_0_encoder_block_0/Conv_7"):
        convert_maxim_graph(graph)


def test_converted_models_save_install_and_restore_by_name(tmp_path, monkeypatch):
    import irconstyle
    from irconstyle.pretrained import install, installed_models

    monkeypatch.setenv("IRCONSTYLE_HOME", str(tmp_path))
    entry = install(package_path("deraining"))
    assert entry.name == "maxim-derain" and entry.task == "derain"
    assert [model.name for model in installed_models()] == ["maxim-derain"]
    image = (read_image(ASSETS / "chelsea_97x131.png").astype(np.float32) / 255)
    restored = irconstyle.restore(image, model="maxim-derain", tile=None)
    direct = irconstyle.load_model(entry.path)
    with torch.inference_mode():
        expected = direct(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).clamp(0, 1).numpy()
    np.testing.assert_array_equal(restored, expected)


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def unpacked_deraining(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deraining")
    with tarfile.open(package_path("deraining"), "r:gz") as archive:
        archive.extractall(folder, filter="data")
    return folder / "package"


def _copy_package(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("dist", "assets"))
    return target


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated", "not a readable npm tarball"),
        ("other package", "not a TF.js graph-model package"),
        ("missing shard", "weight shard models/group1-shard3of14.bin is missing"),
        ("short shard", "weight shard models/group1-shard3of14.bin .* is short"),
    ],
)
def test_bad_packages_are_refused_in_one_line_and_nothing_is_written(
    kind, message, tmp_path, unpacked_deraining, capsys
):
    from irconstyle.cli import main

    if kind == "truncated":
        source = tmp_path / "truncated.tgz"
        source.write_bytes(package_path("deraining").read_bytes()[:3_000_000])
    elif kind == "other package":
        package = json.dumps({"name": "is-number", "version": "7.0.0"}).encode()
        source = _tarball(tmp_path / "is-number-7.0.0.tgz", {"package.json": package, "index.js": b"module.exports=1"})
    else:
        source = _copy_package(unpacked_deraining, tmp_path / "package")
        shard = source / "models" / "group1-shard3of14.bin"
        if kind == "missing shard":
            shard.unlink()
        else:
            shard.write_bytes(shard.read_bytes()[:1000])
    output = tmp_path / "out.safetensors"
    assert main(["convert", str(source), str(output)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(source) in error
    assert __import__("re").search(message, error), error
    assert not output.exists()


def test_a_graph_that_is_not_maxim_is_refused(tmp_path, unpacked_deraining):
    source = _copy_package(unpacked_deraining, tmp_path / "package")
    model_json = json.loads((source / "models" / "model.json").read_text())
    model_json["modelTopology"]["node"] = [n for n in model_json["modelTopology"]["node"] if n["op"] == "Placeholder"]
    model_json["weightsManifest"] = []
    (source / "models" / "model.json").write_text(json.dumps(model_json))
    with pytest.raises(PackageError, match="not a MAXIM graph"):
        convert_maxim_package(source)
