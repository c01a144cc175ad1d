"""irconstyle checkpoints loaded through spandrel (as ComfyUI and chaiNNer load them) restore like irconstyle."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import torch

import irconstyle
from conftest import TINY_MODELS, tiny_descriptor, tiny_model
from irconstyle.models.registry import MODELS, BuildConfig, architecture_name


def _stand_in_for_torchvision() -> None:
    """spandrel imports ``torchvision.transforms.functional`` for two architectures of its own (LaMa,
    RestoreFormer) that these tests never run. PyPI's torchvision is built for CUDA torch and does not load
    next to the CPU torch of CI, which installs spandrel without it; this stand-in satisfies the import and
    raises if anything calls it."""
    functional = types.ModuleType("torchvision.transforms.functional")

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision is not installed; this test environment provides only a stand-in")

    functional.InterpolationMode = types.SimpleNamespace(BILINEAR="bilinear", NEAREST="nearest", BICUBIC="bicubic")
    functional.rotate = functional.normalize = unavailable
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    package = types.ModuleType("torchvision")
    package.transforms = transforms
    sys.modules.update({
        "torchvision": package, "torchvision.transforms": transforms, "torchvision.transforms.functional": functional,
    })


if importlib.util.find_spec("spandrel") is None:
    pytest.skip("spandrel is not installed (pip install 'irconstyle[export]')", allow_module_level=True)
if importlib.util.find_spec("torchvision") is None:
    _stand_in_for_torchvision()
    import spandrel

    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        del sys.modules[name]  # only spandrel's import sees it (torch.onnx, for one, probes for torchvision)
import spandrel  # noqa: E402

import irconstyle.spandrel  # noqa: E402

# Our architecture's spandrel id for each restoration family.
IDS = {
    "constyle_nafnet": "irconstyle.ConStyleNAFNet", "constyle_restormer": "irconstyle.ConStyleRestormer",
    "constyle_maxim": "irconstyle.ConStyleMaxim", "constyle_kbnet": "irconstyle.ConStyleKBNet",
    "constyle_uformer": "irconstyle.ConStyleUformer", "nafnet": "irconstyle.NAFNet",
    "restormer": "irconstyle.Restormer", "maxim": "irconstyle.Maxim", "maxim_multistage": "irconstyle.MaximMultiStage",
    "kbnet": "irconstyle.KBNet", "uformer": "irconstyle.Uformer",
}
OUR_IDS = set(IDS.values())


@pytest.fixture(scope="module", autouse=True)
def registered():
    irconstyle.spandrel.register()


def _detected_by(state: dict) -> list[str]:
    return [support.architecture.id for support in spandrel.MAIN_REGISTRY.architectures("detection")
            if support.detect(state)]


def test_every_registered_restorer_has_a_spandrel_architecture():
    restorers = {name for name, entry in MODELS.items() if entry.kind == "restorer"}  # spandrel loads no classifier
    assert {architecture.model_name: architecture.id for architecture in irconstyle.spandrel.ARCHITECTURES} == IDS
    assert set(IDS) == restorers == set(TINY_MODELS)


def test_register_is_idempotent_and_puts_ours_first():
    before = len(spandrel.MAIN_REGISTRY)
    assert irconstyle.spandrel.register() == []
    assert len(spandrel.MAIN_REGISTRY) == before
    order = [support.architecture.id for support in spandrel.MAIN_REGISTRY.architectures("detection")]
    assert set(order[: len(OUR_IDS)]) == OUR_IDS
    fresh = spandrel.ArchRegistry()
    assert set(irconstyle.spandrel.register(fresh)) == OUR_IDS and len(fresh) == len(OUR_IDS)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_spandrel_loads_each_family_and_restores_like_irconstyle(name, tmp_path):
    descriptor = tiny_descriptor(name)
    model = descriptor.model
    path = tmp_path / f"{name}.safetensors"
    irconstyle.save(descriptor, path)

    # exactly its own architecture claims the state dict, among all of ours and spandrel's
    assert _detected_by(model.state_dict()) == [IDS[name]]
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    assert descriptor.architecture.id == IDS[name]
    assert type(descriptor.model) is type(model)
    assert descriptor.purpose == "Restoration" and descriptor.scale == 1 and descriptor.input_channels == 3

    image = torch.rand(1, 3, 21, 27)  # a multiple of none of the size multiples: the models' own padding runs
    with torch.no_grad():
        expected = model(image).clamp(0, 1)
    # the same modules on the same weights, the same operations: equal up to nothing
    torch.testing.assert_close(descriptor(image), expected, rtol=0, atol=0)
    assert irconstyle.load(path).build_config.architecture == architecture_name(descriptor.model) == name


# Arguments that the tensors do not fix: Uformer's img_size (detection's rule picks one of the sizes that build
# the same tensors) and the heads of a stage without blocks (they own no weights).
UNREAD = {"uformer": ("img_size", "heads"), "constyle_uformer": ("img_size", "heads")}


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_hyperparameters_read_from_shapes_rebuild_the_same_architecture(name):
    model = tiny_model(name)
    descriptor = spandrel.ModelLoader().load_from_state_dict(model.state_dict())
    (architecture,) = [a for a in irconstyle.spandrel.ARCHITECTURES if a.id == descriptor.architecture.id]
    rebuilt = BuildConfig.create(name, **architecture.hyperparameters(model.state_dict()))
    unread = UNREAD.get(name, ())
    assert rebuilt.canonical().without(*unread) == BuildConfig.create(name, **TINY_MODELS[name]).canonical().without(
        *unread)


def test_constyle_nafnet_and_our_nafnet_are_not_taken_for_spandrels_nafnet():
    from spandrel.architectures.NAFNet import NAFNet as SpandrelNAFNet

    constyle = tiny_model("constyle_nafnet").state_dict()
    plain = tiny_model("nafnet").state_dict()
    theirs = SpandrelNAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
    assert _detected_by(constyle) == ["irconstyle.ConStyleNAFNet"]
    assert _detected_by(plain) == ["irconstyle.NAFNet"]
    assert _detected_by(theirs.state_dict()) == ["NAFNet"]  # and spandrel's NAFNet stays spandrel's
    assert spandrel.ModelLoader().load_from_state_dict(theirs.state_dict()).architecture.id == "NAFNet"


def test_training_checkpoint_with_the_momentum_encoder_loads():
    model = irconstyle.build_model("constyle_nafnet", **TINY_MODELS["constyle_nafnet"], contrastive=True,
                                   constyle_options={"queue_size": 16}).eval()
    descriptor = spandrel.ModelLoader().load_from_state_dict(model.state_dict())
    assert descriptor.architecture.id == "irconstyle.ConStyleNAFNet"
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(descriptor(image), model(image).clamp(0, 1), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["nafnet", "restormer", "maxim", "kbnet", "uformer"])
def test_bfloat16_where_declared(name):
    descriptor = spandrel.ModelLoader().load_from_state_dict(tiny_model(name).state_dict())
    assert descriptor.supports_bfloat16
    image = torch.rand(1, 3, 16, 16)
    reference = descriptor(image)
    restored = descriptor.bfloat16()(image.bfloat16())
    assert restored.dtype == torch.bfloat16
    # bf16 keeps 8 significant bits (relative rounding 2^-9 per operation): a few hundredths after a small network
    assert (restored.float() - reference).abs().max().item() < 0.05


def test_the_authors_kbnet_and_uformer_stay_spandrels(reference2_dir, manifest2):
    """spandrel's own KBNet and Uformer load the authors' layout; ours claim only our layout."""
    from irconstyle.models.detection import unwrap_state_dict

    for family in ("KBNet", "Uformer"):
        state = unwrap_state_dict(torch.load(reference2_dir / manifest2[family]["checkpoint"], weights_only=True))
        assert _detected_by(state) == [family]
