"""Read a TensorFlow.js graph model, as npm packages ship it, without TensorFlow.

A package (its ``.tgz`` from ``npm pack``, or the unpacked folder) holds ``package/package.json`` and
``package/models/model.json``: a GraphDef in JSON (``modelTopology``) plus a manifest of weights stored back
to back in binary shards (``weightsManifest``). The graph's weights are the manifest's tensors, each named by
the graph node that holds it.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irconstyle.models.checkpoint import CheckpointError

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


class PackageError(CheckpointError):
    """A file is not a readable TF.js graph-model package."""


@dataclass
class GraphModel:
    """A TF.js graph model: its package metadata, graph nodes and weights."""

    source: Path
    package: dict[str, Any]
    nodes: dict[str, dict[str, Any]]
    weights: dict[str, np.ndarray]
    files: dict[str, bytes] = field(default_factory=dict)  # other small package files (assets), by path
    _consumers: dict[str, list[str]] | None = None

    def consumers(self, name: str) -> list[str]:
        """Names of the nodes that take node ``name``'s output as an input."""
        if self._consumers is None:
            consumers: dict[str, list[str]] = defaultdict(list)
            for node in self.nodes.values():
                for source in node.get("input", []):
                    consumers[source.lstrip("^").split(":")[0]].append(node["name"])
            self._consumers = dict(consumers)
        return self._consumers.get(name, [])


def _read_members(path: Path) -> dict[str, bytes]:
    """The files of a package, by path relative to its ``package/`` folder."""
    if path.is_dir():
        root = path / "package" if (path / "package").is_dir() else path
        return {
            str(file.relative_to(root)): file.read_bytes()
            for file in sorted(root.rglob("*"))
            if file.is_file() and (file.parent.name in ("models", "assets") or file.name == "package.json")
        }
    if not path.is_file():
        raise PackageError(f"{path}: no such file or folder")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as archive:  # npm pack writes gzip-compressed tarballs
            for member in archive:
                if not member.isfile() or not member.name.startswith("package/"):
                    continue
                handle = archive.extractfile(member)
                members[member.name.removeprefix("package/")] = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PackageError(f"{path}: not a readable npm tarball (truncated or corrupt: {reason})") from None
    return members


def _short_shard(paths: list[str], blobs: list[bytes]) -> str:
    """The shard that is most likely truncated: the first one shorter than the first shard's size, else the last
    (the converter writes equal shards and a shorter last one)."""
    for shard, blob in zip(paths[:-1], blobs[:-1], strict=True):
        if len(blob) < len(blobs[0]):
            return f"weight shard models/{shard} ({len(blob)} bytes)"
    return f"weight shard models/{paths[-1]} ({len(blobs[-1])} bytes)"


def read_graph_model(path: str | Path) -> GraphModel:
    """Read a TF.js graph-model package (``.tgz`` or folder) into a :class:`GraphModel`.

    Every manifest tensor is decoded; a missing or short shard, an unsupported dtype or quantisation, or a
    tensor that the graph does not hold raises one :class:`PackageError` naming the file.
    """
    path = Path(path)
    members = _read_members(path)
    if "models/model.json" not in members:
        raise PackageError(f"{path}: not a TF.js graph-model package (no package/models/model.json)")
    try:
        model_json = json.loads(members["models/model.json"])
        package = json.loads(members.get("package.json", b"{}"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PackageError(f"{path}: models/model.json is not valid JSON ({error})") from None
    if model_json.get("format") != "graph-model" or "modelTopology" not in model_json:
        found = model_json.get("format")
        raise PackageError(f"{path}: models/model.json is not a TF.js graph model (format {found!r})")
    nodes = {node["name"]: node for node in model_json["modelTopology"].get("node", [])}
    weights: dict[str, np.ndarray] = {}
    for group in model_json.get("weightsManifest", []):
        blobs = []
        for shard in group["paths"]:
            key = f"models/{shard}"
            if key not in members:
                raise PackageError(f"{path}: weight shard models/{shard} is missing")
            blobs.append(members[key])
        buffer = b"".join(blobs)
        offset = 0
        for entry in group["weights"]:
            name, dtype, shape = entry["name"], entry["dtype"], [int(side) for side in entry["shape"]]
            if "quantization" in entry:
                raise PackageError(f"{path}: weight {name} is quantised, which is not supported")
            if dtype not in _DTYPES:
                raise PackageError(f"{path}: weight {name} has unsupported dtype {dtype}")
            if name not in nodes:
                raise PackageError(f"{path}: weight {name} is not a node of the graph")
            size = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
            if offset + size > len(buffer):
                raise PackageError(f"{path}: {_short_shard(group['paths'], blobs)} is short: the manifest needs more")
            weights[name] = np.frombuffer(buffer, dtype=_DTYPES[dtype], count=int(np.prod(shape)), offset=offset)
            weights[name] = weights[name].reshape(shape)
            offset += size
        if offset != len(buffer):
            extra = len(buffer) - offset
            raise PackageError(f"{path}: the weight shards hold {extra} bytes that the manifest does not list")
    assets = {name: data for name, data in members.items() if name.startswith("assets/")}
    return GraphModel(source=path, package=package, nodes=nodes, weights=weights, files=assets)
