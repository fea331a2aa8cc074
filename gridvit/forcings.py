"""Calendar forcings: sin/cos of the time of day and of the day of year as extra input channels.

On a sphere the time of day is *local solar time* (UTC + longitude/15 h), so the channels vary with
longitude; on a plane it is the time of the axis. Time-of-day channels are used only when the time step is
shorter than a day (monthly data have no diurnal phase); day-of-year channels always for datetime axes,
with the year length of the calendar (360 for ``360_day``), unless only the diurnal channels are asked for.
Numeric (PDE) time axes get none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridvit.data.timeaxis import TimeAxis
from gridvit.geometry import Grid

_YEAR_DAYS = {"360_day": 360.0, "noleap": 365.0, "365_day": 365.0, "all_leap": 366.0, "366_day": 366.0}


def calendar_names(time: TimeAxis, which: str = "all") -> tuple[str, ...]:
    """Names of the forcing channels a time axis gets (empty for numeric time); ``which="diurnal"`` keeps
    only the time-of-day channels (for training periods much shorter than a year, where the day of year is
    a trend index that extrapolates rather than a seasonal phase)."""
    if time.kind == "numeric":
        return ()
    names = ("sin_doy", "cos_doy") if which == "all" else ()
    if _sub_daily(time):
        names = ("sin_hour", "cos_hour", *names)
    return names


def _sub_daily(time: TimeAxis) -> bool:
    try:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(time.step)) < pd.Timedelta("1D")
    except (ValueError, TypeError):
        return False  # calendar frequencies (month starts…) are longer than a day


def _fractions(times: Any, calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """(hour of day in [0, 24), day-of-year fraction in [0, 1)) for (B,) datetime64 or cftime values."""
    times = np.asarray(times)
    if times.dtype == object:  # cftime
        hours = np.array([t.hour + t.minute / 60 + t.second / 3600 for t in times])
        doy = np.array([t.dayofyr - 1 for t in times]) + hours / 24
        year = _YEAR_DAYS.get(calendar, 365.2425)
    else:
        idx = pd.DatetimeIndex(times)
        hours = np.asarray(idx.hour + idx.minute / 60 + idx.second / 3600, dtype=np.float64)
        doy = np.asarray(idx.day_of_year - 1, dtype=np.float64) + hours / 24
        year = 365.2425
    return hours, doy / year


def calendar_channels(times: Any, time: TimeAxis, grid: Grid, names: tuple[str, ...] | None = None) -> np.ndarray:
    """Forcing channels (B, F, H, W) float32 for (B,) times: ``names`` (default ``calendar_names(time)``)."""
    names = calendar_names(time) if names is None else tuple(names)
    b, (h, w) = len(times), grid.shape
    if not names:
        return np.zeros((b, 0, h, w), np.float32)
    hours, year_frac = _fractions(times, time.calendar)
    out = []
    if "sin_hour" in names:
        local = hours[:, None] + (grid.x.astype(np.float64)[None, :] / 15.0 if grid.kind == "sphere" else 0.0)
        phase = np.broadcast_to(2 * np.pi * local / 24.0, (b, w))[:, None, :]  # (B, 1, W)
        out += [np.sin(phase), np.cos(phase)]
    if "sin_doy" in names:
        phase = (2 * np.pi * year_frac)[:, None, None]  # (B, 1, 1)
        out += [np.sin(phase), np.cos(phase)]
    return np.stack([np.broadcast_to(o, (b, h, w)) for o in out], axis=1).astype(np.float32)  # (B, F, H, W)
