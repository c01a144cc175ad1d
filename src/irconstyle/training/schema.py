"""The training configuration's schema: YAML validated into typed, frozen dataclasses.

Every key is checked: an unknown key is an error naming it and the keys allowed at that place, a value of
the wrong type is an error naming the key, the expected type and what was given, and all problems of a file
are reported together in one :class:`ConfigError`.

Numbers written as ``3e-4`` (which YAML 1.1 reads as text) are accepted where a number is expected.

This module knows the shape of a config, not the models and datasets it names: it imports nothing else of
irconstyle (nor torch), so that a config can be read and checked anywhere. The checks against the model and
dataset registries (names, and the keyword options of the classes they name) are
:func:`irconstyle.training.config.validate_against_registries`, which :func:`irconstyle.training.config.load_config`
runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

METRICS = ("psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y")


class ConfigError(ValueError):
    """The training configuration is invalid; the message lists every problem found."""


@dataclass(frozen=True)
class ConStyleSection:
    """Options of the ConStyle contrastive module (spec 2.2); published values by default.

    ``pretrained``: a new run loads these ConStyle weights into the model's encoder before its first
    iteration (ConStyle v2's stage-1 prompter ``.pth``, an authors' ConStyle restorer ``.pth`` or one of our
    model files; see :func:`irconstyle.models.checkpoint.load_constyle`). ``freeze``: the encoder is frozen
    from the first iteration, as ``train.constyle_iters: 0`` does (no ConStyle losses, out of the optimiser,
    and in eval mode with ``train.freeze: eval``): ConStyle v2's stage 2. It needs ``pretrained``.
    """

    queue_size: int = 65760
    momentum: float = 0.999
    temperature: float = 0.07
    normalize_latents: bool = False
    enqueue: Literal["query", "key"] = "query"
    pretrained: str | None = None
    freeze: bool = False


@dataclass(frozen=True)
class ModelSection:
    """``name`` as in :func:`irconstyle.list_models`; ``options`` are :func:`irconstyle.build_model` keywords.

    ``init_from``: a new run starts from these inference weights (a ``.safetensors`` file written by this
    package, such as another run's ``model_final.safetensors``, or an authors' ``.pth``) instead of a random
    initialisation: fine-tuning, or a second stage with another recipe. A resumed run takes its weights from
    the checkpoint and does not read it. ``init_deeper``: the model may have more blocks per stage than those
    weights; the new blocks must start as the identity (NAFNet blocks do), so training grows a trained model
    from the function it already computes. ``init_encoder_from``: a new degradation classifier's ConStyle
    encoder starts from the query encoder of this file (such as a bundled restoration model, whose latent
    already tells one degradation from clean photos); it reads the files ``constyle.pretrained`` reads.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    constyle: ConStyleSection = field(default_factory=ConStyleSection)
    init_from: str | None = None
    init_deeper: bool = False
    init_encoder_from: str | None = None


@dataclass(frozen=True)
class TrainDataSection:
    """The training set: a factory of :data:`irconstyle.data.datasets.DATASETS` and its keyword options.

    The trainer passes ``patch_size``, ``augment`` (the 8 flips/rotations) and the run's seed itself.
    """

    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    patch_size: int = 128
    augment: bool = True
    num_workers: int = 0


@dataclass(frozen=True)
class ValDataSection:
    """The validation set (never the test set), restored whole, one image at a time."""

    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0


@dataclass(frozen=True)
class DataSection:
    train: TrainDataSection
    val: ValDataSection | None = None


@dataclass(frozen=True)
class OptimizerSection:
    """AdamW (spec 4.1)."""

    lr: float = 3e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass(frozen=True)
class ScheduleSection:
    """CosineAnnealingRestartCyclicLR (spec 4.1) with an optional linear warm-up (0: none, as published)."""

    periods: tuple[int, ...] = (243312, 460320)
    restart_weights: tuple[float, ...] = (1.0, 1.0)
    eta_mins: tuple[float, ...] = (3e-4, 1e-6)
    warmup_iters: int = 0


