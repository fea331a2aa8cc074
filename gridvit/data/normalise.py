"""Per-channel normalisation statistics and the land/sea-style mask, from the training split only.

Statistics are area-weighted on the sphere (WeatherBench 2 latitude weights, see
:mod:`gridvit.geometry`) and unweighted on planes, skip NaN cells, and are accumulated in one streaming
pass over time blocks (float64 sums), so data larger than memory is never loaded whole.
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


@dataclass(eq=False)
class Normaliser:
    """Channel means/stds (C,) and the valid-cell mask (C, H, W)."""

    mean: np.ndarray
    std: np.ndarray
    valid: np.ndarray

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """(..., C, H, W) physical units -> normalised units."""
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        """(..., C, H, W) normalised units -> physical units."""
        return x * self.std[:, None, None] + self.mean[:, None, None]

    @property
    def masked_fraction(self) -> float:
        """Fraction of cells (over channels) that are masked."""
        return float(1.0 - self.valid.mean())

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(),
                "valid_shape": list(self.valid.shape), "valid": np.packbits(self.valid).tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normaliser":
        shape = tuple(d["valid_shape"])
        valid = np.unpackbits(np.asarray(d["valid"], dtype=np.uint8), count=int(np.prod(shape))).astype(bool)
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]), valid.reshape(shape))


def fit_normaliser(reader: FieldReader, spec: DataSpec, *, samples: Iterable[int], times: range,
                   block: int = 64) -> Normaliser:
    """Fit statistics on ``samples`` × ``times`` (the training split), in one streaming pass.

    Raises:
        ValueError: a channel with inf values, a channel that is NaN everywhere, or a time step at which a
            channel is NaN everywhere.
    """
    names = spec.channel_names
    c = len(names)
    w = spec.grid.area_weights()  # (H, W), mean 1
    s1, s2, sw = np.zeros(c), np.zeros(c), np.zeros(c)
    valid = np.ones((c, *spec.grid.shape), dtype=bool)
    empty_step: dict[int, int] = {}  # channel -> first time index at which it is NaN everywhere
    for s in samples:
        for start in range(times.start, times.stop, block):
            x = reader.read(s, slice(start, min(start + block, times.stop))).astype(np.float64)  # (T, C, H, W)
            finite = np.isfinite(x)
            if np.isinf(x).any():
                bad = [n for n, b in zip(names, np.isinf(x).any(axis=(0, 2, 3))) if b]
                raise ValueError(f"variable(s) {bad} contain inf values; replace them with NaN (masked) or finite values")
            for t, ch in np.argwhere(~finite.any(axis=(2, 3))):  # (T, C) steps with no finite cell
                empty_step.setdefault(int(ch), start + int(t))
            valid &= finite.all(axis=0)
            xw = np.where(finite, x, 0.0)
            wf = finite * w  # (T, C, H, W)
            s1 += (xw * wf).sum(axis=(0, 2, 3))
            s2 += (xw * xw * wf).sum(axis=(0, 2, 3))
            sw += wf.sum(axis=(0, 2, 3))
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
    std = np.sqrt(np.maximum(s2 / sw - mean**2, 0.0))
    std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)  # a constant channel keeps unit scale
    return Normaliser(mean=mean, std=std, valid=valid)
