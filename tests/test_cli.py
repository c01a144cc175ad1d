import pytest

from irconstyle.cli import build_parser


@pytest.mark.parametrize(("given", "parsed"), [([], "auto"), (["--tile", "auto"], "auto"), (["--tile", "0"], None),
                                               (["--tile", "384"], 384)])
def test_restore_tile_option(given, parsed):
    assert build_parser().parse_args(["restore", "in.png", *given]).tile == parsed


@pytest.mark.parametrize("bad", ["big", "-8"])
def test_restore_tile_option_refuses_nonsense(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["restore", "in.png", "--tile", bad])
    assert "tile" in capsys.readouterr().err
