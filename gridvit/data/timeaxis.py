"""The time axis: validation (monotonic, unique, regular) and advancing by whole steps.

Three kinds of time coordinate are accepted:

- ``datetime64`` (numpy/pandas) and ``cftime`` objects (any CF calendar, e.g. ``360_day``): regular when the
  step is a fixed duration (hourly, daily, 360-day months) or a calendar frequency that xarray can infer
  (month starts, ``"MS"``; year starts) — monthly means such as ERSST are regular in this sense;
- numbers (PDE time in physical units): regular when the differences agree to 1e-6 relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


@dataclass(frozen=True)
class TimeAxis:
    """How the time coordinate steps.

    Attributes:
        kind: ``"datetime"`` (numpy datetime64), ``"cftime"`` or ``"numeric"``.
        step: the fixed step as a string: a pandas/xarray frequency (``"h"``, ``"MS"``, ``"30D"``…) for
            datetime/cftime axes, or a float (as ``repr``) for numeric axes.
        calendar: the CF calendar of cftime axes (``"360_day"``…), else ``"standard"``.
        dtype: numpy dtype string of the coordinate (for numeric axes).
    """

    kind: str
    step: str
    calendar: str = "standard"
    dtype: str = "datetime64[ns]"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "calendar": self.calendar, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TimeAxis":
        return cls(**d)

    def advance(self, last: Any, steps: int) -> np.ndarray:
        """The ``steps`` times after ``last``, one step apart: (steps,) array of the axis's type."""
        if self.kind == "numeric":
            dt = float(self.step)
            return (np.asarray(last, dtype=np.float64) + dt * np.arange(1, steps + 1)).astype(self.dtype)
        use_cftime = self.kind == "cftime"
        rng = xr.date_range(
            start=last, periods=steps + 1, freq=self.step, calendar=self.calendar, use_cftime=use_cftime
        )
        return np.asarray(rng[1:]) if use_cftime else rng[1:].values.astype(self.dtype)


def _fixed_freq(delta: pd.Timedelta) -> str:
    """A frequency string for a fixed duration, e.g. 1 hour -> 'h', 30 days -> '30D'."""
    return pd.tseries.frequencies.to_offset(delta).freqstr


def time_axis(values: Any, *, name: str = "time", allow_single: bool = False) -> TimeAxis:
    """Validate a time coordinate and describe its step.

    Args:
        values: (T,) time values (datetime64, cftime objects or numbers), T >= 2.
        name: the dimension name, used in error messages.
        allow_single: accept a single time (its step is then unknown: ``step == ""``).

    Raises:
        TypeError: times that are neither datetime-like nor numeric.
        ValueError: fewer than 2 steps; non-monotonic, duplicated or irregular times.
    """
    values = np.asarray(values)
    if values.size == 1 and allow_single:
        kind = "numeric" if values.dtype.kind in "fiu" else "cftime" if values.dtype == object else "datetime"
        calendar = getattr(values.ravel()[0], "calendar", "standard") if kind == "cftime" else "standard"
        return TimeAxis(kind=kind, step="", calendar=calendar, dtype=str(values.dtype))
    if values.size < 2:
        raise ValueError(f"time dimension {name!r} needs at least 2 steps, got {values.size}")
    if np.issubdtype(values.dtype, np.datetime64):
        kind, calendar = "datetime", "standard"
        index: Any = pd.DatetimeIndex(values)
    elif values.dtype == object:
        import cftime

        if not all(isinstance(v, cftime.datetime) for v in values.ravel()[:3]):
            raise TypeError(
                f"time coordinate {name!r} has object dtype with values like {values.ravel()[0]!r}; "
                "expected datetime64, cftime dates or numbers (decode it with xr.decode_cf or pd.to_datetime)"
            )
        kind, calendar = "cftime", values.ravel()[0].calendar
        index = xr.CFTimeIndex(values)
    elif np.issubdtype(values.dtype, np.number) and not np.issubdtype(values.dtype, np.bool_):
        return _numeric_axis(values.astype(np.float64), name=name, dtype=str(values.dtype))
    else:
        raise TypeError(
            f"time coordinate {name!r} has dtype {values.dtype}; expected datetime64, cftime dates or numbers"
        )
    _check_order(index, name)
    deltas = pd.TimedeltaIndex(np.asarray(index[1:] - index[:-1]))
    if (deltas == deltas[0]).all():
        step = _fixed_freq(deltas[0])
    else:
        freq = xr.infer_freq(index) if index.size >= 3 else None
        if freq is None:
            raise ValueError(
                f"time dimension {name!r} is irregular (steps from {deltas.min()} to {deltas.max()}); "
                "gridvit needs a regular step: a fixed duration or a calendar frequency such as month starts. "
                "Resample first, e.g. ds.resample(time='1h').mean()"
            )
        step = freq
    return TimeAxis(kind=kind, step=step, calendar=calendar, dtype=str(values.dtype))


