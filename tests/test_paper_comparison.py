"""The paper-comparison harness (benchmarks/paper_comparison.py): its grid composes valid configs whose baselines
have the sizes the grid claims, and a cell trains, scores, records once and feeds the page."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from irconstyle import build_model

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
paper_comparison = pytest.importorskip("paper_comparison")
ASSETS = Path(__file__).resolve().parent / "assets" / "photos"


def _parameters(config) -> int:
    model = build_model(config.model.name, **config.model.options)
    return sum(p.numel() for p in model.parameters())


def test_every_cell_composes_a_valid_config():
    grid = paper_comparison.load_grid()
    cells = paper_comparison.grid_cells(grid)
    assert len(cells) == len({cell.key for cell in cells})
    for cell in cells:
        config = paper_comparison.cell_config(grid, cell)
        assert config.seed == cell.seed and config.name == cell.key
        assert config.data.train.options["task"] == cell.task
    seeds = {cell.seed for cell in cells}
    assert len(seeds) >= 3


def test_variants_change_only_what_they_name():
    grid = paper_comparison.load_grid()
    reference = paper_comparison.cell_config(grid, paper_comparison.Cell("derain", "nafnet", "constyle", 1))
    ablation = paper_comparison.cell_config(grid, paper_comparison.Cell("derain", "nafnet", "no-style", 1))
    assert ablation.train.losses.style_weight == 0.0
    assert ablation.train.losses.content_weight == reference.train.losses.content_weight == 1.0
    assert ablation.model == reference.model and ablation.data == reference.data
    body_only = paper_comparison.cell_config(grid, paper_comparison.Cell("derain", "nafnet", "body-only", 1))
    assert {key: value for key, value in body_only.model.options.items() if value != reference.model.options.get(key)} \
        == {"use_feature_maps": False, "use_latent": False}
    assert body_only.train == reference.train and body_only.data == reference.data
    origin = paper_comparison.cell_config(grid, paper_comparison.Cell("derain", "nafnet", "origin", 1))
    assert origin.data == reference.data and origin.model.name == "nafnet"
    assert origin.train == dataclasses.replace(reference.train, constyle_iters=None)


@pytest.mark.parametrize("body", ["nafnet", "restormer", "maxim"])
def test_origin_baselines_have_the_sizes_the_grid_claims(body):
    """'origin' matches the ConStyle model's inference parameters (encoder included) within 2%; the NAFNet
    body's 'origin-paper-ratio' has about the paper's 87.4 M : 12.7 M ratio."""
    grid = paper_comparison.load_grid()
    size = {kind: _parameters(paper_comparison.cell_config(grid, paper_comparison.Cell("derain", body, kind, 1)))
            for kind in grid["bodies"][body]}
    assert abs(size["origin"] / size["constyle"] - 1) < 0.02
    if "origin-paper-ratio" in size:
        assert size["origin-paper-ratio"] / size["constyle"] == pytest.approx(87.40 / 12.74, rel=0.05)


def test_unknown_names_are_refused_with_the_choices():
    grid = paper_comparison.load_grid()
    with pytest.raises(SystemExit, match="no variant 'no-such'.*constyle"):
        paper_comparison.cell_config(grid, paper_comparison.Cell("derain", "nafnet", "no-such", 1))


def test_a_cell_trains_scores_records_once_and_feeds_the_page(tmp_path):
    grid = copy.deepcopy(paper_comparison.load_grid())
    grid["base"]["data"]["train"]["options"]["clean_dirs"] = str(ASSETS / "train")
    grid["base"]["data"]["val"]["options"]["clean_dirs"] = str(ASSETS / "val")
    grid["evaluation"] |= {"held_out": str(ASSETS / "val"), "check": str(ASSETS / "val")}
    grid["tasks"]["derain"]["evaluate"] = ["derain:low"]
    grid["bodies"]["nafnet"]["constyle"]["model"]["options"] = {
        "width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]}
    overrides = ["train.total_iters=2", "train.constyle_iters=1", "train.schedule.periods=[1,1]", "val.every=1",
                 "val.samples=1", "checkpoint.every=1", "data.train.batch_size=2", "data.train.patch_size=32"]
    results, runs = tmp_path / "results.json", tmp_path / "runs"
    cell = paper_comparison.Cell("derain", "nafnet", "constyle", 1)
    message = paper_comparison.run_cell(cell, grid=grid, runs=runs, results=results, overrides=overrides)
    assert "recorded" in message
    (record,) = json.loads(results.read_text())["records"]
    assert record["cell"] == cell.key and record["iterations"] == 2 and record["overrides"] == overrides
    assert [point["iteration"] for point in record["validation_curve"]] == [1, 2]
    held_out = record["scores"]["held_out"]["derain:low"]
    assert set(held_out["per_photo"]) == {p.name for p in (ASSETS / "val").glob("*.png")}
    assert 5 < held_out["psnr"] < 60 and record["wall_hours"] > 0 and record["gflops_256"] > 0
    assert record["photos"]["held_out"] == record["photos"]["check"] != record["photos"]["train"]
    again = paper_comparison.run_cell(cell, grid=grid, runs=runs, results=results, overrides=overrides)
    assert "already recorded" in again
    assert len(json.loads(results.read_text())["records"]) == 1

    pytest.importorskip("matplotlib")
    page_module = pytest.importorskip("paper_comparison_page")
    origin = copy.deepcopy(record) | {"variant": "origin", "cell": "derain-nafnet-origin-s1"}
    page = tmp_path / "page.md"
    page.write_text(f"# Q\n\nbefore\n\n{page_module.START}\nold\n{page_module.END}\n\nafter\n")
    page_module.write_page([record, origin], grid, page)
    text = page.read_text()
    assert "before" in text and "after" in text and "old" not in text
    assert "| constyle | " in text and "| origin | " in text and "+0.00 (1 seed), p = 1, one seed: n/a" in text
    assert (tmp_path / "paper_comparison_derain_nafnet.png").stat().st_size > 1000


def test_equal_wall_clock_reads_each_run_when_its_seeds_baseline_finished():
    from paper_comparison_page import at_baseline_time, training_hours

    def curve(iterations, seconds, psnrs):
        return [{"iteration": i, "wall_seconds": s, "psnr_rgb": p}
                for i, s, p in zip(iterations, seconds, psnrs, strict=True)]

    # 0.4 s per iteration, so the first validation (iteration 250) came 100 s after the start
    baseline = {"seed": 1, "validation_curve": curve([250, 500, 750], [0, 100, 200], [20, 21, 22])}
    assert training_hours(baseline["validation_curve"]) == pytest.approx([100 / 3600, 200 / 3600, 300 / 3600])
    # 1 s per iteration: at the baseline's 300 s it is a fifth of the way from iteration 250 (250 s) to 500 (500 s)
    slower = {"seed": 1, "validation_curve": curve([250, 500], [0, 250], [20, 30])}
    faster = {"seed": 1, "validation_curve": curve([250, 500], [0, 10], [25, 26])}  # done sooner: its final value
    unpaired = {"seed": 2, "validation_curve": curve([250, 500], [0, 10], [25, 26])}
    assert at_baseline_time([slower, faster, unpaired], [baseline]) == pytest.approx([22.0, 26.0])


def _scored(cell: str, input_psnr: float, photos: str | None = None) -> dict:
    record = {"cell": cell, "task": "derain",
              "scores": {"held_out": {"derain:low": {"input_psnr": input_psnr}}}}
    return record | ({"photos": {"train": photos}} if photos else {})


def test_the_page_refuses_records_scored_on_other_inputs_or_trained_on_other_photos():
    from paper_comparison_page import INPUT_PSNR_TOLERANCE_DB, check_comparable

    check_comparable([_scored("a", 25.0, "x"), _scored("b", 25.0 + INPUT_PSNR_TOLERANCE_DB / 2, "x"),
                      _scored("old", 25.0)])
    with pytest.raises(SystemExit, match="b: held_out derain:low has input PSNR 25.1000 dB, a 25.0000 dB"):
        check_comparable([_scored("a", 25.0), _scored("b", 25.1)])
    with pytest.raises(SystemExit, match="the train photos differ between runs"):
        check_comparable([_scored("a", 25.0, "x"), _scored("b", 25.0, "y")])
