"""Seconds from launching a minimal image page until it first answers HTTP 200: Gradio against Starlette.

The first two apps take an image and return it; only the framework differs. Run them with an interpreter that
has the framework installed (``python -m venv /tmp/venv-gradio && /tmp/venv-gradio/bin/pip install gradio``,
which also brings Starlette and uvicorn): ``/tmp/venv-gradio/bin/python benchmarks/web_app_startup.py gradio
starlette``. ``irconstyle`` is `irconstyle serve` itself (imports torch and the models' code):
``PYTHONPATH=src .venv/bin/python benchmarks/web_app_startup.py irconstyle``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

APPS = {
    "gradio": """
import gradio as gr
gr.Interface(fn=lambda image: image, inputs=gr.Image(), outputs=gr.Image()).launch(
    server_name="127.0.0.1", server_port={port}, prevent_thread_lock=False)
""",
    "starlette": """
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

async def page(request):
    return HTMLResponse("<!doctype html><input type=file><img>")

async def echo(request):
    return Response(await request.body(), media_type="image/png")

uvicorn.run(Starlette(routes=[Route("/", page), Route("/echo", echo, methods=["POST"])]),
            host="127.0.0.1", port={port}, log_level="warning")
""",
    "irconstyle": """
from irconstyle.app import serve
serve(port={port}, detector=None)
""",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_to_first_response(framework: str, timeout: float = 120.0) -> float:
    port = free_port()
    environment = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", APPS[framework].format(port=port)], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"{framework} did not answer within {timeout} s")
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("frameworks", nargs="*", default=list(APPS))
    args = parser.parse_args()
    for framework in args.frameworks:
        times = [time_to_first_response(framework) for _ in range(args.repeat)]
        print(f"{framework:10s} median {statistics.median(times):.2f} s  (min {min(times):.2f}, max {max(times):.2f}, "
              f"{args.repeat} launches)")


if __name__ == "__main__":
    main()