def _check_order(index: Any, name: str) -> None:
    if index.has_duplicates:
        dup = index[index.duplicated()][:3]
        raise ValueError(f"time dimension {name!r} has duplicated times, e.g. {list(map(str, dup))}; drop them first")
    if not index.is_monotonic_increasing:
        raise ValueError(
            f"time dimension {name!r} is not monotonically increasing; sort it first (ds.sortby({name!r}))"
        )


def _numeric_axis(t: np.ndarray, *, name: str, dtype: str) -> TimeAxis:
    if not np.all(np.isfinite(t)):
        raise ValueError(f"time coordinate {name!r} has non-finite values")
    d = np.diff(t)
    if np.any(d == 0):
        raise ValueError(f"time dimension {name!r} has duplicated times; drop them first")
    if np.any(d < 0):
        raise ValueError(f"time dimension {name!r} is not monotonically increasing; sort it first")
    if not np.allclose(d, d[0], rtol=1e-6, atol=0.0):
        raise ValueError(
            f"time dimension {name!r} is irregular (steps from {d.min():g} to {d.max():g}); "
            "gridvit needs a regular time step"
        )
    return TimeAxis(kind="numeric", step=repr(float(d.mean())), calendar="standard", dtype=dtype)


CLIMATOLOGY_GROUPS = {"hour": 24, "month": 12}


def calendar_group(times: Any, by: str) -> np.ndarray:
    """Group index of each time for a climatology: hour of day (0–23) or month (0–11). (T,) int array."""
    times = np.asarray(times).reshape(-1)
    if by not in CLIMATOLOGY_GROUPS:
        raise ValueError(f"climatology must be grouped by one of {list(CLIMATOLOGY_GROUPS)}, got {by!r}")
    if times.dtype == object:  # cftime
        return np.array([t.hour if by == "hour" else t.month - 1 for t in times], dtype=np.int64)
    idx = pd.DatetimeIndex(times)
    return np.asarray(idx.hour if by == "hour" else idx.month - 1, dtype=np.int64)


def default_climatology(time: TimeAxis, times: Any) -> str | None:
    """The climatology grouping for a time axis: ``"hour"`` for sub-daily steps, ``"month"`` for monthly or
    longer-than-weekly steps, None for numeric time or when a group has fewer than 2 samples in ``times``."""
    if time.kind == "numeric" or not time.step:
        return None
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(time.step))
    except (ValueError, TypeError):
        step = pd.Timedelta("28D")  # calendar frequencies: month starts/ends, quarters, years
    by = "hour" if step < pd.Timedelta("1D") else "month" if step >= pd.Timedelta("7D") else None
    if by is None:
        return None
    counts = np.bincount(calendar_group(times, by), minlength=CLIMATOLOGY_GROUPS[by])
    present = counts[counts > 0]
    return by if present.size and present.min() >= 2 else None
