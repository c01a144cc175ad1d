import numpy as np
import pytest
import torch
from torch import nn

from irconstyle.cli import main
from irconstyle.data.io import read_image, tensor_to_image, write_image
from irconstyle.evaluation import evaluate, parse_degradation
from irconstyle.metrics import get_protocol, psnr
from irconstyle.zoo import describe


class Identity(nn.Module):
    def forward(self, x):
        return x


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        clean = rng.integers(30, 220, (40, 48, 3), dtype=np.uint8)
        write_image(tmp_path / "gt" / f"{name}.png", clean)
        noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).round().astype(np.uint8)
        write_image(tmp_path / "lq" / f"{name}.png", noisy)
    return tmp_path


def test_identity_model_scores_what_the_input_scores(folders):
    report = evaluate(Identity(), gt_dir=folders / "gt", lq_dir=folders / "lq")
    for score in report.scores:
        assert score.psnr_rgb == pytest.approx(score.input_psnr_rgb)
    assert report.mean()["psnr_rgb"] == pytest.approx(np.mean([s.psnr_rgb for s in report.scores]))
    assert 25 < report.mean()["psnr_rgb"] < 32


def test_noise_protocol_uses_its_own_seeded_noise(folders):
    protocol = get_protocol("cbsd68-sigma25")
    report = evaluate(Identity(), gt_dir=folders / "gt", protocol=protocol)
    assert report.description == protocol.describe() + "; scored at the original size; restored whole"
    assert report.mean()["psnr_rgb"] == pytest.approx(20.5, abs=0.6)  # 20·log10(255/25) ≈ 20.2, clipped a little
    again = evaluate(Identity(), gt_dir=folders / "gt", protocol=protocol)
    assert again.scores == report.scores


def test_the_protocol_names_the_tiles_a_native_tile_model_was_restored_in(folders):
    model = describe(Identity(), native_tile=64)
    report = evaluate(model, gt_dir=folders / "gt", lq_dir=folders / "lq", self_ensemble=True)
    assert report.description.endswith("; restored 64×64 tiles with the 8-fold self-ensemble")
    assert evaluate(model, gt_dir=folders / "gt", lq_dir=folders / "lq", tile=None).description.endswith("whole")


def test_exactly_one_input_source_is_required(folders):
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(Identity(), gt_dir=folders / "gt")
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(Identity(), gt_dir=folders / "gt", lq_dir=folders / "lq", degradation=("denoise", "low"))


def test_parse_degradation():
    assert parse_degradation("denoise:25") == ("denoise", {"sigma": 25.0})
    assert parse_degradation("derain:high") == ("derain", "high")
    assert parse_degradation("derain:high", quantize_bits=8) == ("derain", {"level": "high", "quantize_bits": 8})
    assert parse_degradation("denoise:25", quantize_bits=8) == ("denoise", {"sigma": 25.0, "quantize_bits": 8})
    with pytest.raises(ValueError, match="TASK:LEVEL"):
        parse_degradation("denoise")
    with pytest.raises(ValueError, match="only for denoise"):
        parse_degradation("dehaze:3")


def test_cli_eval_writes_csv_and_prints_the_protocol(folders, tmp_path, capsys):
    from irconstyle import build, save

    model_path = tmp_path / "m.safetensors"
    save(build("constyle_nafnet", width=8, encoder_blocks=[1, 1, 1], bottleneck_blocks=1, decoder_blocks=[1, 1, 1]),
         model_path)
    status = main(["eval", "--model", str(model_path), "--gt", str(folders / "gt"), "--degrade", "denoise:15",
                   "--csv", str(tmp_path / "s.csv")])
    assert status == 0
    out = capsys.readouterr().out
    assert "protocol:" in out and "mean of 2" in out
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0].startswith("name,psnr_rgb") and rows[-1].startswith("mean,") and len(rows) == 4
    assert main(["eval", "--model", str(model_path), "--gt", str(tmp_path / "missing"), "--degrade", "denoise:15"]) == 2


def test_scores_round_restored_images_to_uint8(folders):
    class Offset(nn.Module):
        def forward(self, x):
            return x + 0.4 / 255  # rounds back to the input: no gain from sub-quantum changes

    a = evaluate(Offset(), gt_dir=folders / "gt", lq_dir=folders / "lq")
    b = evaluate(Identity(), gt_dir=folders / "gt", lq_dir=folders / "lq")
    assert [s.psnr_rgb for s in a.scores] == [s.psnr_rgb for s in b.scores]
    assert psnr(np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 1, np.uint8)) == pytest.approx(48.13, abs=0.01)


