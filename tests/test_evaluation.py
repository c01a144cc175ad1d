import numpy as np
import pytest
from torch import nn

from irconstyle.cli import main
from irconstyle.data.io import write_image
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
