"""Per-channel normalisation statistics and the land/sea-style mask, from the training split only.

Two modes. Plain: ``z = (x − mean_c) / std_c``. Climatology (anomalies): ``z = (x − clim[g(t), c]) / std_c``
with ``clim`` the per-cell mean of the training split for each hour of day or each month ``g(t)``, and
``std_c`` the anomalies' standard deviation; a model's residual "next = last + delta" then starts from
anomaly persistence, the strong baseline for diurnal and seasonal cycles.
Statistics are area-weighted on the sphere (WeatherBench 2 latitude weights, see
:mod:`gridvit.geometry`) and unweighted on planes, skip NaN cells, and are accumulated in streaming
passes over time blocks (float64 sums), so data larger than memory is never loaded whole.
``zmax`` (C,) is the largest |normalised value| of the training split: the yardstick against which a
rollout is judged to diverge (see :meth:`Normaliser.divergence_bound`).
The mask marks cells that are finite at every training step; cells that are ever NaN (land in an SST
field) are masked: filled with the channel mean (0 in normalised units) on input, excluded from losses
and metrics, and written back as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from gridvit.data.reader import FieldReader
from gridvit.data.spec import DataSpec
from gridvit.data.timeaxis import CLIMATOLOGY_GROUPS, calendar_group

DIVERGENCE_FACTOR = 4.0  # a forecast value this many times beyond the training extremes has diverged
FALLBACK_BOUND = 50.0  # |normalised value| bound for model files saved without training extremes
BLOCK_BYTES = 8 * 1024**2  # a streaming block (float64); the pass holds a few temporaries of this size


@dataclass(eq=False)
class Normaliser:
    """Channel means/stds (C,), the valid-cell mask (C, H, W), optionally a climatology (G, C, H, W), and the
    training split's largest |normalised value| per channel ``zmax`` (C,) (None in files older than it)."""

    mean: np.ndarray
    std: np.ndarray
    valid: np.ndarray
    clim: np.ndarray | None = None
    clim_by: str | None = None
    zmax: np.ndarray | None = None

    def divergence_bound(self) -> np.ndarray:
        """(C,) |normalised value| beyond which a forecast has diverged: ``DIVERGENCE_FACTOR`` (4) times the
        largest |normalised value| of the training split (at least 1), i.e. four times farther from the
        training mean (or climatology) than any training value; ``FALLBACK_BOUND`` (50) for old files."""
        if self.zmax is None:
            return np.full(len(self.mean), FALLBACK_BOUND)
        return DIVERGENCE_FACTOR * np.maximum(np.asarray(self.zmax, dtype=np.float64), 1.0)

    def offset(self, times: Any = None) -> np.ndarray:
        """What is subtracted before scaling: (C, 1, 1) means, or (T, C, H, W) climatology at (T,) times."""
        if self.clim is None:
            return self.mean[:, None, None]
        if times is None:
            raise ValueError(f"this normaliser removes a climatology by {self.clim_by}; it needs the times")
        return self.clim[calendar_group(times, self.clim_by)]

    def normalise(self, x: np.ndarray, times: Any = None) -> np.ndarray:
        """(..., T, C, H, W) physical units at (T,) ``times`` -> normalised units (times: climatology mode).

        Computed in float32 for float32 (or integer) data — the loader's hot path — and float64 for float64."""
        dtype = np.result_type(x.dtype, np.float32)
        return (x - self.offset(times).astype(dtype, copy=False)) / self.std[:, None, None].astype(dtype, copy=False)

    def denormalise(self, z: np.ndarray, times: Any = None) -> np.ndarray:
        """(..., T, C, H, W) normalised units at (T,) ``times`` -> physical units."""
        return z * self.std[:, None, None] + self.offset(times)

    @property
    def masked_fraction(self) -> float:
        """Fraction of cells (over channels) that are masked."""
        return float(1.0 - self.valid.mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able statistics; the climatology array travels separately (as a tensor in model files)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clim_by": self.clim_by,
                "valid_shape": list(self.valid.shape), "valid": np.packbits(self.valid).tolist(),
                "zmax": None if self.zmax is None else np.asarray(self.zmax).tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], clim: np.ndarray | None = None) -> "Normaliser":
        shape = tuple(d["valid_shape"])
        valid = np.unpackbits(np.asarray(d["valid"], dtype=np.uint8), count=int(np.prod(shape))).astype(bool)
        zmax = None if d.get("zmax") is None else np.asarray(d["zmax"], dtype=np.float64)
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]), valid.reshape(shape), clim, d.get("clim_by"), zmax)


