"""The MAXIM family against the authors' published outputs, checkpoints layouts and shared primitives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import irconstyle
from irconstyle.models import official
from irconstyle.models.constyle import pad_to_multiple
from irconstyle.models.maxim import ConStyleMaxim, ConStyleMaximBody, Maxim, Partition, mix_positions, resize

ATOL = 1e-4

# The authors' constructor signatures with their default values (archs/ConStyle_Maxim_arch.py, Maxim_arch.py).
AUTHORS_DEFAULTS = {
    "ConStyleMaxim": {
        "features": 32, "bias": False, "bottom_blk_num": 2, "lrelu_slope": 0.2, "use_global_mlp": True,
        "high_res_stages": 2, "block_size_hr": (16, 16), "block_size_lr": (8, 8), "grid_size_hr": (16, 16),
        "grid_size_lr": (8, 8), "block_gmlp_factor": 2, "grid_gmlp_factor": 2, "input_proj_factor": 2,
        "channels_reduction": 4, "num_outputs": 3, "dropout_rate": 0.0, "Train": True,
    },
    "Maxim": {
        "features": 32, "depth": 3, "use_bias": True, "num_supervision_scales": 3, "lrelu_slope": 0.2,
        "use_global_mlp": True, "high_res_stages": 2, "block_size_hr": (16, 16), "block_size_lr": (8, 8),
        "grid_size_hr": (16, 16), "grid_size_lr": (8, 8), "block_gmlp_factor": 2, "grid_gmlp_factor": 2,
        "input_proj_factor": 2, "channels_reduction": 4, "num_outputs": 3, "dropout_rate": 0.0,
    },
}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These small models gain nothing from threads, and on a shared, loaded machine two OpenMP threads can be
    ten times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_small(name: str, reference_dir, manifest) -> tuple[nn.Module, dict[str, np.ndarray]]:
    entry = manifest[name]
    model = official.build(name, **entry["config"])
    irconstyle.load_checkpoint(model, reference_dir / entry["checkpoint"])
    return model.eval(), dict(np.load(reference_dir / entry["arrays"]))


def _assert_close(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    error = (actual - torch.from_numpy(expected)).abs().max().item()
    assert error <= ATOL, f"{what}: max abs error {error:.3g}"


@pytest.mark.parametrize("name", ["ConStyleMaxim", "Maxim"])
def test_small_checkpoint_reproduces_published_output(name, reference_dir, manifest):
    model, arrays = _load_small(name, reference_dir, manifest)
    image = torch.from_numpy(arrays["input"])
    with torch.no_grad():
        _assert_close(model(image), arrays["output"], f"{name} output")
        if name == "ConStyleMaxim":
            encoded = model.constyle(image)
            _assert_close(encoded.latent_z, arrays["latent_z"], "latent_z")
            _assert_close(encoded.latent_q, arrays["latent_q"], "latent_q")
            for index, feature in enumerate(encoded.features):
                _assert_close(feature, arrays[f"feature{index}"], f"feature{index}")


@pytest.mark.parametrize(
    ("name", "layout", "contrastive"),
    [("ConStyleMaxim", "train", True), ("ConStyleMaxim", "inference", False), ("Maxim", "train", None)],
)
def test_published_layout_maps_onto_full_size_model(name, layout, contrastive, state_dict_shapes):
    architecture = official.ARCHITECTURES[name]
    model = irconstyle.build_model(architecture.name, **({} if contrastive is None else {"contrastive": contrastive}))
    ours = {key: list(tensor.shape) for key, tensor in model.state_dict().items()}
    converted: dict[str, list[int]] = {}
    for key, shape in state_dict_shapes[name][layout].items():
        new_key = official.convert_key(key, architecture)
        assert new_key not in converted, f"two published keys map onto {new_key}"
        converted[new_key] = shape
    assert sorted(set(converted) - set(ours)) == []
    assert sorted(set(ours) - set(converted)) == []
    assert {key: shape for key, shape in converted.items() if ours[key] != shape} == {}
    params = state_dict_shapes[name][f"params_{layout}"]
    assert sum(parameter.numel() for parameter in model.parameters()) == params


@pytest.mark.parametrize("name", ["ConStyleMaxim", "Maxim"])
def test_every_authors_keyword_is_accepted_with_its_default(name):
    small = {"features": 8}
    with_defaults = official.build(name, **{**AUTHORS_DEFAULTS[name], **small})
    plain = official.build(name, **small, **({"Train": True} if name == "ConStyleMaxim" else {}))
    shapes = {key: tensor.shape for key, tensor in plain.state_dict().items()}
    assert {key: tensor.shape for key, tensor in with_defaults.state_dict().items()} == shapes


@pytest.mark.parametrize("name", ["ConStyleMaxim", "Maxim"])
def test_any_size_equals_padded_then_cropped(name, reference_dir, manifest):
    model, _ = _load_small(name, reference_dir, manifest)
    assert model.size_multiple == 64
    image = torch.rand(1, 3, 67, 101)
    padded, _ = pad_to_multiple(image, 64)
    with torch.no_grad():
        restored = model(image)
        expected = model(padded)[..., :67, :101]
    assert restored.shape == image.shape
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-6)


def test_body_rejects_sizes_that_do_not_tile():
    model = ConStyleMaxim(features=8, bottleneck_blocks=1).eval()
    image = torch.rand(1, 3, 96, 96)
    encoded = model.constyle(image)
    assert isinstance(model.body, ConStyleMaximBody)
    with pytest.raises(ValueError, match="multiple of 64"):
        model.body(image, encoded.latent_q, encoded.features)


def test_maxim_rejects_unsupported_configurations():
    with pytest.raises(ValueError, match="depth=3"):
        Maxim(features=8, depth=4)
    with pytest.raises(ValueError, match="out_channels must be 3"):
        Maxim(features=8, out_channels=1)
    with pytest.raises(ValueError, match="B×3×H×W"):
        Maxim(features=8)(torch.rand(1, 1, 64, 64))


def _authors_blocks(x: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """The published image-to-patches layout, B×(gh·gw)×(fh·fw)×C, written out independently."""
    batch, height, width, channels = x.shape
    fh, fw = patch
    x = x.reshape(batch, height // fh, fh, width // fw, fw, channels).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, (height // fh) * (width // fw), fh * fw, channels)


def test_partitions_match_the_published_layout_on_non_square_maps():
    x = torch.randn(2, 24, 40, 3)
    grid = Partition("grid", (4, 5))  # cells of 6×8
    block = Partition("block", (3, 8))  # 8×5 blocks
    torch.testing.assert_close(grid.to_tokens(x), _authors_blocks(x, (6, 8)), rtol=0, atol=0)
    torch.testing.assert_close(block.to_tokens(x), _authors_blocks(x, (3, 8)).transpose(1, 2), rtol=0, atol=0)
    for partition in (grid, block):
        tokens_seen_as_map = partition.from_tokens(partition.to_tokens(x), 24, 40)
        torch.testing.assert_close(tokens_seen_as_map, partition.split(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="cannot be cut"):
        Partition("block", (5, 5)).to_tokens(x)


@pytest.mark.parametrize("scale", [0.25, 0.5, 2.0, 4.0])
def test_resize_equals_the_published_antialiased_bilinear(scale):
    x = torch.randn(2, 5, 32, 48)
    expected = F.interpolate(x, size=(int(32 * scale), int(48 * scale)), mode="bilinear", antialias=True)
    torch.testing.assert_close(resize(x, scale), expected, rtol=0, atol=1e-5)


def test_resize_first_used_in_inference_mode_still_supports_autograd():
    with torch.inference_mode():
        resize(torch.rand(1, 2, 40, 24), 0.5)
    x = torch.rand(1, 2, 40, 24, requires_grad=True)
    resize(x, 0.5).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_mix_positions_is_a_linear_map_over_the_mixed_axis():
    tokens = torch.randn(2, 20, 6, 3)
    mix = nn.Linear(20, 20)
    expected = mix(tokens.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) + 1.0
    torch.testing.assert_close(mix_positions(tokens, mix, offset=1.0), expected)


def test_training_forward_reaches_body_and_encoder_but_not_the_unused_published_blocks():
    model = ConStyleMaxim(features=8, bottleneck_blocks=1, contrastive=True, constyle_options={"queue_size": 8})
    degraded, clean = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    restored, contrast = model.forward_train(degraded, clean)
    assert restored.shape == degraded.shape and contrast.logits.shape == (2, 9)
    restored.abs().mean().backward()
    assert model.body.encoders[0].multi_axis[0].grid.token_mix.weight.grad is not None
    assert model.constyle.encoder.stage1[0][0].weight.grad is not None
    assert model.body.encoders[0].unused_cross_gating.proj_x.weight.grad is None


@pytest.mark.parametrize("name", ["constyle_maxim", "maxim"])
def test_runs_under_cpu_bfloat16_autocast(name):
    model = irconstyle.build_model(name, features=8).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        reference = model(image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            restored = model(image)
    assert restored.shape == image.shape
    assert (restored.float() - reference).abs().max().item() < 0.1
