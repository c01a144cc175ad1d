"""The authors' names -> ours: class and keyword names for :func:`build`, state-dict keys for the converter.

This is the only module that knows the published implementation's names (``Process_Module_l1``, ``DC1``,
``ConStyle.encoder_q`` …). Each architecture lists ordered regular-expression rewrites of its keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from irconstyle.models.registry import MODELS, build_model


@dataclass(frozen=True)
class OfficialArchitecture:
    name: str  # our registry name
    keywords: dict[str, str]  # authors' constructor keyword -> ours
    key_rules: list[tuple[str, str]] = field(default_factory=list)  # (pattern, replacement), applied in order


# Shared by the three ConStyle variants: the MoCo module and its encoders.
_CONSTYLE_KEY_RULES = [
    (r"^ConStyle\.encoder_q\.", "constyle.encoder."),
    (r"^ConStyle\.encoder_k\.", "constyle.key_encoder."),
    (r"^ConStyle\.queue", "constyle.queue"),
    (r"^(constyle\.(?:key_)?encoder)\.mlp1\.", r"\1.head_z."),
    (r"^(constyle\.(?:key_)?encoder)\.mlp2\.", r"\1.head_q."),
]
# Authors' ``Train`` flag builds the momentum encoder and queue.
_CONSTYLE_KEYWORDS = {"Train": "contrastive"}

ARCHITECTURES: dict[str, OfficialArchitecture] = {
    "ConStyleNAFNet": OfficialArchitecture(
        name="constyle_nafnet",
        keywords={**_CONSTYLE_KEYWORDS},
        key_rules=[*_CONSTYLE_KEY_RULES],
    ),
    "ConStyleRestormer": OfficialArchitecture(
        name="constyle_restormer",
        keywords={**_CONSTYLE_KEYWORDS},
        key_rules=[*_CONSTYLE_KEY_RULES],
    ),
    "ConStyleMaxim": OfficialArchitecture(
        name="constyle_maxim",
        keywords={**_CONSTYLE_KEYWORDS},
        key_rules=[*_CONSTYLE_KEY_RULES],
    ),
    "NAFNet": OfficialArchitecture(name="nafnet", keywords={}),
    "Restormer": OfficialArchitecture(name="restormer", keywords={}),
    "Maxim": OfficialArchitecture(name="maxim", keywords={}),
}

# Keys of the training layout that an inference-built model (no momentum encoder, no queue) does not hold.
_TRAINING_ONLY = re.compile(r"^constyle\.(key_encoder\.|queue)")


def build(name: str, **official_kwargs: Any) -> nn.Module:
    """Build our model from the authors' class name and constructor keyword names.

    Omitted keywords take the authors' defaults, which are also ours.
    """
    try:
        architecture = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown official class {name!r}; known: {', '.join(ARCHITECTURES)}") from None
    unknown = sorted(set(official_kwargs) - set(architecture.keywords))
    if unknown:
        raise TypeError(
            f"{name}: unknown keyword(s) {', '.join(unknown)}; accepted: {', '.join(sorted(architecture.keywords))}"
        )
    kwargs = {architecture.keywords[key]: _to_python(value) for key, value in official_kwargs.items()}
    return build_model(architecture.name, **kwargs)


def _to_python(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def architecture_of(model: nn.Module) -> OfficialArchitecture:
    config = getattr(model, "build_config", None)
    for official_name, architecture in ARCHITECTURES.items():
        if config is not None and config["name"] == architecture.name:
            return architecture
        if config is None and type(model) is MODELS[architecture.name].factory:
            return architecture
    raise ValueError(f"{type(model).__name__} has no official counterpart to convert checkpoints for")


def convert_key(key: str, architecture: OfficialArchitecture) -> str:
    for pattern, replacement in architecture.key_rules:
        key = re.sub(pattern, replacement, key)
    return key


def convert_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an authors' state dict (training or inference layout, ``module.`` prefix or not) to ours.

    Training-only tensors (momentum encoder, queue) are dropped when ``model`` was built without them.
    """
    architecture = architecture_of(model)
    keep_training_parts = any(_TRAINING_ONLY.match(key) for key in model.state_dict())
    converted = {}
    for key, tensor in state.items():
        ours = convert_key(key.removeprefix("module."), architecture)
        if _TRAINING_ONLY.match(ours) and not keep_training_parts:
            continue
        converted[ours] = tensor
    return converted
