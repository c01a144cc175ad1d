"""The web app: one page and a small JSON API over :func:`irconstyle.restore`, the bundled and installed models
and the degradation detector. Built on Starlette; :func:`irconstyle.app.serve` runs it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
import time
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from irconstyle.app import ServeError
from irconstyle.app.jobs import FINISHED, RUNNING, Job, JobQueue, QueueFullError
from irconstyle.app.workspace import Upload, Workspace, write_preview
from irconstyle.atomic import atomic_write
from irconstyle.data.io import ImageReadError, read_image, write_image
from irconstyle.detect import AUTO_MIN_CONFIDENCE
from irconstyle.pretrained import installed_model_path, installed_models
from irconstyle.restoration import TASKS, bundled_model_path, restore
from irconstyle.zoo.pretrained import resolve

DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_MAX_MEGAPIXELS = 80  # below Pillow's decompression-bomb warning (89 megapixels)
PREVIEW_MAX_SIDE = 2048
STOP_WAIT_S = 10.0  # how long removing a photo waits for its running restore to stop
AUTO = "auto"
TASK_LABELS = {"none": "looks clean", "denoise": "noise", "derain": "rain", "dehaze": "haze", "deblur": "blur",
               "enhance": "low light", "retouch": "retouching"}
STATIC = Path(str(resources.files("irconstyle") / "app" / "static"))


class UploadRejected(Exception):
    """An upload the server will not keep; ``status`` is the HTTP status, the message names the file."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Detector:
    """The degradation detector, loaded on first use; any failure becomes a note instead of an error.

    ``detector``: a callable ``image -> Detection`` (with ``task``, ``confidence``, ``scores``, ``level``),
    None for none, or ``"auto"`` for ``irconstyle.detect.detect`` where that is installed.
    """

    def __init__(self, detector: Callable[[np.ndarray], Any] | str | None) -> None:
        self._detector = detector
        self._unavailable = None if detector is not None else "Detection is off: choose the degradation yourself."
        self._lock = threading.Lock()

    def __call__(self, pixels: np.ndarray) -> tuple[dict | None, str | None]:
        with self._lock:
            if self._detector == AUTO:
                try:
                    self._detector = importlib.import_module("irconstyle.detect").detect
                except (ImportError, AttributeError) as error:
                    self._detector = None
                    missing = isinstance(error, ModuleNotFoundError) and error.name == "irconstyle.detect"
                    reason = "this irconstyle has no detector" if missing else f"irconstyle.detect: {error}"
                    self._unavailable = f"Detection is unavailable ({reason}): choose the degradation yourself."
            if self._detector is None:
                return None, self._unavailable
            try:
                detection = self._detector(pixels)
            except Exception as error:  # a detector bug must not lose the upload
                reason = f"{type(error).__name__}: {_one_line(error)}"
                return None, f"Detection failed ({reason}): choose the degradation yourself."
        level = getattr(detection, "level", None)
        return {
            "task": str(detection.task),
            "label": TASK_LABELS.get(str(detection.task), str(detection.task)),
            "confidence": float(detection.confidence),
            "scores": {str(task): float(score) for task, score in (getattr(detection, "scores", None) or {}).items()},
            "level": None if level is None else float(level),
        }, None


