"""Dimension detection: which dims are time, y (latitude), x (longitude), sample and channel-like levels.

CF attributes win over names: ``axis`` (T/Y/X/Z), ``units`` (``degrees_north``/``degrees_east``, pressure
units), ``standard_name`` (``time``, ``latitude``, ``longitude``, ``projection_y_coordinate``…). Common
names come second (time; lat/latitude/y; lon/longitude/x; level/plev…; sample). A ``dims={"time": ...,
"y": ..., "x": ..., "sample": ..., "channels": [...]}`` override always wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import xarray as xr

TIME_NAMES = ("time", "t", "valid_time", "date", "datetime")
Y_NAMES = ("lat", "latitude", "y", "rlat", "grid_latitude", "nav_lat")
X_NAMES = ("lon", "longitude", "x", "rlon", "grid_longitude", "nav_lon")
SAMPLE_NAMES = ("sample", "trajectory")
LEVEL_NAMES = ("level", "lev", "plev", "pressure_level", "isobaricInhPa", "channel")

LAT_UNITS = ("degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn")
LON_UNITS = ("degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese")
LEVEL_UNITS = ("hpa", "pa", "mbar", "millibars", "millibar")
OVERRIDE_KEYS = ("time", "y", "x", "sample", "channels")


@dataclass(frozen=True)
class Dims:
    """Names of the roles each dimension plays.

    Attributes:
        time: the time dim.
        y, x: the two spatial dims (y = latitude on a sphere).
        sample: the dim of independent trajectories (PDE data), or None.
        channels: extra dims folded into channels (vertical levels), in order of appearance.
        sphere: True when (y, x) are latitude/longitude in degrees.
    """

    time: str
    y: str
    x: str
    sample: str | None = None
    channels: tuple[str, ...] = field(default_factory=tuple)
    sphere: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "y": self.y, "x": self.x, "sample": self.sample,
                "channels": list(self.channels), "sphere": self.sphere}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Dims":
        return cls(**{**d, "channels": tuple(d["channels"])})


def _attr(ds: xr.Dataset, name: str, key: str) -> str:
    if name not in ds.variables:
        return ""
    return str(ds[name].attrs.get(key, "")).strip().lower()


def _is_time(ds: xr.Dataset, d: str) -> bool:
    if _attr(ds, d, "axis") == "t" or _attr(ds, d, "standard_name") == "time":
        return True
    if d not in ds.coords or ds[d].size == 0:
        return False
    if np.issubdtype(ds[d].dtype, np.datetime64):
        return True
    return ds[d].dtype == object and hasattr(ds[d].values.ravel()[0], "calendar")  # cftime dates


def _is_lat(ds: xr.Dataset, d: str) -> bool:
    units = _attr(ds, d, "units").replace(" ", "_")
    return units in LAT_UNITS or _attr(ds, d, "standard_name") == "latitude"


def _is_lon(ds: xr.Dataset, d: str) -> bool:
    units = _attr(ds, d, "units").replace(" ", "_")
    return units in LON_UNITS or _attr(ds, d, "standard_name") == "longitude"


def _is_level(ds: xr.Dataset, d: str) -> bool:
    return (
        d in LEVEL_NAMES
        or _attr(ds, d, "axis") == "z"
        or _attr(ds, d, "positive") in ("up", "down")
        or _attr(ds, d, "units") in LEVEL_UNITS
    )


def _pick(role: str, candidates: list[str], by_attr, names: tuple[str, ...], ds: xr.Dataset) -> str | None:
    """The one dim matching CF attributes, else the one matching a common name, else None."""
    for rule in (by_attr, lambda _ds, d: d.lower() in names):
        hits = [d for d in candidates if rule(ds, d)]
        if len(hits) > 1:
            raise ValueError(
                f"several dims look like {role}: {hits}; say which with dims={{{role!r}: ...}}"
            )
        if hits:
            return hits[0]
    return None


def detect_dims(ds: xr.Dataset, variables: list[str], override: Mapping[str, Any] | None = None) -> Dims:
    """Find the time, y, x (and sample, channel) dims used by ``variables`` of ``ds``.

    Raises:
        ValueError: no time dim, not exactly two spatial dims, unknown override keys or dims.
    """
    override = dict(override or {})
    unknown = set(override) - set(OVERRIDE_KEYS)
    if unknown:
        raise ValueError(f"dims override has unknown keys {sorted(unknown)}; accepted keys: {list(OVERRIDE_KEYS)}")
    used: list[str] = []
    for v in variables:
        used += [d for d in ds[v].dims if d not in used]
    for key, val in override.items():
        for name in [val] if key != "channels" else list(val):
            if name is not None and name not in used:
                raise ValueError(f"dims override {key}={name!r}: no such dim; the variables' dims are {used}")
    free = [d for d in used if d not in override.values() and d not in override.get("channels", ())]

    def role(key: str, by_attr, names: tuple[str, ...]) -> str | None:
        if key in override:
            return override[key]
        hit = _pick(key, free, by_attr, names, ds)
        if hit is not None:
            free.remove(hit)
        return hit

    time = role("time", _is_time, TIME_NAMES)
    if time is None:
        raise ValueError(
            f"no time dimension found among dims {used}; gridvit needs one (named 'time' or with CF axis 'T'), "
            "or say which with dims={'time': ...}"
        )
    sample = role("sample", lambda _ds, _d: False, SAMPLE_NAMES)
    y = role("y", lambda _ds, d: _attr(_ds, d, "axis") == "y" or _is_lat(_ds, d), Y_NAMES)
    x = role("x", lambda _ds, d: _attr(_ds, d, "axis") == "x" or _is_lon(_ds, d), X_NAMES)
    channels = list(override.get("channels", ()))
    channels += [d for d in free if _is_level(ds, d)]
    rest = [d for d in free if d not in channels]
    spatial = [d for d in (y, x) if d is not None]
    if len(spatial) != 2 or rest:
        raise ValueError(
            f"gridvit needs exactly two spatial dims besides time {time!r}; found y={y!r}, x={x!r}"
            + (f" and unrecognised dims {rest}" if rest else "")
            + f" (variables' dims: {used}). Name them with dims={{'y': ..., 'x': ...}}; fold extra dims "
            "into channels with dims={'channels': [...]}"
        )
    sphere = _is_lat_name(ds, y) and _is_lon_name(ds, x)
    return Dims(time=time, y=y, x=x, sample=sample, channels=tuple(channels), sphere=sphere)


def _is_lat_name(ds: xr.Dataset, d: str) -> bool:
    return _is_lat(ds, d) or d.lower() in ("lat", "latitude")


def _is_lon_name(ds: xr.Dataset, d: str) -> bool:
    return _is_lon(ds, d) or d.lower() in ("lon", "longitude")
