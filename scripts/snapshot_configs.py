"""Write tests/training/resolved_configs.json: every shipped config in configs/ fully resolved (its bases merged,
the schema's defaults filled in), which tests/training/test_shipped_configs.py compares the configs with.

    PYTHONPATH=src python scripts/snapshot_configs.py

Rerun it only when a config is meant to train something else; the diff of the JSON shows what changed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "training"))

from training_setup import CONFIG_DIR, RESOLVED_CONFIGS, shipped_configs  # noqa: E402

from irconstyle.training import load_config  # noqa: E402


def resolved_configs() -> dict[str, dict]:
    """Path relative to configs/ -> the config as the trainer stores it."""
    return {path.relative_to(CONFIG_DIR).as_posix(): load_config(path).to_dict() for path in shipped_configs()}


def main() -> None:
    configs = resolved_configs()
    text = json.dumps(configs, indent=1)
    # Lists of plain values on one line (JSON text holds no raw newline inside a string)
    text = re.sub(r"\[\n\s*([^][{}]*?)\n\s*\]", lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text)
    assert json.loads(text) == configs
    RESOLVED_CONFIGS.write_text(text + "\n")
    print(f"{RESOLVED_CONFIGS.relative_to(REPO)}: {len(configs)} configs")


if __name__ == "__main__":
    main()
