"""`irconstyle serve`: listens on 127.0.0.1 by default, stops cleanly on Ctrl+C, and explains in one line what is
missing or taken."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from irconstyle.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


def test_without_the_app_extra_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == "irconstyle serve: the web app needs uvicorn: pip install irconstyle[app]\n"


def test_a_taken_port_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"irconstyle serve: cannot listen on 127.0.0.1:{port}: ") and error.count("\n") == 1


def test_it_serves_on_localhost_and_cleans_up_on_ctrl_c(tmp_path):
    environment = dict(os.environ, PYTHONPATH=str(SRC), TMPDIR=str(tmp_path), IRCONSTYLE_HOME=str(tmp_path / "home"))
    process = subprocess.Popen([sys.executable, "-m", "irconstyle", "serve", "--port", "0", "--max-upload-mb", "5"],
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("irconstyle serve: open http://127.0.0.1:"), line + process.stderr.read()
        url = line.split("open ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "api/config", timeout=30) as response:
            assert json.load(response)["max_upload_bytes"] == 5 * 2**20
        assert len(list(tmp_path.glob("irconstyle-serve-*"))) == 1
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    assert process.returncode == 0, process.stderr.read()
    assert not list(tmp_path.glob("irconstyle-serve-*"))
