"""A corpus of bad inputs, one test per kind: each is converted by a documented rule or answered by one line
naming the file and the problem, never a traceback, and the other inputs of the same command still succeed."""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import irconstyle
from irconstyle import CheckpointError
from irconstyle.cli import main
from irconstyle.data.io import read_image, write_image
from irconstyle.inference import resolve_tile

REPO = Path(__file__).resolve().parents[1]
RGB = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
TINY_NAFNET = {"width": 8, "encoder_blocks": [1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1]}


def _run(*argv: str) -> tuple[int, list[str]]:
    """``irconstyle ARGV`` in this process: its exit code and its stderr lines."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), warnings.catch_warnings():
        code = main(list(argv))
    return code, stderr.getvalue().splitlines()


# --- images: `irconstyle restore` on a good photo and one bad file ----------------------------------------------


def _cmyk_jpeg(path: Path) -> None:
    Image.fromarray(RGB).convert("CMYK").save(path)


def _grey_alpha(path: Path) -> None:
    Image.fromarray(RGB[..., 0]).convert("LA").save(path)


def _rgba16(path: Path) -> None:
    """A 16-bit RGBA PNG (colour type 6), which Pillow cannot read at full depth, opaque alpha."""
    rgba = np.dstack([RGB.astype(np.uint16) * 257, np.full(RGB.shape[:2], 65535, np.uint16)])
    height, width = RGB.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgba.astype(">u2").view(np.uint8).reshape(height, -1)], 1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes()))
                     + chunk(b"IEND", b""))


def _palette_with_transparency(path: Path) -> None:
    Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE).save(path, transparency=0)


def _animated_gif(path: Path) -> None:
    Image.fromarray(RGB).save(path, save_all=True, append_images=[Image.fromarray(255 - RGB)])


def _exif_rotated(path: Path) -> None:
    image = Image.fromarray(RGB)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(path, exif=exif)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    write_image(path, RGB)
    path.write_bytes(path.read_bytes()[:200])


def _folder(path: Path) -> None:
    path.mkdir()


CONVERTED = {  # kind -> (writer, file name, the output's shape and dtype, warning expected)
    "cmyk_jpeg": (_cmyk_jpeg, "cmyk.jpg", (32, 40, 3), np.uint8, None),
    "grey_alpha": (_grey_alpha, "grey_alpha.png", (32, 40, 3), np.uint8, "alpha channel dropped"),
    "rgba_16_bit": (_rgba16, "rgba16.png", (32, 40, 3), np.uint16, "alpha channel dropped"),
    "palette_transparency": (_palette_with_transparency, "palette.png", (32, 40, 3), np.uint8, "alpha channel dropped"),
    "exif_rotated": (_exif_rotated, "rotated.jpg", (40, 32, 3), np.uint8, None),  # shown upright
}
REFUSED = {  # kind -> (writer, file name, the problem named)
    "animated_gif": (_animated_gif, "animated.gif", "an animation or multi-page file (2 frames)"),
    "zero_bytes": (_empty, "empty.png", "empty file (0 bytes)"),
    "truncated": (_truncated, "truncated.png", "truncated or corrupt image data"),
    "folder": (_folder, "folder.png", "is a folder, not an image file"),
}


def _restore_with_a_good_photo(tmp_path: Path, writer, name: str) -> tuple[int, list[str], Path]:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_image(inputs / "good.png", RGB)
    writer(inputs / name)
    output = tmp_path / "restored"
    code, lines = _run("restore", str(inputs / "good.png"), str(inputs / name), "-o", str(output), "--quiet")
    assert read_image(output / "good.png").shape == RGB.shape  # the other input is restored regardless
    assert not any("Traceback" in line for line in lines)
    return code, lines, output


@pytest.mark.parametrize("kind", sorted(CONVERTED))
def test_convertible_image_is_restored_by_its_rule(tmp_path, kind):
    writer, name, shape, dtype, warning = CONVERTED[kind]
    code, lines, output = _restore_with_a_good_photo(tmp_path, writer, name)
    assert code == 0, lines
    restored = read_image(output / name)
    assert restored.shape == shape and restored.dtype == dtype
    expected = [f"irconstyle restore: warning: {tmp_path / 'inputs' / name}: {warning}"] if warning else []
    assert lines == expected


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_unreadable_image_is_one_line_naming_file_and_problem(tmp_path, kind):
    writer, name, problem = REFUSED[kind]
    code, lines, output = _restore_with_a_good_photo(tmp_path, writer, name)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(f"irconstyle restore: {tmp_path / 'inputs' / name}: {problem}")
    assert sorted(p.name for p in output.iterdir()) == ["good.png"]


def test_sixty_megapixel_png_is_read_and_restored_in_tiles(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (10_000, 6_000), (90, 120, 150)).save(path, compress_level=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # under Pillow's decompression-bomb limit: no warning either
        pixels = read_image(path)
    assert pixels.shape == (6_000, 10_000, 3) and (pixels[0, 0] == (90, 120, 150)).all()
    model = irconstyle.build_model("nafnet", **TINY_NAFNET)
    assert resolve_tile(model, "auto", 6_000, 10_000) is not None  # never restored whole


# --- configs: `irconstyle train configs/smoke.yaml --set …` ------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("data.train.batch_size=four", "configs/smoke.yaml: data.train.batch_size: expected an integer, got 'four'"),
        ("data.train.bach_size=4", "configs/smoke.yaml: data.train.bach_size: unknown key (did you mean 'batch_size'"),
        ("data.train.patch_size=-64", "configs/smoke.yaml: data.train.patch_size: must be > 0, got -64"),
        ("data.train.options.clean_dirs=no/such/photos", "data.train: no/such/photos: no such folder"),
    ],
    ids=["wrong_type", "unknown_key", "negative_size", "missing_data_folder"],
)
def test_bad_config_is_one_line_naming_file_and_problem(tmp_path, monkeypatch, override, problem):
    monkeypatch.chdir(REPO)
    code, lines = _run("train", "configs/smoke.yaml", "--output", str(tmp_path / "run"), "--quiet", "--set", override)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"irconstyle train: config error: {problem}"), lines
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- checkpoints: `irconstyle restore --model FILE` ---------------------------------------------------------------


def _model_file(tmp_path: Path, change=None) -> Path:
    """A tiny model saved by save_checkpoint, then one tensor changed by ``change(state)`` (metadata kept)."""
    path = tmp_path / "model.safetensors"
    irconstyle.save(irconstyle.build("nafnet", **TINY_NAFNET), path)
    if change is not None:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        change(state)
        save_file(state, str(path), metadata=metadata)
    return path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _set(key: str, make):
    def change(state: dict[str, torch.Tensor]) -> None:
        state[key] = make(state[key])

    return change


BAD_CHECKPOINTS = {  # kind -> (change to the state, change to the file, the problem named)
    "truncated_safetensors": (None, _truncate, "not a readable safetensors file"),
    "wrong_dtype": (_set("stem.weight", lambda t: t.to(torch.int32)), None,
                    "1 of the wrong dtype: stem.weight (file torch.int32, model torch.float32)"),
    "wrong_shape": (_set("stem.weight", lambda t: t[:-1]), None, "1 mis-shaped: stem.weight"),
    "nan_weights": (_set("stem.weight", lambda t: t.index_fill(0, torch.tensor([0]), float("nan"))), None,
                    "1 with NaN or infinite values: stem.weight"),
}


@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_is_one_line_naming_file_and_problem(tmp_path, kind):
    change_state, change_file, problem = BAD_CHECKPOINTS[kind]
    path = _model_file(tmp_path, change_state)
    if change_file is not None:
        change_file(path)
    write_image(tmp_path / "photo.png", RGB)
    code, lines = _run("restore", str(tmp_path / "photo.png"), "--model", str(path), "-o", str(tmp_path / "out"))
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"irconstyle restore: {path}: "), lines
    assert problem in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_pickle_that_is_not_a_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "notes": "these are not weights"}, path)
    with pytest.raises(CheckpointError) as raised:
        irconstyle.load_checkpoint(irconstyle.build_model("nafnet", **TINY_NAFNET), path)
    expected = f"{path}: expected a state dict (optionally under 'params_ema', 'params', 'state_dict' …)"
    assert str(raised.value) == expected


# --- options and output paths: refused before any work ----------------------------------------------------------

@pytest.mark.parametrize("option, problem", [
    (["--device", "gpu"], "unknown device 'gpu'; use cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "unknown device 'cuda:x'"),
    (["--threads", "0"], "argument --threads: expected at least 1, got 0"),
    (["--threads", "-1"], "argument --threads: expected at least 1, got -1"),
])
def test_bad_device_or_threads_is_an_argument_error(tmp_path, capsys, option, problem):
    write_image(tmp_path / "a.png", RGB)
    with pytest.raises(SystemExit) as raised:
        main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), *option])
    assert raised.value.code == 2 and problem in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["detect", str(tmp_path / "a.png"), "--device", "cuda"])
    assert "has no CUDA, or no GPU is visible; use cpu" in capsys.readouterr().err


def test_unwritable_outputs_fail_before_the_work(tmp_path):
    write_image(tmp_path / "gt" / "a.png", RGB)
    a_file = tmp_path / "file.png"
    write_image(a_file, RGB)
    model = tmp_path / "tiny.safetensors"
    irconstyle.save(irconstyle.build("nafnet", **TINY_NAFNET), model)
    runs = {
        "restore": ("restore", str(a_file), "-o", str(a_file), "--model", str(model), "-q"),
        "eval": ("eval", "--model", str(model), "--gt", str(tmp_path / "gt"), "--degrade", "denoise:25",
                 "--csv", str(a_file / "scores.csv"), "-q"),
        "degrade": ("degrade", str(tmp_path / "gt"), str(a_file / "pairs"), "--task", "denoise", "-q"),
        "export": ("export", str(model), str(a_file / "model.onnx")),
    }
    for command, argv in runs.items():
        code, lines = _run(*argv)
        assert code == 2 and len(lines) == 1, (command, lines)
        assert lines[0].startswith(f"irconstyle {command}: {a_file}/"), lines
        assert lines[0].endswith(f": cannot be written ({a_file} is a file, not a folder)"), lines
    code, lines = _run("eval", "--model", str(model), "--gt", str(tmp_path / "gt"), "--degrade", "denoise:25",
                       "--csv", str(tmp_path / "gt"), "-q")
    assert (code, lines) == (2, [f"irconstyle eval: {tmp_path / 'gt'}: is a folder; give a file name"])
