"""The web app's JSON API end to end in-process (Starlette's TestClient): uploads, detection, restores, downloads
and every way an upload or a restore can go wrong — each a clear message, and the server keeps serving."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from app_setup import CLEAN, DENOISE_GAIN_DB, fixed_detector, noisy_photo
from starlette.testclient import TestClient

from irconstyle.app import ServeError, create_app
from irconstyle.app import server as app_server
from irconstyle.app.workspace import TEMP_PREFIX
from irconstyle.data.io import read_image, write_image
from irconstyle.metrics import psnr


@pytest.fixture
def client_for(tmp_path, monkeypatch):
    monkeypatch.setenv("IRCONSTYLE_HOME", str(tmp_path / "home"))
    clients = []

    def make(**options) -> TestClient:
        options.setdefault("detector", fixed_detector())
        options.setdefault("work_dir", tmp_path)
        client = TestClient(create_app(**options))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_for) -> TestClient:
    return client_for()


def upload(client: TestClient, path: Path, name: str | None = None):
    return client.post("/api/uploads", params={"name": name or path.name}, content=path.read_bytes())


def wait_for(client: TestClient, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def restore_upload(client: TestClient, upload_id: str, model: str = "denoise") -> dict:
    answer = client.post("/api/jobs", json={"upload": upload_id, "model": model})
    assert answer.status_code == 202, answer.text
    return wait_for(client, answer.json()["id"])


def test_the_page_and_its_scripts_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing is fetched from elsewhere


def test_a_noisy_photo_is_detected_restored_and_downloaded_better(client, tmp_path):
    answer = upload(client, noisy_photo(tmp_path / "noisy cat.png"))
    assert answer.status_code == 201, answer.text
    photo = answer.json()
    assert (photo["width"], photo["height"], photo["bit_depth"]) == (128, 128, 8)
    assert photo["detection"] == {"task": "denoise", "label": "noise", "confidence": 0.9,
                                  "scores": {"denoise": 0.9, "none": 0.1}, "level": 25.0}
    assert client.get(photo["preview"]).headers["content-type"] == "image/png"
    job = restore_upload(client, photo["id"])
    assert job["state"] == "done", job
    assert job["done"] == job["total"] >= 1
    download = client.get(job["result"]["download"])
    assert download.status_code == 200
    assert "noisy%20cat_restored.png" in download.headers["content-disposition"]
    (tmp_path / "restored.png").write_bytes(download.content)
    restored, clean = read_image(tmp_path / "restored.png"), read_image(CLEAN)
    assert psnr(restored, clean) > psnr(read_image(tmp_path / "noisy cat.png"), clean) + DENOISE_GAIN_DB


def test_a_16_bit_photo_comes_back_16_bit_at_full_size(client, tmp_path):
    photo = upload(client, noisy_photo(tmp_path / "noisy16.png", bits=16)).json()
    assert photo["bit_depth"] == 16
    job = restore_upload(client, photo["id"])
    assert job["result"]["bit_depth"] == 16
    (tmp_path / "out.png").write_bytes(client.get(job["result"]["download"]).content)
    restored = read_image(tmp_path / "out.png")
    assert restored.dtype == np.uint16 and restored.shape == (128, 128, 3)
    assert len(np.unique(restored)) > 256  # really 16-bit values, not 8-bit ones scaled up


def test_large_photos_are_restored_in_tiles_with_progress(client, tmp_path):
    """The bundled dehazer restores in 128-pixel tiles (its native tile): a 192×192 photo takes four."""
    write_image(tmp_path / "larger.png", np.tile(read_image(CLEAN), (2, 2, 1))[:192, :192])
    job = restore_upload(client, upload(client, tmp_path / "larger.png").json()["id"], model="dehaze")
    assert job["state"] == "done", job
    assert job["total"] == job["done"] == 4


@pytest.mark.parametrize("content, problem", [
    (b"just some text\n", "not an image file"),
    (b"", "empty file"),
    (CLEAN.read_bytes()[:2000], "truncated"),
])
def test_a_file_that_is_not_a_readable_image_is_refused_by_name(client, tmp_path, content, problem):
    answer = client.post("/api/uploads", params={"name": "notes.png"}, content=content)
    assert answer.status_code == 415
    message = answer.json()["error"]
    assert message.startswith("notes.png: ") and problem in message and str(tmp_path) not in message
    assert client.get("/api/config").status_code == 200  # still serving
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*/uploads/*"))


def test_an_upload_over_the_size_limit_is_refused_and_not_kept(client_for, tmp_path):
    client = client_for(max_upload_mb=0.01)
    photo = noisy_photo(tmp_path / "big.png")
    assert photo.stat().st_size > 0.01 * 2**20
    declared = upload(client, photo)
    assert declared.status_code == 413
    assert declared.json()["error"].startswith("big.png: ") and "upload limit of 0.01 MB" in declared.json()["error"]

    def chunks():  # no Content-Length: the server counts while it receives
        data = photo.read_bytes()
        for start in range(0, len(data), 4096):
            yield data[start:start + 4096]

    streamed = client.post("/api/uploads", params={"name": "big.png"}, content=chunks())
    assert streamed.status_code == 413 and "upload limit" in streamed.json()["error"]
    assert not [p for p in tmp_path.glob(f"{TEMP_PREFIX}*/**/*") if p.is_file()]  # nothing half-written left
    assert client.get("/api/config").status_code == 200


def test_a_photo_over_the_pixel_limit_is_refused_before_decoding(client_for, tmp_path):
    client = client_for(max_megapixels=0.01)
    write_image(tmp_path / "wide.png", np.zeros((100, 120, 3), np.uint8))
    answer = upload(client, tmp_path / "wide.png")
    assert answer.status_code == 413
    assert answer.json()["error"] == ("wide.png: 120×100 is 0.0 megapixels, over this server's limit of 0.01 "
                                      "(irconstyle serve --max-megapixels N raises it)")


def test_without_a_detector_the_photo_still_uploads_and_says_why(client_for, tmp_path, monkeypatch):
    photo = noisy_photo(tmp_path / "noisy.png")
    none = upload(client_for(detector=None), photo).json()
    assert none["detection"] is None and none["detection_note"] == "Detection is off: choose the degradation yourself."
    monkeypatch.setitem(sys.modules, "irconstyle.detect", None)  # what a package without the detector gives
    auto = upload(client_for(detector="auto"), photo).json()
    assert auto["detection"] is None
    assert auto["detection_note"] == ("Detection is unavailable (this irconstyle has no detector): "
                                      "choose the degradation yourself.")

    def broken(image):
        raise RuntimeError("weights missing")

    failing = upload(client_for(detector=broken), photo)
    assert failing.status_code == 201
    assert failing.json()["detection"] is None and "weights missing" in failing.json()["detection_note"]


def test_the_detector_is_loaded_once_and_called_on_the_decoded_pixels(client_for, tmp_path):
    detector = fixed_detector("deblur", level=None)
    client = client_for(detector=detector)
    for _ in range(2):
        assert upload(client, noisy_photo(tmp_path / "noisy.png")).json()["detection"]["label"] == "blur"
    assert detector.calls == [(128, 128, 3), (128, 128, 3)]


def test_installed_models_are_offered_by_name_and_restore(client_for, tmp_path):
    from irconstyle.pretrained import install
    from irconstyle.restoration import bundled_model_path

    install(bundled_model_path("denoise"), name="my-denoiser")
    client = client_for()
    models = {m["name"]: m for m in client.get("/api/config").json()["models"]}
    assert set(models) == {"denoise", "derain", "dehaze", "deblur", "my-denoiser"}
    assert models["my-denoiser"]["kind"] == "installed" and models["my-denoiser"]["task"] == "denoise"
    job = restore_upload(client, upload(client, noisy_photo(tmp_path / "n.png")).json()["id"], model="my-denoiser")
    assert job["state"] == "done"


def test_the_page_learns_the_confidence_below_which_auto_leaves_photos_alone(client_for):
    from irconstyle.detect import AUTO_MIN_CONFIDENCE

    assert client_for().get("/api/config").json()["min_confidence"] == AUTO_MIN_CONFIDENCE


@pytest.mark.parametrize("body, status, problem", [
    ({"upload": "u999", "model": "denoise"}, 404, "no such photo"),
    ({"upload": "u1", "model": "nope"}, 400, "no model named 'nope'"),
    ({"model": "denoise"}, 400, "expected a JSON body"),
])
def test_bad_restore_requests_get_a_message(client, tmp_path, body, status, problem):
    upload(client, noisy_photo(tmp_path / "n.png"))
    answer = client.post("/api/jobs", json=body)
    assert answer.status_code == status and problem in answer.json()["error"]


class GatedRestore:
    """Wraps the real restore so that a test holds a job running until it opens the gate."""

    def __init__(self, monkeypatch) -> None:
        self.gate, self.entered = threading.Event(), threading.Event()
        real = app_server.restore

        def gated(*args, **kwargs):
            self.entered.set()
            assert self.gate.wait(60)
            return real(*args, **kwargs)

        monkeypatch.setattr(app_server, "restore", gated)


def test_two_restores_at_once_queue_and_show_their_place(client, tmp_path, monkeypatch):
    gated = GatedRestore(monkeypatch)
    first, second = (upload(client, noisy_photo(tmp_path / f"{n}.png")).json()["id"] for n in ("a", "b"))
    running = client.post("/api/jobs", json={"upload": first, "model": "denoise"}).json()
    assert gated.entered.wait(60)
    waiting = client.post("/api/jobs", json={"upload": second, "model": "denoise"}).json()
    assert client.get(f"/api/jobs/{running['id']}").json()["state"] == "running"
    assert (waiting["state"], waiting["position"], waiting["ahead"]) == ("queued", 1, 1)
    unfinished = client.get(f"/api/jobs/{running['id']}/download")
    assert unfinished.status_code == 409 and "running" in unfinished.json()["error"]
    gated.gate.set()
    assert wait_for(client, running["id"])["state"] == "done"
    assert wait_for(client, waiting["id"])["state"] == "done"


def test_a_waiting_restore_can_be_cancelled(client, tmp_path, monkeypatch):
    gated = GatedRestore(monkeypatch)
    photo = upload(client, noisy_photo(tmp_path / "a.png")).json()["id"]
    running = client.post("/api/jobs", json={"upload": photo, "model": "denoise"}).json()
    assert gated.entered.wait(60)
    waiting = client.post("/api/jobs", json={"upload": photo, "model": "denoise"}).json()
    assert client.delete(f"/api/jobs/{waiting['id']}").json()["state"] == "cancelled"
    gated.gate.set()
    assert wait_for(client, running["id"])["state"] == "done"


def test_a_failing_restore_fails_alone_and_the_next_one_works(client, tmp_path, monkeypatch):
    photo = upload(client, noisy_photo(tmp_path / "a.png")).json()["id"]

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory\n(details)")

    monkeypatch.setattr(app_server, "restore", out_of_memory)
    failed = restore_upload(client, photo)
    assert failed["state"] == "failed" and failed["error"] == "DefaultCPUAllocator: not enough memory"
    assert client.get(f"/api/jobs/{failed['id']}/download").status_code == 409
    monkeypatch.undo()
    assert restore_upload(client, photo)["state"] == "done"


def test_removing_a_photo_removes_its_files(client, tmp_path):
    photo = upload(client, noisy_photo(tmp_path / "a.png")).json()
    job = restore_upload(client, photo["id"])
    assert len([p for p in tmp_path.glob(f"{TEMP_PREFIX}*/**/*") if p.is_file()]) == 4  # photo, result, 2 previews
    assert client.delete(f"/api/uploads/{photo['id']}").status_code == 204
    assert client.get(photo["preview"]).status_code == 404
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert not [p for p in tmp_path.glob(f"{TEMP_PREFIX}*/**/*") if p.is_file()]


def test_only_the_newest_photos_are_kept(client_for, tmp_path):
    client = client_for(keep_uploads=2)
    ids = [upload(client, noisy_photo(tmp_path / "a.png")).json()["id"] for _ in range(3)]
    assert client.get(f"/api/uploads/{ids[0]}/preview").status_code == 404
    assert all(client.get(f"/api/uploads/{i}/preview").status_code == 200 for i in ids[1:])


def test_the_temporary_folder_is_removed_at_shutdown_and_abandoned_ones_at_start(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f"{TEMP_PREFIX}{finished.stdout.strip()}-old"
    (abandoned / "uploads").mkdir(parents=True)
    with TestClient(create_app(detector=None, work_dir=tmp_path)) as client:
        assert not abandoned.exists()
        assert upload(client, noisy_photo(tmp_path / "a.png")).status_code == 201
        assert len(list(tmp_path.glob(f"{TEMP_PREFIX}*"))) == 1
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_work_folder_that_is_not_a_folder_is_refused_before_serving(tmp_path, kind):
    work_dir = tmp_path / "work"
    if kind == "file":
        work_dir.write_text("not a folder")
    with pytest.raises(ServeError) as refused:
        create_app(detector=None, work_dir=work_dir)
    problem = "is not a folder" if kind == "file" else "does not exist"
    assert str(refused.value) == f"{work_dir}: the folder for temporary files {problem}"


def test_previews_of_large_photos_are_shrunk_but_downloads_are_not(client, tmp_path, monkeypatch):
    monkeypatch.setattr(app_server, "PREVIEW_MAX_SIDE", 64)
    photo = upload(client, noisy_photo(tmp_path / "a.png")).json()
    from PIL import Image

    assert Image.open(io.BytesIO(client.get(photo["preview"]).content)).size == (64, 64)
    job = restore_upload(client, photo["id"])
    assert Image.open(io.BytesIO(client.get(job["result"]["download"]).content)).size == (128, 128)


def test_removing_a_photo_while_it_is_restored_stops_the_restore(client, tmp_path, monkeypatch):
    started = threading.Event()

    def endless(pixels, *, progress, **options):
        for done in range(10_000):
            progress(done, 10_000)
            started.set()
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(app_server, "restore", endless)
    photo = upload(client, noisy_photo(tmp_path / "a.png")).json()
    job = client.post("/api/jobs", json={"upload": photo["id"], "model": "denoise"}).json()
    assert started.wait(60)
    assert client.delete(f"/api/uploads/{photo['id']}").status_code == 204
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert not [p for p in tmp_path.glob(f"{TEMP_PREFIX}*/**/*") if p.is_file()]
