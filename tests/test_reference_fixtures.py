"""The authors' reference outputs: skipped with a reason in a user's clone, never skipped in CI."""

from __future__ import annotations

import pytest

from conftest import _reference_dir


def test_reference_tests_skip_without_shared_but_fail_where_required(tmp_path, monkeypatch):
    (tmp_path / "present").mkdir()
    (tmp_path / "present" / "manifest.json").write_text("{}")
    assert _reference_dir(tmp_path / "present") == tmp_path / "present"
    monkeypatch.delenv("IRCONSTYLE_REQUIRE_SHARED", raising=False)
    with pytest.raises(pytest.skip.Exception, match="absent here"):
        _reference_dir(tmp_path / "absent")
    monkeypatch.setenv("IRCONSTYLE_REQUIRE_SHARED", "1")
    with pytest.raises(pytest.fail.Exception, match="IRCONSTYLE_REQUIRE_SHARED is set"):
        _reference_dir(tmp_path / "absent")