def test_cli_eval_input_bits_stores_degraded_inputs_as_saved_images_are(folders, tmp_path, capsys):
    from irconstyle import build, save

    model_path = tmp_path / "m.safetensors"
    model = build("constyle_nafnet", width=8, encoder_blocks=[1, 1, 1], bottleneck_blocks=1, decoder_blocks=[1, 1, 1])
    save(model, model_path)
    arguments = ["eval", "--model", str(model_path), "--gt", str(folders / "gt"), "--degrade", "denoise:15", "-q"]
    assert main([*arguments, "--input-bits", "8", "--csv", str(tmp_path / "8.csv")]) == 0
    assert "'quantize_bits': 8" in capsys.readouterr().out
    assert main([*arguments, "--csv", str(tmp_path / "float.csv")]) == 0
    quantized = evaluate(model, gt_dir=folders / "gt", degradation=("denoise", {"sigma": 15.0, "quantize_bits": 8}))
    mean_row = (tmp_path / "8.csv").read_text().splitlines()[-1]
    assert float(mean_row.split(",")[1]) == pytest.approx(quantized.mean()["psnr_rgb"], abs=1e-9)
    assert mean_row != (tmp_path / "float.csv").read_text().splitlines()[-1]
    assert main(["eval", "--model", str(model_path), "--gt", str(folders / "gt"), "--lq", str(folders / "lq"),
                 "--input-bits", "8"]) == 2
    assert "--input-bits applies to --degrade inputs only" in capsys.readouterr().err


class BoxBlur(nn.Module):
    """A 3×3 mean filter: a model whose output at the edges depends on what lies beyond them."""

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)


