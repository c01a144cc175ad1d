"""atomic_write: the one way files are replaced (checkpoints, weights, restored images)."""

from __future__ import annotations

import numpy as np
import pytest

from irconstyle.atomic import atomic_write
from irconstyle.data.io import read_image, write_image


def test_success_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_write(target, suffix=".bin") as temporary:
        assert temporary.parent == target.parent and temporary.name.startswith(".out.bin.")
        assert temporary.name.endswith(".bin") and ".tmp" in temporary.name
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_a_failing_writer_keeps_the_previous_file(tmp_path):
    target = tmp_path / "image.png"
    write_image(target, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as temporary:
            temporary.write_bytes(b"half an ima")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]
    assert read_image(target).shape == (4, 4, 3)