def fit_normaliser(reader: FieldReader, spec: DataSpec, *, samples: Iterable[int], times: range,
                   time_values: Any = None, climatology: str | None = None, block: int = 64) -> Normaliser:
    """Fit statistics on ``samples`` × ``times`` (the training split) in streaming passes.

    Args:
        climatology: None (plain), ``"hour"`` or ``"month"`` (anomalies; needs ``time_values``, the (T,)
            time coordinate of the whole dataset).
        block: time steps read at once; fewer where they would exceed ``BLOCK_BYTES`` (8 MiB) as float64,
            so memory stays bounded however large the store (climatology sums add 2·G·C·H·W float64).

    Raises:
        ValueError: a channel with inf values, a channel that is NaN everywhere, or a time step at which a
            channel is NaN everywhere.
    """
    samples = list(samples)
    block = min(block, reader.steps_within(BLOCK_BYTES))  # bounded memory on large grids
    names = spec.channel_names
    c = len(names)
    w = spec.grid.area_weights()  # (H, W), mean 1
    s1, s2, sw = np.zeros(c), np.zeros(c), np.zeros(c)
    lo, hi = np.full(c, np.inf), np.full(c, -np.inf)
    valid = np.ones((c, *spec.grid.shape), dtype=bool)
    groups = None if climatology is None else calendar_group(np.asarray(time_values)[times.start:times.stop], climatology)
    g_sum = None if climatology is None else np.zeros((CLIMATOLOGY_GROUPS[climatology], c, *spec.grid.shape))
    g_cnt = None if climatology is None else np.zeros_like(g_sum)
    empty_step: dict[int, int] = {}  # channel -> first time index at which it is NaN everywhere
    for start, x in _blocks(reader, samples, times, block):  # x: (T, C, H, W) float64
        finite = np.isfinite(x)
        if np.isinf(x).any():
            bad = [n for n, b in zip(names, np.isinf(x).any(axis=(0, 2, 3))) if b]
            raise ValueError(f"variable(s) {bad} contain inf values; replace them with NaN (masked) or finite values")
        for t, ch in np.argwhere(~finite.any(axis=(2, 3))):  # (T, C) steps with no finite cell
            empty_step.setdefault(int(ch), start + int(t))
        valid &= finite.all(axis=0)
        lo = np.minimum(lo, np.where(finite, x, np.inf).min(axis=(0, 2, 3)))
        hi = np.maximum(hi, np.where(finite, x, -np.inf).max(axis=(0, 2, 3)))
        xw = np.where(finite, x, 0.0)
        wf = finite * w  # (T, C, H, W)
        s1 += (xw * wf).sum(axis=(0, 2, 3))
        s2 += (xw * xw * wf).sum(axis=(0, 2, 3))
        sw += wf.sum(axis=(0, 2, 3))
        if groups is not None:
            g = groups[start - times.start : start - times.start + len(x)]
            np.add.at(g_sum, g, xw)
            np.add.at(g_cnt, g, finite)
    empty = [n for n, total in zip(names, sw) if total == 0]
    if empty:
        raise ValueError(f"variable(s) {empty} are NaN everywhere in the training split; drop them or fix the data")
    if empty_step:
        ch, t = next(iter(empty_step.items()))
        raise ValueError(
            f"variable {names[ch]!r} is NaN everywhere at time index {t} of dim {spec.dims.time!r}; "
            f"drop that step (ds.dropna({spec.dims.time!r}, how='all')) or fill it"
        )
    mean = s1 / sw
    var = np.maximum(s2 / sw - mean**2, 0.0)
    clim, amax = None, np.maximum(hi - mean, mean - lo)  # largest |x - mean| (C,)
    if groups is not None:
        clim = np.where(g_cnt > 0, g_sum / np.maximum(g_cnt, 1), mean[None, :, None, None])  # (G, C, H, W)
        clim = np.where(valid, clim, 0.0).astype(np.float32)
        var, amax = _anomaly_variance(reader, samples, times, block, clim, groups, w)
    std = np.sqrt(var)
    std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)  # a constant channel keeps unit scale
    return Normaliser(mean=mean, std=std, valid=valid, clim=clim, clim_by=climatology, zmax=amax / std)


def _blocks(reader: FieldReader, samples: list[int], times: range, block: int):
    """Yield (start index, (T, C, H, W) float64 block) over samples × time blocks."""
    for s in samples:
        for start in range(times.start, times.stop, block):
            yield start, reader.read(s, slice(start, min(start + block, times.stop))).astype(np.float64)


def _anomaly_variance(reader: FieldReader, samples: list[int], times: range, block: int, clim: np.ndarray,
                      groups: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted variance (C,) and largest |anomaly| (C,) of the anomalies x − clim[group(t)];
    ``groups`` aligned with ``times``."""
    s2 = sw = amax = 0.0
    for start, x in _blocks(reader, samples, times, block):
        a = x - clim[groups[start - times.start : start - times.start + len(x)]]
        finite = np.isfinite(a)
        wf = finite * w
        a = np.where(finite, a, 0.0)
        s2 = s2 + (a**2 * wf).sum(axis=(0, 2, 3))
        sw = sw + wf.sum(axis=(0, 2, 3))
        amax = np.maximum(amax, np.abs(a).max(axis=(0, 2, 3)))
    return s2 / sw, amax
