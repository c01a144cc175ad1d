import numpy as np
import pytest
import torch
from PIL import Image

from irconstyle import build, save
from irconstyle.cli import main
from irconstyle.data.io import read_image, write_image
from irconstyle.models.checkpoint import CheckpointError
from irconstyle.restoration import expand_inputs, resolve, restore, restore_files

TINY = dict(width=8, encoder_blocks=[1, 1, 1], bottleneck_blocks=1, decoder_blocks=[1, 1, 1])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save(build("constyle_nafnet", **TINY), path)
    return path


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    write_image(folder / "a.png", rng.integers(0, 256, (67, 101, 3), dtype=np.uint8))
    write_image(folder / "b.jpg", rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    write_image(folder / "deep.png", rng.integers(0, 65536, (40, 48, 3), dtype=np.uint16))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


def test_restore_returns_the_type_it_was_given(model_file):
    model = resolve(model_file)
    array = np.random.default_rng(1).integers(0, 256, (33, 45, 3), dtype=np.uint8)
    restored = restore(array, model=model)
    assert restored.dtype == np.uint8 and restored.shape == array.shape
    assert isinstance(restore(Image.fromarray(array), model=model), Image.Image)
    tensor = torch.rand(3, 33, 45)
    out = restore(tensor, model=model)
    assert out.shape == tensor.shape and out.dtype == torch.float32
    np.testing.assert_allclose(restore(array.astype(np.float32) / 255, model=model) * 255, restored, atol=0.51)


def test_restore_files_keeps_names_formats_and_depth_and_reports_bad_files(model_file, photos, tmp_path):
    out = tmp_path / "out"
    results = restore_files([photos], out, model=model_file, compare=True)
    by_name = {r.source.name: r for r in results}
    assert by_name["broken.png"].error.startswith(str(photos / "broken.png"))
    assert read_image(out / "deep.png").dtype == np.uint16
    assert read_image(out / "b.jpg").shape == (48, 40, 3)
    assert read_image(out / "a_compare.png").shape == (67, 101 * 2 + 8, 3)
    assert sum(r.error is None for r in results) == 3


def test_restore_files_never_overwrites_inputs(model_file, photos):
    before = (photos / "a.png").read_bytes()
    (result,) = restore_files([photos / "a.png"], photos, model=model_file)
    assert "overwrite" in result.error
    assert (photos / "a.png").read_bytes() == before


def test_inputs_sharing_a_name_are_refused_before_anything_is_written(model_file, photos, tmp_path, capsys):
    other = tmp_path / "other"
    write_image(other / "a.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png and .*other/a\.png would both be written to .*out/a\.png"):
        restore_files([photos, other], tmp_path / "out", model=model_file)
    assert not (tmp_path / "out").exists()
    assert main(["restore", str(photos / "a.png"), str(other / "a.png"), "-o", str(tmp_path / "out"),
                 "--model", str(model_file), "-q"]) == 2
    assert "separate output folders" in capsys.readouterr().err
    twice = restore_files([photos / "a.png", (photos / "a.png").resolve()], tmp_path / "out", model=model_file)
    assert [result.error for result in twice] == [None]


def test_expand_inputs_takes_files_folders_and_globs(photos):
    assert [p.name for p in expand_inputs([str(photos / "*.png"), photos / "a.png"])] == [
        "a.png", "broken.png", "deep.png"]
    assert len(expand_inputs([photos])) == 4


def test_model_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no such model file"):
        resolve(tmp_path / "missing.safetensors")
    (tmp_path / "official.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="irconstyle convert"):
        resolve(tmp_path / "official.pth")


def test_cli_restore_exit_status_says_something_failed(model_file, photos, tmp_path, capsys):
    status = main(["restore", str(photos), "-o", str(tmp_path / "o"), "--model", str(model_file), "--tile", "32",
                   "--tile-overlap", "8", "-q"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.png" in err
    assert main(["restore", str(photos / "a.png"), "-o", str(tmp_path / "o2"), "--model", str(model_file), "-q"]) == 0
    assert main(["restore", str(photos / "a.png"), "--model", str(model_file), "--tile", "30", "-q"]) == 2


def test_cli_convert_turns_an_authors_checkpoint_into_a_model(tmp_path, reference_dir, manifest):
    entry = manifest["NAFNet"]
    args = [f"--arg={key}={value}" for key, value in entry["config"].items()]
    output = tmp_path / "nafnet.safetensors"
    assert main(["convert", "NAFNet", str(reference_dir / entry["checkpoint"]), str(output), *args]) == 0
    reference = np.load(reference_dir / entry["arrays"])
    model = resolve(output)
    with torch.inference_mode():
        restored = model(torch.from_numpy(reference["input"]))
    assert (restored - torch.from_numpy(reference["output"])).abs().max() < 1e-4


def test_messages_name_what_to_give(model_file, photos, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown task 'bogus'; choose one of denoise, derain, dehaze, deblur or auto"):
        restore(np.zeros((8, 8, 3), np.uint8), task="bogus")
    assert main(["convert", str(model_file), str(tmp_path / "x.safetensors")]) == 2
    assert "already an irconstyle model; use it with --model" in capsys.readouterr().err
    assert main(["eval", "--model", str(model_file), "--gt", str(photos)]) == 2
    assert "--gt needs its degraded inputs: --lq" in capsys.readouterr().err
    assert main(["eval", "--model", str(model_file), "--gt", str(photos), "--degrade", "foo:25"]) == 2
    assert "unknown task 'foo'" in capsys.readouterr().err
    assert main(["degrade", str(photos), str(tmp_path / "d"), "--task", "denoise", "--param", "sigma=abc"]) == 2
    assert "denoise parameter 'sigma': expected a number, a range or a list, got 'abc'" in capsys.readouterr().err
