"""DataSpec: everything needed to turn an xarray dataset into tensors and back.

``describe(ds)`` inspects a dataset (never loading its values) and returns a :class:`DataSpec`: the dims and
their roles, the horizontal :class:`~gridvit.geometry.Grid`, the time step, the channels (one per variable
and level, e.g. ``t2m`` or ``z@500``) and the coordinates and attributes that outputs carry back.
A DataSpec is JSON-serialisable (``to_dict``/``from_dict``) so it travels inside checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from gridvit.data.dims import Dims, detect_dims
from gridvit.data.io import PathLike, open_data
from gridvit.data.timeaxis import TimeAxis, time_axis
from gridvit.geometry import Grid, is_global_longitude

Periodic = bool | tuple[bool, bool] | Mapping[str, bool] | None


@dataclass(frozen=True)
class Channel:
    """One input/output channel: a variable, at fixed values of its extra (level) dims."""

    name: str
    variable: str
    at: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariableInfo:
    """How a variable is laid out in the source, so outputs can be written back the same way."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    attrs: dict[str, Any]


@dataclass(eq=False)
class DataSpec:
    """The layout of a dataset as gridvit sees it (see module docstring)."""

    dims: Dims
    grid: Grid
    time: TimeAxis
    channels: list[Channel]
    variables: list[VariableInfo]
    coords: dict[str, dict[str, Any]]
    attrs: dict[str, Any]

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    @property
    def grid_dims(self) -> tuple[str, str]:
        """The (y, x) dim names."""
        return (self.dims.y, self.dims.x)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (numpy arrays in attrs become tagged lists)."""
        return _jsonable({
            "dims": self.dims.to_dict(),
            "grid": self.grid.to_dict(),
            "time": self.time.to_dict(),
            "channels": [{"name": c.name, "variable": c.variable, "at": c.at} for c in self.channels],
            "variables": [{"name": v.name, "dims": list(v.dims), "dtype": v.dtype, "attrs": v.attrs}
                          for v in self.variables],
            "coords": self.coords,
            "attrs": self.attrs,
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSpec":
        """Rebuild from :meth:`to_dict`; names that could act as paths (``/``, ``..``) are refused."""
        d = _from_jsonable(d)
        for v in d["variables"]:
            check_name("variable", v["name"])
            for dim in v["dims"]:
                check_name("dimension", dim)
        return cls(
            dims=Dims.from_dict(d["dims"]),
            grid=Grid.from_dict(d["grid"]),
            time=TimeAxis.from_dict(d["time"]),
            channels=[Channel(c["name"], c["variable"], dict(c["at"])) for c in d["channels"]],
            variables=[VariableInfo(v["name"], tuple(v["dims"]), v["dtype"], v["attrs"]) for v in d["variables"]],
            coords=d["coords"],
            attrs=d["attrs"],
        )


def as_dataset(data: Any) -> xr.Dataset:
    """Accept an ``xr.Dataset``, a named ``xr.DataArray`` or the path of a netCDF file/zarr store (opened
    lazily, see :func:`gridvit.data.io.open_data`); anything else is a TypeError."""
    if isinstance(data, (str, os.PathLike)):
        return open_data(data)
    if isinstance(data, xr.DataArray):
        if data.name is None:
            raise ValueError("the DataArray has no name; name it (da.rename('t2m')) or pass a Dataset")
        return data.to_dataset()
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"expected an xarray Dataset, a named DataArray or a netCDF/zarr path, got "
                        f"{type(data).__name__}")
    return data


def describe(data: xr.Dataset | xr.DataArray | PathLike, *, variables: str | Sequence[str] | None = None,
             dims: Mapping[str, Any] | None = None, periodic: Periodic = None,
             allow_single_step: bool = False) -> DataSpec:
    """Inspect ``data`` (without loading values) and return its :class:`DataSpec`.

    Args:
        data: a Dataset or named DataArray with one time dim and two spatial dims (plus optional
            ``sample`` and level dims), or the path of a netCDF file or zarr store.
        variables: variables to use (default: every numeric data variable with time and both spatial dims).
        dims: role override, e.g. ``{"time": "t", "y": "rows", "x": "cols", "channels": ["level"]}``.
        periodic: planes only: ``True``/``False`` for both axes, ``(y, x)``, or ``{"x": True}`` keyed by
            role or dim name. Default: the spatial coordinates' ``periodic`` attribute (1/0). On a sphere
            longitude is periodic exactly when it closes the circle.
        allow_single_step: accept one time step (its step is then unknown); for forecasts from one state.

    Raises:
        TypeError: not a Dataset/DataArray; a non-numeric variable; an unsupported time dtype.
        ValueError: no variables, a missing variable, dims that cannot be resolved, bad coordinates,
            non-monotonic/duplicated/irregular time.
    """
    ds = as_dataset(data)
    names = _select_variables(ds, variables)
    d = detect_dims(ds, names, dims)
    required = [d.time, d.y, d.x] + ([d.sample] if d.sample else [])
    if variables is None:
        names = [v for v in names if set(required) <= set(ds[v].dims)]
        if not names:
            raise ValueError(f"no data variable has all of the dims {required}")
    for v in names:
        check_name("variable", v)
        for dim in ds[v].dims:
            check_name("dimension", dim)
        missing = [r for r in required if r not in ds[v].dims]
        if missing:
            raise ValueError(f"variable {v!r} has dims {ds[v].dims} but lacks {missing}; every variable needs {required}")
        _check_numeric(ds[v])
    grid = _grid(ds, d, periodic)
    times = ds[d.time].values if d.time in ds.coords else np.arange(ds.sizes[d.time])
    taxis = time_axis(times, name=d.time, allow_single=allow_single_step)
    channels = [ch for v in names for ch in _channels(ds, v, d)]
    coords = {name: _coord_info(ds, name) for name in (d.y, d.x, *d.channels) if name in ds.coords}
    for name in (d.time, d.sample):
        if name is not None and name in ds.coords:
            coords[name] = {"attrs": dict(ds[name].attrs)}
    infos = [VariableInfo(v, tuple(ds[v].dims), str(ds[v].dtype), dict(ds[v].attrs)) for v in names]
    return DataSpec(dims=d, grid=grid, time=taxis, channels=channels, variables=infos, coords=coords,
                    attrs=dict(ds.attrs))


def check_name(kind: str, name: Any) -> None:
    """Refuse a variable/dimension name that is not a plain string or could act as a file path (outputs are
    written with these names, e.g. as zarr arrays): ``/``, ``\\``, NUL, ``.`` or ``..``."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(ch in name for ch in "/\\\0"):
        raise ValueError(f"{kind} name {name!r} is not allowed: names must be non-empty strings without '/', "
                         "'\\' or NUL and not '.' or '..' (rename it, e.g. ds.rename(...))")


