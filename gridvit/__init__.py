"""gridvit: distance-biased Vision Transformers for gridded scientific data held in xarray.

Submodules and the top-level API are imported on first use, so ``import gridvit`` stays light
(no torch, matplotlib or dask until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("analysis", "checkpoint", "cli", "config", "data", "examples", "forcings", "geometry", "metrics", "model",
               "patches", "solvers", "surrogate", "training", "evaluate")
_API: dict[str, str] = {"train": "training", "load": "surrogate", "Surrogate": "surrogate",
                        "TrainConfig": "config"}

__all__ = [*_API, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"gridvit.{name}")
    if name in _API:
        return getattr(importlib.import_module(f"gridvit.{_API[name]}"), name)
    raise AttributeError(f"module 'gridvit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