@dataclass(frozen=True)
class LossSection:
    """Pixel loss and the weights of the three ConStyle losses (all 1 in the published recipe)."""

    pixel: Literal["l1", "charbonnier", "psnr"] = "l1"
    pixel_weight: float = 1.0
    infonce_weight: float = 1.0
    content_weight: float = 1.0
    style_weight: float = 1.0
    style_margin: float | None = None
    # The ``detect`` objective: cross-entropy (with ``label_smoothing``) plus ``level_weight`` × the L1 error of
    # the noise σ, in units of the model's ``level_scale``, on native-resolution noise views.
    label_smoothing: float = 0.0
    level_weight: float = 0.5
    # The ``prompter`` objective (ConStyle v2's stage 1): InfoNCE, content and style as above, plus
    # ``class_weight`` × the cross-entropy of the query's class logits (with ``label_smoothing``) and
    # ``kl_weight`` × KL(softmax(key logits) ‖ softmax(query logits)); all 1, as the authors'.
    class_weight: float = 1.0
    kl_weight: float = 1.0


@dataclass(frozen=True)
class EMASection:
    """Weight EMA; ``buffers: false`` is the published parameters-only average (spec quirk 4).

    ``recalibrate_batches``: before each validation and export, the EMA model's BatchNorm statistics are
    recomputed over this many fixed training batches (0: use the statistics copied from the live model).

    ``warmup``: at iteration ``t`` the decay is ``min(decay, (1 + t) / (10 + t))``, so that the average forgets
    the random initialisation early; without it (as published) 37% of the initial weights are still in a 0.999
    average after 1,000 iterations, 5% after 3,000 — harmless in a long run, ruinous in a short one.
    """

    decay: float = 0.999
    buffers: bool = True
    recalibrate_batches: int = 16
    warmup: bool = False


@dataclass(frozen=True)
class MixupSection:
    """Mixup of (degraded, clean) pairs within a batch; off in the published recipe."""

    enabled: bool = False
    beta: float = 1.2
    use_identity: bool = True


@dataclass(frozen=True)
class TrainSection:
    """The optimisation recipe.

    ``objective``: ``restore`` trains a restoration model on (degraded, clean) pairs; ``detect`` trains a
    degradation classifier (``degradation_classifier``) on the labelled views of ``mixed_degradations``;
    ``prompter`` trains ConStyle v2's prompter (``constyle_v2_prompter``) alone on them, its stage 1.

    ``class_iters`` / ``kl_iters`` (``prompter`` only): the classification loss is used while
    ``iteration <= class_iters``, the distillation loss while ``iteration <= kl_iters`` (``null``: throughout;
    the authors' 50,000 and 999,999 of a 400,000-iteration run).

    ``constyle_iters``: the ConStyle losses are used while ``iteration <= constyle_iters``; after that the
    encoder is frozen (``null``: never). ``freeze: eval`` removes the encoder from the optimiser and puts it
    in eval mode (our fix, spec quirk 5); ``freeze: published`` only stops its gradients and keeps it in
    train mode (batch statistics, momentum update and enqueue keep running), as the authors' code does.
    """

    total_iters: int = 703632
    constyle_iters: int | None = None
    freeze: Literal["eval", "published"] = "eval"
    grad_clip: float | None = None
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    losses: LossSection = field(default_factory=LossSection)
    ema: EMASection = field(default_factory=EMASection)
    mixup: MixupSection = field(default_factory=MixupSection)
    objective: Literal["restore", "detect", "prompter"] = "restore"
    class_iters: int | None = 50000
    kl_iters: int | None = None


@dataclass(frozen=True)
class ValidationSection:
    """Validate the EMA model every ``every`` iterations; keep the best checkpoint by ``metric``.

    ``accuracy`` (the ``prompter`` objective's metric, and only its): the share of validation views whose
    class the EMA prompter's head predicts.

    ``tile``: restore the validation images in tiles of this size, and record it in the exported weights as
    their native tile (what ``tile="auto"`` restores with). For models trained on patches whose global
    poolings see other statistics in a whole photo; null restores whole images.
    """

    every: int = 5000
    metric: Literal["psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y", "accuracy"] = "psnr_y"
    samples: int = 3
    tile: int | None = None


@dataclass(frozen=True)
class CheckpointSection:
    every: int = 5000
    keep_last: int = 3


@dataclass(frozen=True)
class LogSection:
    every: int = 100
    tensorboard: bool = True