def _select_variables(ds: xr.Dataset, variables: str | Sequence[str] | None) -> list[str]:
    if not ds.data_vars:
        raise ValueError("the dataset has no data variables")
    if variables is None:
        return list(ds.data_vars)  # narrowed to those with time, y and x once the dims are known
    names = [variables] if isinstance(variables, str) else list(variables)
    if not names:
        raise ValueError("variables is empty; name at least one of " + str(list(ds.data_vars)))
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        raise ValueError(f"variables {missing} not in the dataset; available: {list(ds.data_vars)}")
    return names


def _check_numeric(da: xr.DataArray) -> None:
    if da.dtype.kind not in "fiu":
        raise TypeError(
            f"variable {da.name!r} has dtype {da.dtype}; gridvit needs numeric (float or int) variables"
        )


def _axis_values(ds: xr.Dataset, dim: str) -> np.ndarray:
    return ds[dim].values if dim in ds.coords else np.arange(ds.sizes[dim], dtype=np.float64)


def _grid(ds: xr.Dataset, d: Dims, periodic: Periodic) -> Grid:
    y, x = _axis_values(ds, d.y), _axis_values(ds, d.x)
    for name, v in ((d.y, y), (d.x, x)):
        if v.dtype.kind not in "fiu":
            raise TypeError(f"spatial coordinate {name!r} has dtype {v.dtype}; expected numbers")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"spatial coordinate {name!r} has non-finite values")
    py, px = _periodic(ds, d, periodic)
    if d.sphere:
        _check_monotonic(d.y, y)
        step = np.diff(x.astype(np.float64)) % 360.0
        if x.size > 1 and not (np.all((step > 0) & (step < 180)) or np.all((step > 180) & (step < 360))):
            raise ValueError(
                f"longitude {d.x!r} must increase (or decrease) steadily modulo 360°, got {x[:6].tolist()}..."
            )
        return Grid("sphere", y, x, periodic_x=is_global_longitude(x) if px is None else bool(px))  # checks |lat| <= 90
    _check_monotonic(d.y, y)
    _check_monotonic(d.x, x)
    return Grid("plane", y, x, periodic_y=bool(py), periodic_x=bool(px))


def _check_monotonic(name: str, v: np.ndarray) -> None:
    dv = np.diff(v.astype(np.float64))
    if v.size > 1 and not (np.all(dv > 0) or np.all(dv < 0)):
        raise ValueError(f"spatial coordinate {name!r} must be strictly increasing or decreasing")


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "periodic")


def _periodic(ds: xr.Dataset, d: Dims, periodic: Periodic) -> tuple[bool | None, bool | None]:
    """(y, x) periodicity from the option, else from the coordinates' ``periodic`` attrs, else None."""
    if periodic is None:
        out = []
        for dim in (d.y, d.x):
            attr = ds[dim].attrs.get("periodic") if dim in ds.coords else None
            out.append(None if attr is None else _truthy(attr))
        return out[0], out[1]
    if isinstance(periodic, bool):
        return periodic, periodic
    if isinstance(periodic, Mapping):
        bad = set(periodic) - {"y", "x", d.y, d.x}
        if bad:
            raise ValueError(f"periodic keys {sorted(bad)} are not spatial dims; use 'y', 'x', {d.y!r} or {d.x!r}")
        get = lambda role, dim: periodic.get(role, periodic.get(dim))  # noqa: E731
        return get("y", d.y), get("x", d.x)
    if isinstance(periodic, (tuple, list)) and len(periodic) == 2:
        return bool(periodic[0]), bool(periodic[1])
    raise TypeError(f"periodic must be a bool, a (y, x) pair or a dict keyed by dim, got {periodic!r}")


def _channels(ds: xr.Dataset, v: str, d: Dims) -> list[Channel]:
    extra = [dim for dim in ds[v].dims if dim in d.channels]
    if not extra:
        return [Channel(v, v)]
    grids = np.meshgrid(*[_axis_values(ds, e) for e in extra], indexing="ij")
    out = []
    for values in zip(*[g.ravel() for g in grids]):
        at = {e: val.item() for e, val in zip(extra, values)}
        out.append(Channel(v + "".join(f"@{_fmt(val)}" for val in at.values()), v, at))
    return out


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _coord_info(ds: xr.Dataset, name: str) -> dict[str, Any]:
    c = ds[name]
    return {"values": c.values, "attrs": dict(c.attrs)}


def _jsonable(obj: Any) -> Any:
    """Recursively turn numpy arrays/scalars into JSON types; arrays keep their dtype in a tag."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _from_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_jsonable(v) for v in obj]
    return obj
