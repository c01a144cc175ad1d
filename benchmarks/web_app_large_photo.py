"""A 60-megapixel photo through `irconstyle serve`: upload, restore in tiles with progress, download; seconds per
stage and the server's peak memory.

``python benchmarks/web_app_large_photo.py --megapixels 60 --threads 1`` (run from the checkout; it starts its own
server on a free port with a private temporary folder and stops it afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """A noisy JPEG of about ``megapixels``: the held-out test photo tiled, with σ 25 noise (seed 0)."""
    from PIL import Image

    from irconstyle.data.io import read_image

    tile = read_image(REPO / "tests" / "assets" / "photos" / "val" / "chelsea.png").astype(np.float32)
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 / width)
    rng = np.random.default_rng(0)
    rows = []
    for top in range(0, height, 512):  # in bands, to keep this script's own memory small
        band = np.tile(tile, (-(-min(512, height - top) // 128), -(-width // 128), 1))[: min(512, height - top), :width]
        rows.append(np.clip(band + rng.normal(0, 25, band.shape), 0, 255).astype(np.uint8))
    Image.fromarray(np.concatenate(rows)).save(path, quality=90)
    return width, height


def request(url: str, data: bytes | None = None, method: str = "GET", json_body: dict | None = None):
    headers = {}
    if json_body is not None:
        data, headers = json.dumps(json_body).encode(), {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers),
                                timeout=3600) as response:
        return response.read()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="denoise")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "large.jpg"
        width, height = make_photo(photo, args.megapixels)
        print(f"photo: {width}×{height} ({width * height / 1e6:.1f} MP), {photo.stat().st_size / 2**20:.1f} MB JPEG")
        environment = dict(os.environ, PYTHONPATH=str(REPO / "src"), TMPDIR=folder)
        server = subprocess.Popen([sys.executable, "-m", "irconstyle", "serve", "--port", "0", "--threads",
                                   str(args.threads)], env=environment, stdout=subprocess.PIPE, text=True)
        try:
            url = server.stdout.readline().split("open ", 1)[1].split()[0]
            start = time.perf_counter()
            upload = json.loads(request(url + "api/uploads?name=large.jpg", photo.read_bytes(), "POST"))
            uploaded = time.perf_counter()
            print(f"upload + check + preview + detection: {uploaded - start:.1f} s -> {upload['detection_note']}")
            job = json.loads(request(url + "api/jobs", method="POST", json_body={"upload": upload["id"],
                                                                                 "model": args.model}))
            seen = set()
            while job["state"] not in ("done", "failed", "cancelled"):
                time.sleep(1)
                job = json.loads(request(url + f"api/jobs/{job['id']}"))
                seen.add(job["done"])
            restored = time.perf_counter()
            print(f"restore: {job['state']} {job['error'] or ''} in {restored - uploaded:.1f} s, {job['total']} tiles, "
                  f"{len(seen)} distinct progress readings (polled each second)")
            result = request(url + f"api/jobs/{job['id']}/download")
            print(f"download: {len(result) / 2**20:.1f} MB PNG in {time.perf_counter() - restored:.1f} s")
            (Path(folder) / "out.png").write_bytes(result)
            from irconstyle.data.io import read_image

            print(f"downloaded image shape {read_image(Path(folder) / 'out.png').shape}")
            print(f"server peak RSS (VmHWM): {peak_rss_mb(server.pid):.0f} MB")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
