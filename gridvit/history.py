"""A training run's history: one row per epoch, as an ``xr.Dataset`` (dim ``epoch``), and its JSON form.

The :class:`~gridvit.training.Trainer` logs each finished epoch; :func:`history_dataset` turns that log into
``Surrogate.history``; :func:`history_to_dict` / :func:`history_from_dict` write and (strictly) read it in
model files and training checkpoints. Files written before histories existed load with
:func:`empty_history`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

# logged name -> (history variable, units, long name); "epoch" is the dimension coordinate
FIELDS = {
    "loss": ("loss", "1", "training loss (area-weighted masked MSE, normalised units, mean over the epoch)"),
    "val_loss": ("val_loss", "1",
                 "validation loss (one-step area-weighted masked MSE; NaN without a validation split)"),
    "lr": ("lr", "1", "learning rate at the end of the epoch"),
    "elapsed": ("wall_time", "s", "wall-clock seconds of training at the end of the epoch (validation included)"),
    "samples": ("samples", "1", "training windows seen since the start of training"),
}
MAX_EPOCHS = 1_000_000  # rows a file may claim


def empty_history() -> xr.Dataset:
    """A history with no epochs (an untrained model, or a file written before histories were saved)."""
    return history_dataset([])


def history_dataset(log: Sequence[Mapping[str, Any]]) -> xr.Dataset:
    """The Trainer's per-epoch log as a Dataset with dim ``epoch`` (1-based).

    Args:
        log: one mapping per epoch with ``epoch`` and the keys of :data:`FIELDS` (``val_loss`` None or NaN
            when there was no validation split).

    Returns:
        Variables ``loss``, ``val_loss``, ``lr``, ``wall_time`` (s) float64 and ``samples`` int64.

    Raises:
        ValueError: an entry lacks a field, holds a non-number, negative or non-finite value (only
            ``val_loss`` may be NaN), or the epochs are not 1, 2, 3, ...
    """
    if not isinstance(log, Sequence) or len(log) > MAX_EPOCHS:
        raise ValueError(f"a history is a list of at most {MAX_EPOCHS} per-epoch entries")
    for i, entry in enumerate(log):
        if not isinstance(entry, Mapping) or not {"epoch", *FIELDS} <= set(entry):
            raise ValueError(f"history entry {i} must be a mapping with 'epoch' and {sorted(FIELDS)}")
    epochs = [_number(e["epoch"], "epoch") for e in log]
    if epochs != list(range(1, len(log) + 1)):
        raise ValueError("the history's epochs must be 1, 2, 3, ... in order")
    data = {}
    for key, (name, units, long_name) in FIELDS.items():
        values = [_number(e[key], key) for e in log]
        dtype = np.int64 if key == "samples" else np.float64
        data[name] = ("epoch", np.asarray(values, dtype=dtype), {"units": units, "long_name": long_name})
    if np.any(np.diff(data["samples"][1]) < 0) or np.any(np.diff(data["wall_time"][1]) < 0):
        raise ValueError("the history's samples and wall_time must not decrease")
    return xr.Dataset(data, coords={"epoch": ("epoch", np.arange(1, len(log) + 1, dtype=np.int64))})


def history_to_dict(history: xr.Dataset) -> dict[str, list]:
    """JSON-able columns of ``history`` (NaN written as None)."""
    out: dict[str, list] = {"epoch": [int(e) for e in history["epoch"].values]}
    for key, (name, _, _) in FIELDS.items():
        values = history[name].values.tolist()
        out[key] = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    return out


def history_from_dict(d: Any) -> xr.Dataset:
    """The inverse of :func:`history_to_dict`; None (an older file) gives :func:`empty_history`.

    Raises:
        ValueError: not a mapping of exactly ``epoch`` and the :data:`FIELDS` keys to equal-length lists, or
            values :func:`history_dataset` refuses.
    """
    if d is None:
        return empty_history()
    keys = {"epoch", *FIELDS}
    if not isinstance(d, Mapping) or set(d) != keys:
        raise ValueError(f"it must be a mapping with exactly the keys {sorted(keys)}")
    columns = [d[k] for k in sorted(keys)]
    if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1:
        raise ValueError("its columns must be lists of one length (one entry per epoch)")
    if len(d["epoch"]) > MAX_EPOCHS:
        raise ValueError(f"it holds more than {MAX_EPOCHS} epochs")
    rows = [{k: d[k][i] for k in keys} for i in range(len(d["epoch"]))]
    return history_dataset(rows)


def _number(value: Any, key: str) -> float:
    """``value`` as a float: a finite number >= 0 (``val_loss``: also None or NaN, read as NaN; ``epoch`` and
    ``samples``: whole numbers)."""
    if key == "val_loss" and (value is None or (isinstance(value, float) and math.isnan(value))):
        return math.nan
    whole = key in ("epoch", "samples")
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < 0:
        what = "a whole number >= 0" if whole else "a finite number >= 0"
        raise ValueError(f"the history's {key!r} values must each be {what}, got {str(value)[:40]!r}")
    return value