def _uint8_images(root, names, side=16):
    rng = np.random.default_rng(1)
    for name in names:
        write_image(root / name, rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def test_scoring_padded_scores_the_reflect_padded_output_against_the_reflect_padded_reference(tmp_path):
    _uint8_images(tmp_path, ["input/a.png", "target/a.png"])
    lq, gt = read_image(tmp_path / "input/a.png"), read_image(tmp_path / "target/a.png")
    model = describe(BoxBlur(), size_multiple=12)  # 16 px sides are padded to 24

    def restored(image):
        tensor = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
        return tensor_to_image(BoxBlur()(tensor)[0])

    def padded(image):
        return np.pad(image, ((0, 8), (0, 8), (0, 0)), mode="reflect")

    cropped = evaluate(model, root=tmp_path, score_on="cropped").scores[0]
    on_padded = evaluate(model, root=tmp_path, score_on="padded")
    assert cropped.psnr_rgb == pytest.approx(psnr(restored(lq), gt), abs=1e-12)
    assert on_padded.scores[0].psnr_rgb == pytest.approx(psnr(restored(padded(lq)), padded(gt)), abs=1e-12)
    assert on_padded.scores[0].input_psnr_rgb == pytest.approx(psnr(padded(lq), padded(gt)), abs=1e-12)
    assert abs(on_padded.scores[0].psnr_rgb - cropped.psnr_rgb) > 1e-3
    assert "scored padded: input and reference reflect-padded bottom/right to multiples of 12" in on_padded.description
    with pytest.raises(ValueError, match="score_on must be one of cropped, padded"):
        evaluate(model, root=tmp_path, score_on="crop")


def test_a_larger_sots_indoor_clean_image_is_centre_cropped_to_its_hazy_one(tmp_path):
    _uint8_images(tmp_path, ["hazy/1400_1.png", "hazy/1400_2.png"])
    _uint8_images(tmp_path, ["gt/1400.png"], side=20)
    report = evaluate(Identity(), root=tmp_path, protocol=get_protocol("sots-indoor"))
    clean = read_image(tmp_path / "gt/1400.png")[2:18, 2:18]
    for name, score in zip(("1400_1.png", "1400_2.png"), report.scores, strict=True):
        assert score.name == f"hazy/{name}"
        assert score.psnr_rgb == pytest.approx(psnr(read_image(tmp_path / "hazy" / name), clean), abs=1e-12)
    assert report.description.startswith("sots-indoor: PSNR/SSIM on RGB")


def test_a_clean_benchmark_folder_takes_the_protocols_noise(tmp_path):
    _uint8_images(tmp_path, ["0.png", "1.png"])
    protocol = get_protocol("cbsd68-sigma15")
    by_root = evaluate(Identity(), root=tmp_path, protocol=protocol)
    assert by_root.scores == evaluate(Identity(), gt_dir=tmp_path, protocol=protocol).scores
    with pytest.raises(ValueError, match="exactly one input source"):
        evaluate(Identity(), root=tmp_path)
    _uint8_images(tmp_path / "pairs", ["input/0.png", "target/0.png"])
    with pytest.raises(ValueError, match="exactly one input source"):
        evaluate(Identity(), root=tmp_path / "pairs", protocol=protocol)


def test_cbsd68_scores_its_pre_noised_copies_as_they_are_and_its_clean_ones_by_the_protocol(tmp_path):
    _uint8_images(tmp_path, ["original_png/0000.png", "noisy25/0000.png", "original/101085.jpg"])
    protocol = get_protocol("cbsd68-sigma25")
    given = evaluate(Identity(), root=tmp_path / "noisy25")
    noisy, clean = read_image(tmp_path / "noisy25/0000.png"), read_image(tmp_path / "original_png/0000.png")
    assert [score.name for score in given.scores] == ["noisy25/0000.png"]
    assert given.scores[0].psnr_rgb == pytest.approx(psnr(noisy, clean), abs=1e-12)
    with pytest.raises(ValueError, match="exactly one input source"):
        evaluate(Identity(), root=tmp_path / "noisy25", protocol=protocol)
    renoised = evaluate(Identity(), root=tmp_path, protocol=protocol)
    assert renoised.scores == evaluate(Identity(), gt_dir=tmp_path / "original_png", protocol=protocol).scores


@pytest.fixture
def model_file(tmp_path):
    from irconstyle import build, save

    path = tmp_path / "tiny.safetensors"
    save(build("constyle_nafnet", width=8, encoder_blocks=[1, 1, 1], bottleneck_blocks=1, decoder_blocks=[1, 1, 1]),
         path)
    return path


def test_cli_eval_scores_a_distributed_folder_and_says_how(tmp_path, model_file, capsys):
    from irconstyle.restoration import resolve

    root = tmp_path / "Rain100H"
    _uint8_images(root, ["rain-001.png", "norain-001.png", "rain-002.png", "norain-002.png"], side=20)
    base = ["eval", "--model", str(model_file), "--root", str(root), "--protocol", "rain100h"]
    assert main([*base, "--score-padded", "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "rain-002.png" in out and "scored padded" in out and "multiples of 8" in out
    expected = evaluate(resolve(str(model_file)), root=root, protocol=get_protocol("rain100h"), score_on="padded")
    mean_row = (tmp_path / "s.csv").read_text().splitlines()[-1].split(",")
    assert float(mean_row[1]) == pytest.approx(expected.mean()["psnr_rgb"], abs=1e-9)
    assert main([*base, "-q", "--layout", "rain100"]) == 0
    assert f"; images from {root} (rain100 layout); scored at the original size" in capsys.readouterr().out
    (root / "norain-002.png").unlink()
    assert main(base) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"irconstyle eval: no clean image in {root} for 1 degraded image: {root / 'rain-002.png'}"
    assert main(["eval", "--model", str(model_file), "--gt", str(root), "--root", str(root)]) == 2
    assert "give --gt (with --lq for paired folders) or --root" in capsys.readouterr().err


def test_cli_preset_scores_the_sets_present_and_skips_the_absent(tmp_path, model_file, capsys):
    from irconstyle.restoration import resolve

    _uint8_images(tmp_path / "data" / "rain100h", ["rain-001.png", "norain-001.png"])  # names match any case
    assert main(["eval", "--preset", "derain", "--model", str(model_file), "--root", str(tmp_path / "data"),
                 "--csv", str(tmp_path / "table.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = evaluate(resolve(str(model_file)), root=tmp_path / "data" / "rain100h",
                        protocol=get_protocol("rain100h")).mean()
    header = next(index for index, line in enumerate(out) if line.startswith("model"))
    assert out[header].split() == ["model", "Rain100H"]
    assert out[header + 1].split() == ["PSNR/SSIM", "(Y)"]
    assert out[header + 2].split() == ["tiny", f"{expected['psnr_y']:.2f}/{expected['ssim_y']:.4f}"]
    for absent in ("Rain100L", "Test100", "Test1200", "Test2800"):
        assert f"skipped {absent}: not found under {tmp_path / 'data'} (looked for {absent})" in out
    assert any(line.startswith("Rain100H: protocol: rain100h: PSNR/SSIM on Y") for line in out)
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith(f"tiny,Rain100H,{tmp_path / 'data' / 'rain100h'},1,")
    assert main(["eval", "--preset", "dehaze", "--model", str(model_file), "--root", str(tmp_path / "data")]) == 2
    assert "none of the dehaze sets found (looked for SOTS/outdoor," in capsys.readouterr().err
    assert main(["eval", "--preset", "derain", "--model", str(model_file), "--root", str(tmp_path / "data"),
                 "--protocol", "rain100h"]) == 2
    assert "drop --protocol" in capsys.readouterr().err


def test_every_preset_set_names_a_known_protocol_once():
    from irconstyle.evaluation import PRESETS

    for sets in PRESETS.values():
        assert len({entry.protocol for entry in sets}) == len(sets)
        for entry in sets:
            get_protocol(entry.protocol)
