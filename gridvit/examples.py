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
