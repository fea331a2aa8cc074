"""The linear-regression forecast baseline (WeatherBench / ClimateLearn's strong simple baseline).

Per grid cell and per lead, ordinary least squares on the model's own inputs at that cell: the last
``history`` states (one saved step apart) and the calendar channels of the initial time
(:func:`gridvit.forcings.calendar_channels`: sin/cos of local solar hour for sub-daily data, sin/cos of the
day of year), plus an intercept. Fitted on the training period only. Features are standardised per cell
and a tiny ridge term (1e-6 of the standardised scale) keeps collinear calendar features solvable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import xarray as xr

from gridvit.data.timeaxis import TimeAxis
from gridvit.forcings import calendar_channels
from gridvit.geometry import Grid

RIDGE = 1e-6


@dataclass
class LinearBaseline:
    """Fitted per-cell regressions, one per lead.

    Attributes:
        leads: the leads (saved time steps) it forecasts. history: past states used (one step apart).
        coef: {lead: (F + 1, H, W)} weights on the standardised features, the last one the intercept.
        mean, std: (F, H, W) feature statistics of the training period.
    """

    leads: tuple[int, ...]
    history: int
    coef: dict[int, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    time: TimeAxis
    grid: Grid
    calendar: tuple[str, ...] | None = None

    @classmethod
    def fit(cls, train: xr.DataArray, *, leads: Sequence[int], history: int, time: TimeAxis, grid: Grid,
            dims: tuple[str, str, str], calendar: tuple[str, ...] | None = None) -> "LinearBaseline":
        """Fit on ``train`` (the training period only), dims ``(time, y, x)``, with the calendar channels named
        ``calendar`` (default: all of the time axis's, see :func:`gridvit.forcings.calendar_names`); cells NaN
        at a time are left out of that sample, cells never finite give NaN forecasts.

        Raises:
            ValueError: bad ``leads``/``history``, or a training period too short for the longest lead.
        """
        leads = tuple(int(k) for k in leads)
        if not leads or min(leads) < 1 or isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"the linear baseline needs leads >= 1 and history >= 1, got {leads}, {history!r}")
        x = np.asarray(train.transpose(*dims).values, dtype=np.float64)  # (N, H, W)
        times = train[dims[0]].values
        n = len(x)
        if n < history + max(leads) + 1:
            raise ValueError(f"the training period has {n} steps, too few for history={history} and lead {max(leads)}")
        inits = np.arange(history - 1, n)
        feats = features(x, inits, times[inits], history, time, grid, calendar)  # (M, F, H, W), inits t >= h-1
        ok = np.isfinite(feats).all(axis=1)  # (M, H, W)
        f = np.where(ok[:, None], feats, 0.0)
        count = np.maximum(ok.sum(axis=0), 1)  # (H, W)
        mean = f.sum(axis=0) / count  # (F, H, W)
        std = np.sqrt((np.where(ok[:, None], f - mean, 0.0) ** 2).sum(axis=0) / count)
        std = np.where(std > 0, std, 1.0)
        coef = {}
        for k in leads:
            m = n - (history - 1) - k  # inits whose target lies inside the training period
            z = _design((f[:m] - mean) / std)  # (m, F+1, H, W)
            y = x[history - 1 + k :]  # (m, H, W)
            use = ok[:m] & np.isfinite(y)
            z, y = z * use[:, None], np.where(use, y, 0.0)
            a = np.einsum("nfhw,nghw->hwfg", z, z)  # (H, W, F+1, F+1)
            a += RIDGE * np.maximum(use.sum(axis=0), 1)[..., None, None] * np.eye(a.shape[-1])
            b = np.einsum("nfhw,nhw->hwf", z, y)  # (H, W, F+1)
            w = np.linalg.solve(a, b[..., None])[..., 0]  # (H, W, F+1)
            w[use.sum(axis=0) == 0] = np.nan
            coef[k] = np.moveaxis(w, -1, 0)  # (F+1, H, W)
        return cls(leads, history, coef, mean, std, time, grid, calendar)

    def predict(self, states: np.ndarray, init_time, lead: int) -> np.ndarray:
        """Forecast (H, W) ``lead`` steps after ``init_time`` from the last ``history`` states (h, H, W),
        oldest first, ending at ``init_time``."""
        if lead not in self.coef:
            raise ValueError(f"the linear baseline was fitted for leads {list(self.leads)}, not {lead}")
        states = np.asarray(states, dtype=np.float64)
        feats = features(states, np.array([self.history - 1]), np.array([init_time]), self.history, self.time, self.grid,
                         self.calendar)
        z = _design((feats - self.mean) / self.std)[0]  # (F+1, H, W)
        return (self.coef[lead] * z).sum(axis=0)


def features(x: np.ndarray, inits: np.ndarray, init_times: np.ndarray, history: int, time: TimeAxis, grid: Grid,
             calendar: tuple[str, ...] | None = None) -> np.ndarray:
    """Regression features (M, h + F, H, W) at init indices ``inits`` (M,) of states ``x`` (N, H, W): the
    states ``t-h+1 … t`` then the calendar channels of the init times (M,)."""
    past = np.stack([x[inits - history + 1 + j] for j in range(history)], axis=1)  # (M, h, H, W)
    cal = calendar_channels(init_times, time, grid, calendar).astype(np.float64)  # (M, F, H, W)
    return np.concatenate([past, cal], axis=1)


def _design(z: np.ndarray) -> np.ndarray:
    """Append the intercept: (M, F, H, W) -> (M, F+1, H, W)."""
    return np.concatenate([z, np.ones_like(z[:, :1])], axis=1)
