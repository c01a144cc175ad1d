"""The README and the usage guide call only public names of the package (`irconstyle.X`), and the README's models
table lists exactly the pretrained registry's bundled models and releases, with their tasks."""

import re
from pathlib import Path

import pytest

import irconstyle

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
USAGE = ROOT / "docs" / "usage.md"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL)


def called_names() -> set[str]:
    """``irconstyle.X(`` in the usage guide's Python blocks and in the README's code spans."""
    code = python_blocks(USAGE) + re.findall(r"`([^`\n]+)`", README.read_text(encoding="utf-8"))
    return {name for text in code for name in re.findall(r"\birconstyle\.(\w+)\(", text)}


def models_table() -> dict[str, str]:
    """name -> task, from the table under the README's ``## Models`` heading."""
    section = README.read_text(encoding="utf-8").split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (\w+) \|", section, flags=re.MULTILINE)
    return dict(rows)


def test_the_docs_have_python_examples():
    assert python_blocks(USAGE) and "restore" in called_names()


@pytest.mark.parametrize("name", sorted(called_names()))
def test_every_function_the_docs_call_is_public(name):
    assert name in irconstyle.__all__ and callable(getattr(irconstyle, name))


def test_the_readme_models_table_is_the_registry():
    registry = {entry.name: entry.task for entry in irconstyle.pretrained_models() if entry.kind != "installed"}
    assert models_table() == registry
