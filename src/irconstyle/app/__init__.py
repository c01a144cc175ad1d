"""The local web app (``irconstyle serve``): drop photos, see the detected degradation, pick a model, restore with
progress, compare before and after, download the result at full resolution and bit depth.

It needs the optional dependencies Starlette and uvicorn: ``pip install irconstyle[app]``.
"""

from __future__ import annotations

import importlib
import socket
import threading
import time
from typing import Any

REQUIREMENTS = ("starlette", "uvicorn")
DEFAULT_PORT = 8000


class AppDependencyError(ImportError):
    """Starlette or uvicorn is not installed; the message says how to install them."""


class ServeError(OSError):
    """The server cannot run as asked: it cannot listen there (port taken, address not local, …) or its folder for
    temporary files is missing."""


def require_app_dependencies() -> None:
    missing = []
    for name in REQUIREMENTS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise AppDependencyError(f"the web app needs {' and '.join(missing)}: pip install irconstyle[app]")


def create_app(**options: Any):
    """The web app as an ASGI application; see :func:`irconstyle.app.server.create_app` for the options."""
    require_app_dependencies()
    from irconstyle.app.server import create_app as build

    return build(**options)


class AppServer:
    """``app`` served by uvicorn on a socket bound at construction (port 0 picks a free one): in the foreground
    with :meth:`run`, or on a thread with :meth:`start` and :meth:`stop`."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        require_app_dependencies()
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError as error:
            self.socket.close()
            raise ServeError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        self.socket.listen(64)
        bound_port = self.socket.getsockname()[1]
        self.url = f"http://[{host}]:{bound_port}/" if family == socket.AF_INET6 else f"http://{host}:{bound_port}/"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted (Ctrl+C); the app's temporary files are removed on the way out."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 30.0) -> AppServer:
        self._thread = threading.Thread(target=self.run, name="irconstyle-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServeError(f"the server at {self.url} stopped while starting")
            if time.monotonic() > deadline:
                raise ServeError(f"the server at {self.url} did not start within {timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, on_listening=None, **options: Any) -> None:
    """Serve the web app at ``host:port`` until interrupted; ``on_listening(url)`` is called once it listens.
    ``options`` go to :func:`create_app`."""
    server = AppServer(create_app(**options), host=host, port=port)
    if on_listening is not None:
        on_listening(server.url)
    server.run()


__all__ = ["AppDependencyError", "AppServer", "ServeError", "create_app", "serve"]
