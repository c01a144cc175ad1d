"""Loading a training config: the schema (:mod:`irconstyle.training.schema`) and the registries it names.

:func:`load_config` reads a YAML file, applies ``--set`` overrides and validates the result against the
schema and then against the model and dataset registries (:func:`validate_against_registries`): a model or
dataset that does not exist, and options their classes do not take (checked against their signatures), are
problems of the same one :class:`ConfigError`. The schema's names are importable from here too.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from irconstyle.models.constyle import ConStyleRestorer
from irconstyle.models.registry import MODELS
from irconstyle.training.data import TRAIN_MANAGED_KEYWORDS, VAL_MANAGED_KEYWORDS, dataset_registry
from irconstyle.training.schema import (
    DETECT_DATASETS,
    DETECT_MODELS,
    METRICS,
    CheckpointSection,
    ConfigError,
    ConStyleSection,
    DataSection,
    EMASection,
    LogSection,
    LossSection,
    MixupSection,
    ModelSection,
    OptimizerSection,
    ScheduleSection,
    TrainDataSection,
    TrainingConfig,
    TrainSection,
    ValDataSection,
    ValidationSection,
    apply_overrides,
    config_yaml,
    did_you_mean,
    parse_config,
    read_config,
    save_config,
)

__all__ = [
    "DETECT_DATASETS",
    "DETECT_MODELS",
    "METRICS",
    "CheckpointSection",
    "ConStyleSection",
    "ConfigError",
    "DataSection",
    "EMASection",
    "LogSection",
    "LossSection",
    "MixupSection",
    "ModelSection",
    "OptimizerSection",
    "ScheduleSection",
    "TrainDataSection",
    "TrainSection",
    "TrainingConfig",
    "ValDataSection",
    "ValidationSection",
    "apply_overrides",
    "config_from_dict",
    "config_yaml",
    "load_config",
    "save_config",
    "validate_against_registries",
]


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainingConfig:
    """Read a YAML file with its bases (:func:`~irconstyle.training.schema.read_config`), apply ``key.path=value``
    overrides (values in YAML syntax) and validate it."""
    return config_from_dict(apply_overrides(read_config(path), overrides), source=str(path))


def config_from_dict(raw: Mapping[str, Any], *, source: str = "config") -> TrainingConfig:
    """``raw`` validated against the schema and the registries; one :class:`ConfigError` lists every problem."""
    return parse_config(raw, source=source, checks=(validate_against_registries,))


def validate_against_registries(config: TrainingConfig) -> list[str]:
    """The problems of a schema-valid config with the models and datasets it names."""
    problems: list[str] = []
    constyle_section = config.model.constyle
    entry = MODELS.get(config.model.name)
    if entry is None:
        problems.append(f"model.name: unknown model {config.model.name!r}; available: {', '.join(sorted(MODELS))}")
    else:
        reserved = ("contrastive", "constyle_options")
        for key in reserved:
            if key in config.model.options:
                problems.append(f"model.options.{key}: set by the trainer; use the model.constyle section instead")
        _check_keywords(entry.factory, config.model.options, "model.options", problems, ignore=reserved)
        is_constyle = isinstance(entry.factory, type) and issubclass(entry.factory, ConStyleRestorer)
        if not is_constyle and config.train.constyle_iters is not None and config.train.objective != "prompter":
            problems.append(
                f"train.constyle_iters: {config.model.name!r} is an Origin model without ConStyle; remove the key"
            )
        for key in ("pretrained", "freeze"):
            if not is_constyle and getattr(constyle_section, key):
                problems.append(
                    f"model.constyle.{key}: {config.model.name!r} is not a ConStyle restoration model; remove the key"
                )

    registry = dataset_registry()
    for section, where in ((config.data.train, "data.train"), (config.data.val, "data.val")):
        if section is None:
            continue
        dataset_class = registry.get(section.dataset)
        if dataset_class is None:
            problems.append(
                f"{where}.dataset: unknown dataset {section.dataset!r}; available: {', '.join(sorted(registry))}"
            )
            continue
        managed = TRAIN_MANAGED_KEYWORDS if section is config.data.train else VAL_MANAGED_KEYWORDS
        for key in managed:
            if key in section.options:
                problems.append(f"{where}.options.{key}: set by the trainer from the config; remove it here")
        _check_keywords(dataset_class, section.options, f"{where}.options", problems, ignore=managed)
    return problems


def _check_keywords(
    target: Any, options: Mapping[str, Any], where: str, problems: list[str], *, ignore: Sequence[str] = ()
) -> None:
    """Options must be keyword parameters of ``target`` (unless it takes ``**kwargs``)."""
    parameters = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    allowed = [
        name
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) and name not in ignore
    ]
    for key in options:
        if key not in allowed and key not in ignore:
            problems.append(f"{where}.{key}: unknown option{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    required = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and name not in ignore
    ]
    for name in required:
        if name not in options:
            problems.append(f"{where}.{name}: required option is missing")