class Models:
    """The models the page offers: the bundled one of each task and the installed ones, by name; the last one
    used stays loaded."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._loaded: tuple[tuple, Any] | None = None

    def choices(self) -> list[dict]:
        bundled = [{"name": task, "task": task, "kind": "bundled",
                    "label": f"bundled {TASK_LABELS[task]} model (small, fast)"} for task in TASKS]
        installed = [{"name": entry.name, "task": entry.task, "kind": "installed",
                      "label": f"{entry.name}: {entry.description}" if entry.description else entry.name}
                     for entry in installed_models() if entry.name not in TASKS]
        return bundled + installed

    def load(self, name: str):
        path = resolve_model_path(name)
        key = (name, str(path), path.stat().st_mtime_ns if path else 0)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the previous model before loading the next
            self._loaded = (key, resolve(name, device=self.device))  # the descriptor: restore keeps its native tile
        return self._loaded[1]


def resolve_model_path(name: str) -> Path | None:
    return bundled_model_path(name) if name in TASKS else installed_model_path(name)


def create_app(
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    detector: Callable[[np.ndarray], Any] | str | None = AUTO,
    work_dir: str | Path | None = None,
    keep_uploads: int = 64,
    max_waiting: int = 32,
    device: str = "cpu",
) -> Starlette:
    """The web app as an ASGI application. Its temporary folder (under ``work_dir``, default the system's) and
    its restore worker live from the app's start-up to its shutdown."""
    if work_dir is not None and not Path(work_dir).is_dir():
        problem = "is not a folder" if Path(work_dir).exists() else "does not exist"
        raise ServeError(f"{work_dir}: the folder for temporary files {problem}")
    max_upload_bytes = int(max_upload_mb * 2**20)
    max_pixels = int(max_megapixels * 1e6)
    detect = Detector(detector)
    models = Models(device)
    queue = JobQueue(max_waiting=max_waiting, describe_error=_one_line)
    state: dict[str, Workspace] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state["workspace"] = Workspace(work_dir, keep_uploads=keep_uploads)
        queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(queue.stop)
            state.pop("workspace").close()

    def workspace() -> Workspace:
        return state["workspace"]

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def config(request: Request) -> Response:
        choices = await run_in_threadpool(models.choices)
        tasks = list(TASKS) + sorted({c["task"] for c in choices if c["task"] and c["task"] not in TASKS})
        return JSONResponse({
            "max_upload_bytes": max_upload_bytes, "max_megapixels": max_megapixels,
            "min_confidence": AUTO_MIN_CONFIDENCE,
            "tasks": [{"name": task, "label": TASK_LABELS.get(task, task)} for task in tasks],
            "models": choices,
        })

    async def upload(request: Request) -> Response:
        name = Path(request.query_params.get("name") or "photo").name[:200] or "photo"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_upload_bytes:
            return _error(413, _too_large(name, int(declared), max_upload_mb))
        upload_id = workspace().new_id()
        path = workspace().upload_path(upload_id)
        received = 0
        try:
            with atomic_write(path) as temporary, open(temporary, "wb") as file:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > max_upload_bytes:
                        raise UploadRejected(413, _too_large(name, None, max_upload_mb))
                    file.write(chunk)
            upload = await run_in_threadpool(_inspect, path, name, upload_id)
        except UploadRejected as error:
            path.unlink(missing_ok=True)
            return _error(error.status, str(error))
        except ClientDisconnect:
            path.unlink(missing_ok=True)
            return _error(400, f"{name}: the upload was interrupted")
        except BaseException:
            path.unlink(missing_ok=True)
            workspace().preview_path(upload_id).unlink(missing_ok=True)
            raise
        busy = {job.description["upload"] for job in queue.jobs() if job.state not in FINISHED}
        for evicted in workspace().add(upload, busy):
            for job_id in evicted.job_ids:
                if job := queue.get(job_id):
                    queue.forget(job)
        return JSONResponse(upload.as_json(), status_code=201)

    def _inspect(path: Path, name: str, upload_id: str) -> Upload:
        """Check the uploaded file (an image, not too many pixels), write its preview and detect its degradation."""
        width, height = _declared_size(path)
        _check_pixels(name, width, height, max_pixels)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pixels = read_image(path)
            except ImageReadError as error:
                raise UploadRejected(415, str(error).replace(str(path), name)) from None
        _check_pixels(name, pixels.shape[1], pixels.shape[0], max_pixels)
        preview = workspace().preview_path(upload_id)
        write_preview(preview, pixels, PREVIEW_MAX_SIDE)
        detection, note = detect(pixels)
        return Upload(id=upload_id, name=name, path=path, preview=preview, width=pixels.shape[1],
                      height=pixels.shape[0], bit_depth=16 if pixels.dtype == np.uint16 else 8,
                      detection=detection, detection_note=note,
                      notes=[str(w.message).replace(str(path), name) for w in caught])

    async def upload_preview(request: Request) -> Response:
        upload = workspace().get(request.path_params["id"])
        if upload is None:
            return _error(404, _gone("photo"))
        return FileResponse(upload.preview, media_type="image/png")

    async def delete_upload(request: Request) -> Response:
        upload = workspace().get(request.path_params["id"])
        if upload is None:
            return _error(404, _gone("photo"))
        jobs = [job for job_id in upload.job_ids if (job := queue.get(job_id))]
        for job in jobs:
            queue.cancel(job)
        deadline = time.monotonic() + STOP_WAIT_S  # a running restore stops at its next tile
        while any(job.state == RUNNING for job in jobs) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if any(job.state == RUNNING for job in jobs):
            return _error(409, f"{upload.name}: its restore is still stopping; remove it again in a moment")
        for job_id in upload.job_ids:
            if job := queue.get(job_id):
                queue.forget(job)
        workspace().remove(upload.id)
        return Response(status_code=204)

    async def submit(request: Request) -> Response:
        try:
            body = await request.json()
            upload_id, model = str(body["upload"]), str(body["model"])
        except (ValueError, KeyError, TypeError):
            return _error(400, 'expected a JSON body {"upload": ID, "model": NAME}')
        upload = workspace().get(upload_id)
        if upload is None:
            return _error(404, _gone("photo"))
        choices = {choice["name"]: choice for choice in await run_in_threadpool(models.choices)}
        if model not in choices:
            return _error(400, f"no model named {model!r}; choose one of {', '.join(choices)}")

        def work(job: Job) -> dict:
            job.set_phase("reading the photo")
            pixels = read_image(upload.path)
            job.set_phase("loading the model")
            network = models.load(model)
            job.set_phase("restoring")
            restored = restore(pixels, model=network, device=device, progress=job.report)
            job.set_phase("saving")
            write_image(workspace().result_path(job.id), restored)
            write_preview(workspace().preview_path(job.id), restored, PREVIEW_MAX_SIDE)
            return {"width": restored.shape[1], "height": restored.shape[0],
                    "bit_depth": 16 if restored.dtype == np.uint16 else 8}

        try:
            job = queue.submit(work, {"upload": upload.id, "model": model, "task": choices[model]["task"]})
        except QueueFullError as error:
            return _error(503, str(error))
        upload.job_ids.append(job.id)
        return JSONResponse(_job_json(job), status_code=202)

    def _job_json(job: Job) -> dict:
        upload = workspace().get(job.description["upload"])
        elapsed = (job.finished or time.monotonic()) - (job.started or job.submitted)
        answer = {"id": job.id, **job.description, "state": job.state, "phase": job.phase,
                  "position": queue.position(job), "ahead": queue.ahead(job), "done": job.done, "total": job.total,
                  "error": job.error, "seconds": round(elapsed, 2) if job.started else None, "result": None}
        if job.state == "done" and upload is not None:
            stem = Path(upload.name).stem or "photo"
            answer["result"] = {**job.result, "preview": f"/api/jobs/{job.id}/preview",
                                "download": f"/api/jobs/{job.id}/download", "filename": f"{stem}_restored.png"}
        return answer

    def _finished_job(request: Request) -> tuple[Job | None, Response | None]:
        job = queue.get(request.path_params["id"])
        if job is None or workspace().get(job.description["upload"]) is None:
            return None, _error(404, _gone("restore"))
        if job.state != "done":
            return None, _error(409, f"the restore is {job.state}, not done")
        return job, None

    async def job_status(request: Request) -> Response:
        job = queue.get(request.path_params["id"])
        if job is None:
            return _error(404, _gone("restore"))
        return JSONResponse(_job_json(job))

    async def cancel_job(request: Request) -> Response:
        job = queue.get(request.path_params["id"])
        if job is None:
            return _error(404, _gone("restore"))
        queue.cancel(job)
        return JSONResponse(_job_json(job))

    async def job_preview(request: Request) -> Response:
        job, problem = _finished_job(request)
        return problem or FileResponse(workspace().preview_path(job.id), media_type="image/png")

    async def job_download(request: Request) -> Response:
        job, problem = _finished_job(request)
        if problem:
            return problem
        filename = _job_json(job)["result"]["filename"]
        return FileResponse(workspace().result_path(job.id), media_type="image/png", filename=filename)

    async def unexpected(request: Request, error: Exception) -> Response:
        return _error(500, f"internal error: {_one_line(error)}")

    routes = [
        Route("/", page),
        Route("/api/config", config),
        Route("/api/uploads", upload, methods=["POST"]),
        Route("/api/uploads/{id}/preview", upload_preview),
        Route("/api/uploads/{id}", delete_upload, methods=["DELETE"]),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{id}", job_status),
        Route("/api/jobs/{id}", cancel_job, methods=["DELETE"]),
        Route("/api/jobs/{id}/preview", job_preview),
        Route("/api/jobs/{id}/download", job_download),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: unexpected})
    app.state.queue = queue
    app.state.workspace = workspace
    return app


def _declared_size(path: Path) -> tuple[int, int]:
    """Width and height from the file's header without decoding its pixels; (0, 0) where Pillow cannot tell
    (then reading the file reports the problem)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Exception:
        return 0, 0


def _check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UploadRejected(
            413, f"{name}: {width}×{height} is {width * height / 1e6:.1f} megapixels, over this server's limit of "
            f"{max_pixels / 1e6:g} (irconstyle serve --max-megapixels N raises it)")


def _too_large(name: str, size: int | None, limit_mb: float) -> str:
    """``size`` None: the upload was stopped once it passed the limit, its full size is unknown."""
    amount = "the file is" if size is None else (
        f"{round(size / 2**20, 1):g} MB is" if size >= 2**20 else f"{size / 2**10:.0f} KB is")
    return (f"{name}: {amount} over this server's upload limit of {limit_mb:g} MB "
            "(irconstyle serve --max-upload-mb N raises it)")


def _gone(what: str) -> str:
    return f"no such {what} on the server (it was removed, or the server restarted); upload the photo again"


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
