"""Packages whose exported names are imported on first use (PEP 562), so that importing one light module of
irconstyle (the training config's schema, the command line's parser) does not import torch and every model."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package module whose ``_exports`` (name -> ``"module"`` or ``"module:attribute"``) load when first read.

    Other names fall back to the package's submodule of that name, as when the package imported its
    submodules eagerly. An exported name that is also a submodule's (``irconstyle.detect``, the function and
    its module) stays the exported object when the submodule is first imported, which would otherwise set the
    package's attribute to the module.
    """

    _exports: dict[str, str]

    def __getattr__(self, name: str) -> Any:  # called only for names not yet set
        if name.startswith("_"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        if name in self._exports:
            value = self._resolve(name)
            super().__setattr__(name, value)
            return value
        submodule = f"{self.__name__}.{name}"
        try:
            return importlib.import_module(submodule)
        except ModuleNotFoundError as error:
            if error.name != submodule:
                raise
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        exports = self.__dict__.get("_exports", {})
        if name in exports and isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}":
            value = self._resolve(name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._exports})

    def _resolve(self, name: str) -> Any:
        module, _, attribute = self._exports[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)


def make_lazy(package: str, exports: Mapping[str, str]) -> None:
    """Turn the (already executing) package ``package`` into one that imports ``exports`` on first use."""
    module = sys.modules[package]
    module._exports = dict(exports)
    module.__class__ = _LazyPackage
