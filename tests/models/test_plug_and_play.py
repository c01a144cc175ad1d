"""The plug-and-play guide's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plug-and-play.md"


def test_guide_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 3, "the guide lost its code blocks"
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(GUIDE), "exec"), namespace)  # the asserts inside must hold

    assert torch.isfinite(namespace["loss"])
    assert namespace["result"].shape == namespace["photo"].shape
    assert int(namespace["model"].constyle.queue_ptr) == namespace["clean"].shape[0]