@dataclass(frozen=True)
class TrainingConfig:
    name: str
    model: ModelSection
    data: DataSection
    train: TrainSection = field(default_factory=TrainSection)
    val: ValidationSection = field(default_factory=ValidationSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)
    seed: int = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), as written to ``config.yaml`` and stored in checkpoints."""
        return _plain(dataclasses.asdict(self))


# ---------------------------------------------------------------------------------------------------------
# Loading

# A check run once the schema is satisfied: the problems it finds, each ``key.path: what is wrong``.
Check = Callable[[TrainingConfig], list[str]]


BASE_KEY = "base"


def read_config(path: str | Path) -> dict[str, Any]:
    """The settings of a YAML config file with its bases merged in, as a plain mapping.

    A top-level ``base: other.yaml`` (or a list of files, relative to the including file) names configs this
    one builds on: they are read (with their own bases) and merged by :func:`deep_merge` in order, then this
    file's settings on top. The result holds no ``base`` key: it is the config a run stores.
    """
    return _read_with_bases(Path(path), ())


def deep_merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merged key by key, later layers winning; lists and values are replaced, not merged."""
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
                result[key] = deep_merge(result[key], value)
            else:
                result[key] = value
    return result


def _read_with_bases(path: Path, including: tuple[Path, ...]) -> dict[str, Any]:
    """``path``'s settings on top of its bases; ``including``: the files that led here (resolved), for cycles."""
    raw = _read_yaml(path)
    entries = raw.pop(BASE_KEY, [])
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(entry, str) and entry for entry in entries):
        raise ConfigError(f"{path}: {BASE_KEY}: expected a config file or a list of them, got {_describe(entries)}")
    chain = (*including, path.resolve())
    layers = []
    for entry in entries:
        base = Path(os.path.normpath(path.parent / entry))
        if base.resolve() in chain:
            cycle = " -> ".join(str(link) for link in (*chain[chain.index(base.resolve()):], base.resolve()))
            raise ConfigError(f"{path}: {BASE_KEY} {entry!r} is a cycle ({cycle})")
        if not base.is_file():
            raise ConfigError(f"{path}: {BASE_KEY} {entry!r}: no such file {base}")
        layers.append(_read_with_bases(base, chain))
    return deep_merge(*layers, raw)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return raw


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``a.b.c=value`` set (the value parsed as YAML, so ``1e-4``, ``[1, 2]``)."""
    result = _plain(dict(raw))
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--set {override!r}: expected key.path=value, e.g. train.total_iters=1000")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {override!r}: the value is not valid YAML ({error})") from None
        _set_path(result, key.strip(), value, f"--set {override!r}")
    return result


def set_values(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with each dotted key of ``values`` set to its value: ``--set`` for callers that hold
    Python values rather than YAML text."""
    result = _plain(dict(raw))
    for key, value in values.items():
        _set_path(result, key, value, key)
    return result


def _set_path(raw: dict[str, Any], key: str, value: Any, label: str) -> None:
    """Set ``a.b.c`` in ``raw`` to ``value``, creating missing sections; ``label`` names the setting in errors."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"{label}: {where} is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_config(raw: Mapping[str, Any], *, source: str = "config", checks: Sequence[Check] = ()) -> TrainingConfig:
    """``raw`` as a :class:`TrainingConfig`, or one :class:`ConfigError` listing every problem.

    ``checks`` run after the schema's own cross-field checks, once every key has its type.
    """
    problems: list[str] = []
    config = _build(TrainingConfig, raw, "", problems)
    if not problems:
        _check_semantics(config, problems)
        for check in checks:
            problems.extend(check(config))
    if len(problems) == 1:
        raise ConfigError(f"{source}: {problems[0]}")
    if problems:
        listed = "\n  ".join(problems)
        raise ConfigError(f"{source}: {len(problems)} problems:\n  {listed}")
    return config


def config_yaml(config: TrainingConfig) -> str:
    """``config`` as the YAML a run stores in its ``config.yaml``: every key, defaults included, in schema order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: TrainingConfig, path: Path) -> None:
    path.write_text(config_yaml(config))


