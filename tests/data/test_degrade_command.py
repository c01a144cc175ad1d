"""`irconstyle degrade`: argument parsing reaches degrade_folder; bad input gives exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irconstyle.cli import main
from irconstyle.data.io import write_image


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    for index in range(2):
        write_image(tmp_path / "clean" / f"{index}.png", np.full((32, 40, 3), 60 + 40 * index, np.uint8))
    return tmp_path / "clean"


def test_degrade_writes_pairs_and_parameters(clean_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["degrade", "--task", "dehaze", str(clean_dir), str(out), "--level", "high", "--seed", "4",
                 "--param", "airlight=[0.9, 1.0]", "--param", "beta={min: 0.1, max: 0.12}", "--quiet"])
    assert code == 0
    manifest = json.loads((out / "degradations.json").read_text())
    assert manifest["seed"] == 4 and manifest["level"] == {"level": "high", "airlight": [0.9, 1.0],
                                                           "beta": {"min": 0.1, "max": 0.12}}
    for record in manifest["images"].values():
        assert record["airlight"] in (0.9, 1.0) and 0.1 <= record["beta"] <= 0.12
    assert sorted(path.name for path in (out / "lq").iterdir()) == ["0.png", "1.png"]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--param", "sigma"], "is not KEY=VALUE"), (["--param", "gamma=2"], "unknown denoise parameter")],
)
def test_degrade_reports_bad_parameters(clean_dir: Path, tmp_path: Path, capsys, extra, message) -> None:
    code = main(["degrade", "--task", "denoise", str(clean_dir), str(tmp_path / "out"), "-q", *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_degrade_reports_missing_input(tmp_path: Path, capsys) -> None:
    assert main(["degrade", "--task", "deblur", str(tmp_path / "none"), str(tmp_path / "out"), "-q"]) == 2
    assert "no such folder" in capsys.readouterr().err
