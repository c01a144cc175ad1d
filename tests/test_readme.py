"""Every function the README's Python examples call is a public name of the package (`irconstyle.X`)."""

import re
from pathlib import Path

import pytest

import irconstyle

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_python_examples():
    assert python_blocks()


@pytest.mark.parametrize("name", sorted({n for b in python_blocks() for n in re.findall(r"irconstyle\.(\w+)\(", b)}))
def test_every_function_the_readme_calls_is_public(name):
    assert name in irconstyle.__all__ and callable(getattr(irconstyle, name))