# ---------------------------------------------------------------------------------------------------------
# Typed construction


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def did_you_mean(key: object, allowed: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the allowed name closest to a mistyped ``key``, or nothing."""
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _build(cls: type, raw: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append(f"{where or 'config'}: expected a section (mapping), got {_describe(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            problems.append(
                f"{_join(where, str(key))}: unknown key{did_you_mean(key, fields)}; allowed here: {', '.join(fields)}"
            )
    values = {}
    for name, spec in fields.items():
        if name in raw:
            values[name] = _convert(hints[name], raw[name], _join(where, name), problems)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            problems.append(f"{_join(where, name)}: required key is missing")
    try:
        return cls(**values)
    except TypeError:
        return None


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _convert(hint: Any, value: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, problems)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where, problems)
    if origin is Literal:
        if value not in args:
            problems.append(f"{where}: expected one of {', '.join(map(repr, args))}, got {_describe(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list, got {_describe(value)}")
            return value
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]", problems) for i, v in enumerate(value))
        if len(value) != len(args):
            problems.append(f"{where}: expected a list of {len(args)} values, got {len(value)}")
            return tuple(value)
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(a, v, f"{where}[{i}]", problems) for i, (a, v) in pairs)
    if origin is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{where}: expected a mapping, got {_describe(value)}")
            return {}
        return _plain(dict(value))
    if hint is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        number = _number(value)
        if number is None or isinstance(value, bool) or number != int(number):
            problems.append(f"{where}: expected an integer, got {_describe(value)}")
            return value
        return int(number)
    if hint is float:
        number = _number(value)
        if number is None or isinstance(value, bool):
            problems.append(f"{where}: expected a number, got {_describe(value)}")
            return value
        return number
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{where}: expected text, got {_describe(value)}")
        return value
    if hint is Any:
        return value
    raise TypeError(f"unsupported config type {hint!r} at {where}")  # a bug in this module, not user input


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------------------------------------------------
# Cross-field checks


def _check_semantics(config: TrainingConfig, problems: list[str]) -> None:
    def positive(value: float | None, where: str, allow_zero: bool = False) -> None:
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            problems.append(f"{where}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")

    train = config.train
    positive(train.total_iters, "train.total_iters")
    positive(train.constyle_iters, "train.constyle_iters", allow_zero=True)
    positive(train.class_iters, "train.class_iters", allow_zero=True)
    positive(train.kl_iters, "train.kl_iters", allow_zero=True)
    positive(train.grad_clip, "train.grad_clip")
    positive(train.optimizer.lr, "train.optimizer.lr")
    positive(train.optimizer.weight_decay, "train.optimizer.weight_decay", allow_zero=True)
    schedule = train.schedule
    if not len(schedule.periods) == len(schedule.eta_mins) == len(schedule.restart_weights):
        problems.append(
            "train.schedule: periods, eta_mins and restart_weights need the same length, got "
            f"{len(schedule.periods)}, {len(schedule.eta_mins)} and {len(schedule.restart_weights)}"
        )
    for i, period in enumerate(schedule.periods):
        positive(period, f"train.schedule.periods[{i}]")
    positive(schedule.warmup_iters, "train.schedule.warmup_iters", allow_zero=True)
    if not 0.0 <= train.ema.decay < 1.0:
        problems.append(f"train.ema.decay: must be in [0, 1), got {train.ema.decay}")
    positive(train.mixup.beta, "train.mixup.beta")
    for name in ("pixel_weight", "infonce_weight", "content_weight", "style_weight", "class_weight", "kl_weight"):
        positive(getattr(train.losses, name), f"train.losses.{name}", allow_zero=True)
    positive(train.losses.style_margin, "train.losses.style_margin")
    positive(config.data.train.batch_size, "data.train.batch_size")
    positive(config.data.train.patch_size, "data.train.patch_size")
    positive(config.data.train.num_workers, "data.train.num_workers", allow_zero=True)
    positive(config.val.every, "val.every")
    positive(config.val.samples, "val.samples", allow_zero=True)
    positive(config.val.tile, "val.tile")
    positive(config.checkpoint.every, "checkpoint.every")
    positive(config.checkpoint.keep_last, "checkpoint.keep_last")
    positive(config.log.every, "log.every")
    positive(config.threads, "threads")
    positive(config.model.constyle.queue_size, "model.constyle.queue_size")
    positive(config.model.constyle.temperature, "model.constyle.temperature")
    if not 0.0 <= config.model.constyle.momentum <= 1.0:
        problems.append(f"model.constyle.momentum: must be in [0, 1], got {config.model.constyle.momentum}")
    if not 0.0 <= train.losses.label_smoothing < 1.0:
        problems.append(f"train.losses.label_smoothing: must be in [0, 1), got {train.losses.label_smoothing}")
    positive(train.losses.level_weight, "train.losses.level_weight", allow_zero=True)
    _check_objective(config, problems)
    if config.model.init_encoder_from is not None and config.model.name not in DETECT_MODELS:
        problems.append(f"model.init_encoder_from: only for {', '.join(DETECT_MODELS)}; use model.init_from")
    if config.model.init_deeper and config.model.init_from is None:
        problems.append("model.init_deeper: needs model.init_from (the weights to grow from)")
    constyle_section = config.model.constyle
    if constyle_section.freeze and constyle_section.pretrained is None:
        problems.append("model.constyle.freeze: needs model.constyle.pretrained (a frozen random encoder is useless)")
    if constyle_section.freeze and config.train.constyle_iters not in (None, 0):
        problems.append(
            f"model.constyle.freeze: freezes from the first iteration, but train.constyle_iters is "
            f"{config.train.constyle_iters}; remove one of them"
        )


DETECT_MODELS = ("degradation_classifier",)
DETECT_DATASETS = ("mixed_degradations",)
PROMPTER_MODELS = ("constyle_v2_prompter",)
# Keywords of the prompter that a prompter run sets: its class count from the training set, the rest from
# model.constyle.
PROMPTER_MANAGED_OPTIONS = ("classes", "queue_size", "momentum", "temperature", "normalize_latents", "enqueue")


def _check_objective(config: TrainingConfig, problems: list[str]) -> None:
    """A ``detect`` run pairs a classifier with labelled views, a ``prompter`` run ConStyle v2's prompter; a
    ``restore`` run neither (``mixed_degradations`` then gives its (degraded, clean) pairs: all-in-one)."""
    if config.train.objective == "prompter":
        _check_prompter(config, problems)
        return
    detect = config.train.objective == "detect"
    is_classifier = config.model.name in DETECT_MODELS
    labelled = config.data.train.dataset in DETECT_DATASETS
    if detect:
        if not is_classifier:
            problems.append(f"model.name: the detect objective trains {' or '.join(DETECT_MODELS)}, "
                            f"not {config.model.name!r}")
        if not labelled:
            problems.append(f"data.train.dataset: the detect objective needs labelled views "
                            f"({' or '.join(DETECT_DATASETS)}), not {config.data.train.dataset!r}")
        if config.data.val is not None:
            problems.append("data.val: a detect run does not validate during training; remove the section and "
                            "measure the exported classifier with scripts/evaluate_detect.py")
        if config.train.mixup.enabled:
            problems.append("train.mixup.enabled: mixing views would mix their labels; not for the detect objective")
    else:
        if is_classifier:
            problems.append(f"model.name: {config.model.name!r} is trained with train.objective: detect")
        if config.model.name in PROMPTER_MODELS:
            problems.append(f"model.name: {config.model.name!r} is trained with train.objective: prompter")
        if config.val.metric == "accuracy":
            problems.append("val.metric: accuracy scores a prompter run; a restore run is scored by psnr_rgb, "
                            "psnr_y, ssim_rgb or ssim_y")


def _check_prompter(config: TrainingConfig, problems: list[str]) -> None:
    """ConStyle v2's stage 1: the prompter alone, on views that give classes, validated by their accuracy."""
    if config.model.name not in PROMPTER_MODELS:
        problems.append(f"model.name: the prompter objective trains {' or '.join(PROMPTER_MODELS)}, "
                        f"not {config.model.name!r}")
    for key in PROMPTER_MANAGED_OPTIONS:
        if key in config.model.options:
            source = "the training set's classes" if key == "classes" else f"model.constyle.{key}"
            problems.append(f"model.options.{key}: set by the trainer from {source}; remove it here")
    for section, where in ((config.data.train, "data.train"), (config.data.val, "data.val")):
        if section is not None and section.dataset not in DETECT_DATASETS:
            problems.append(f"{where}.dataset: the prompter objective needs views with classes "
                            f"({' or '.join(DETECT_DATASETS)}), not {section.dataset!r}")
    if config.data.val is not None and config.val.metric != "accuracy":
        problems.append(f"val.metric: a prompter run is validated by its classification accuracy; set "
                        f"val.metric: accuracy, not {config.val.metric!r}")
    if config.train.constyle_iters is not None:
        problems.append("train.constyle_iters: the prompter objective trains ConStyle alone and never freezes it; "
                        "remove the key (train.class_iters and train.kl_iters end its other losses)")
    if config.train.mixup.enabled:
        problems.append("train.mixup.enabled: mixing views would mix their labels; not for the prompter objective")
    losses = config.train.losses
    if not any(getattr(losses, f"{name}_weight") for name in ("infonce", "content", "style", "class", "kl")):
        problems.append("train.losses: every loss of the prompter objective has weight 0; nothing would train")
