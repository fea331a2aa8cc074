"""Small datasets gridvit makes itself: for the demo, tests and notebooks (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def toy_climate(*, n_time: int = 120, shape: tuple[int, int] = (32, 64), freq: str = "6h",
                seed: int = 0, start: str = "2000-01-01") -> xr.Dataset:
    """A global lat-lon "temperature" field: eastward-travelling planetary waves on a meridional gradient.

    ``t2m = 288 − 30·sin²(lat) + Σ_k a_k·cos(lat)·cos(k·(lon − c_k·t) + φ_k) + noise`` (K), with descending
    latitude (cell centres, 90°N → 90°S), longitude 0 … 360 − Δλ (periodic), CF attributes throughout.
    Each wave moves a few grid cells per step, so persistence is beatable and learnable.

    Args:
        n_time: number of time steps. shape: (lat, lon) cells. freq: pandas frequency of the time axis.
        seed: wave phases/speeds and noise.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    lat = 90.0 - (np.arange(h) + 0.5) * 180.0 / h
    lon = np.arange(w) * 360.0 / w
    la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    t = np.arange(n_time)[:, None, None]
    field = 288.0 - 30.0 * np.sin(la) ** 2 + np.zeros((n_time, h, w))  # (T, H, W)
    for k in (2, 3, 5):
        amp, speed, phase = rng.uniform(2, 6), rng.uniform(0.03, 0.08) * rng.choice([-1, 1]), rng.uniform(0, 2 * np.pi)
        field += amp * np.cos(la) * np.cos(k * (lo - speed * t) + phase)
    field += 0.1 * rng.standard_normal(field.shape)
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), field.astype(np.float32),
                 {"units": "K", "long_name": "2 metre temperature (toy)", "standard_name": "air_temperature"})},
        coords={
            "time": ("time", pd.date_range(start, periods=n_time, freq=freq).values.astype("datetime64[ns]"),
                     {"standard_name": "time"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": "gridvit toy climate: travelling planetary waves", "source": "gridvit.examples.toy_climate"},
    )
    return ds


def _box_mask(lat: np.ndarray, lon: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """(H, W) bool: cells with lat in [box[0], box[1]] and lon (mod 360) in [box[2], box[3]] (may wrap 0°)."""
    lat0, lat1, lon0, lon1 = box
    lo, lon0, lon1 = lon % 360.0, lon0 % 360.0, lon1 % 360.0
    in_lon = (lo >= lon0) & (lo <= lon1) if lon0 <= lon1 else (lo >= lon0) | (lo <= lon1)
    mask = ((lat >= lat0) & (lat <= lat1))[:, None] & in_lon[None, :]
    if not mask.any():
        raise ValueError(f"the box {box} (lat_min, lat_max, lon_min, lon_max) holds no cell of the grid")
    return mask


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth random (H, W) field, mean 0 and std 1: white noise through two [1, 2, 1]/4 passes per axis
    (longitude wraps, latitude repeats its edge rows)."""
    f = rng.standard_normal(shape)
    for _ in range(2):
        f = 0.25 * np.roll(f, 1, axis=1) + 0.5 * f + 0.25 * np.roll(f, -1, axis=1)
        padded = np.concatenate([f[:1], f, f[-1:]])  # (H+2, W)
        f = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return (f - f.mean()) / f.std()


def planted_teleconnection(*, coupled: bool = True, n_time: int = 300, shape: tuple[int, int] = (16, 32),
                           source: tuple[float, float, float, float] = (0.0, 40.0, 40.0, 80.0),
                           target: tuple[float, float, float, float] = (-40.0, 0.0, 175.0, 220.0),
                           coupling: float = 2.0, lag: int = 1, seed: int = 0) -> xr.Dataset:
    """A global lat-lon field with a planted teleconnection: the target box at t+lag follows the source box at t.

    Ground truth for attention analysis. ``field = mean state + anomaly``: the mean state is a fixed smooth
    random pattern (std 1.5), so every patch is recognisable by its climatology, as in real data. The
    anomaly follows local AR(1) dynamics ``u(t+1) = 0.8·u(t) + 0.6·ε`` (unit variance, no spatial coupling)
    everywhere except in two boxes: the source box A holds a strong white index ``2·a(t)``, a(t) ~ N(0, 1),
    uniform over the box (unpredictable from its own past); when ``coupled`` the target box B holds
    ``coupling·a(t−lag) + 0.1·ε`` (a model needs ``history >= lag`` to see the driver). In the control (``coupled=False``) B is ordinary background: same mean
    state, same A, same noise, no link. (A control whose B follows an independent white index has the same
    variance everywhere, but its unpredictable B leaves B's attention wandering, in some seeds onto A.)

    With the defaults (16×32 cells of 11.25°, boxes on patch boundaries for patch 4) A is centred at 20° N,
    60° E and B at 20° S, 197.5° E, about 15 400 km apart (great circle between patch centres).

    Args:
        coupled: plant the link (False: the control).
        n_time: time steps (integer time axis). shape: (lat, lon) cells; latitudes descending, longitude
            periodic.
        source, target: boxes (lat_min, lat_max, lon_min, lon_max) in degrees (longitudes may wrap 0°).
        coupling: the target's response to the source index.
        lag: steps from the source index to the target's response (>= 1).
        seed: all random numbers; the same seed gives the same mean state, background and source index in
            both variants.

    Returns:
        Dataset with ``field`` (time, lat, lon); attrs ``source_box``, ``target_box`` and ``coupled``.

    Raises:
        ValueError: a box holding no cell, overlapping boxes, or a lag < 1 or >= n_time.
    """
    if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)) or not 1 <= lag < n_time:
        raise ValueError(f"lag must be an int in [1, n_time), got {lag!r}")
    rng = np.random.default_rng(seed)
    h, w = shape
    lat = 90.0 - (np.arange(h) + 0.5) * 180.0 / h
    lon = np.arange(w) * 360.0 / w
    in_a, in_b = _box_mask(lat, lon, source), _box_mask(lat, lon, target)
    if (in_a & in_b).any():
        raise ValueError(f"the source box {source} and the target box {target} overlap")
    mean_state = 1.5 * _smooth_field(rng, shape)  # (H, W)
    noise = rng.standard_normal((n_time, h, w))  # (T, H, W)
    a = rng.standard_normal(n_time)  # (T,) source index
    anomaly = np.empty((n_time, h, w))
    anomaly[0] = noise[0]
    for t in range(1, n_time):
        anomaly[t] = 0.8 * anomaly[t - 1] + 0.6 * noise[t]
    anomaly[:, in_a] = 2.0 * a[:, None] + 0.1 * noise[:, in_a]
    if coupled:
        driver = np.concatenate([np.zeros(lag), a[:-lag]])  # (T,) the source index lag steps earlier
        anomaly[:, in_b] = coupling * driver[:, None] + 0.1 * noise[:, in_b]
    field = mean_state + anomaly  # (T, H, W)
    return xr.Dataset(
        {"field": (("time", "lat", "lon"), field.astype(np.float32), {"units": "1", "long_name": "planted field"})},
        coords={
            "time": ("time", np.arange(n_time), {"long_name": "time step"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": "gridvit planted teleconnection" + ("" if coupled else " (control)"),
               "source": "gridvit.examples.planted_teleconnection", "coupled": int(coupled),
               "source_box": list(map(float, source)), "target_box": list(map(float, target)),
               "coupling": float(coupling) if coupled else 0.0, "lag": int(lag)},
    )
