"""Resampling statistics for analysis maps: phase-randomised surrogates, block bootstrap, empirical
p-values and Benjamini–Hochberg false-discovery-rate control (see :mod:`gridvit.analysis.significance`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def phase_randomise(series: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` surrogates of each series along the last axis with its amplitude spectrum and random phases.

    Ebisuzaki (1997): the Fourier amplitudes are kept, the phases drawn uniformly (the mean and, for an
    even length, the Nyquist term keep their own), so each surrogate has the series' mean, variance and
    autocorrelation but no phase relation to anything else.

    Args:
        series: (..., L) real series, L >= 3.
        n: surrogates per series.
        seed: the random phases.

    Returns:
        (n, ..., L) surrogates.
    """
    x = np.asarray(series, dtype=np.float64)
    n = _positive_int("n", n)
    if x.shape[-1] < 3 or not np.isfinite(x).all():
        raise ValueError(f"series must be finite with length >= 3 along the last axis, got shape {x.shape}")
    spec = np.fft.rfft(x, axis=-1)  # (..., L//2 + 1)
    rng = np.random.default_rng(seed)
    phases = np.exp(2j * np.pi * rng.uniform(size=(n, *spec.shape)))  # (n, ..., F)
    phases[..., 0] = 1.0
    if x.shape[-1] % 2 == 0:
        phases[..., -1] = np.sign(rng.uniform(-1, 1, size=phases.shape[:-1]))  # a real Nyquist term
    return np.fft.irfft(spec * phases, n=x.shape[-1], axis=-1)  # (n, ..., L)


def benjamini_hochberg(p: np.ndarray, *, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg adjusted p-values and the cells they reject at false discovery rate ``alpha``.

    NaN p-values (masked cells) are left out of the count and stay NaN / not rejected.

    Returns:
        (adjusted, reject), both shaped like ``p``: ``adjusted = min over k >= rank of p_(k)·m/k`` (capped
        at 1) and ``reject = adjusted <= alpha``.
    """
    alpha = _alpha(alpha)
    p = np.asarray(p, dtype=np.float64)
    flat = p.reshape(-1)
    ok = np.isfinite(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full(flat.shape, np.nan)
    m = int(ok.sum())
    if m:
        order = np.argsort(flat[ok])
        ranked = flat[ok][order] * m / np.arange(1, m + 1)  # (m,)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
        adjusted[np.flatnonzero(ok)[order]] = ranked
    adjusted = adjusted.reshape(p.shape)
    return adjusted, np.nan_to_num(adjusted, nan=np.inf) <= alpha


def empirical_pvalues(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p-values ``(1 + #{null >= observed}) / (K + 1)``: observed (...), null (K, ...); NaN stays NaN."""
    obs, nul = np.asarray(observed, dtype=np.float64), np.asarray(null, dtype=np.float64)
    if nul.shape[1:] != obs.shape or nul.shape[0] < 1:
        raise ValueError(f"null (K, ...) {nul.shape} does not match observed {obs.shape}")
    p = (1.0 + (nul >= obs).sum(0)) / (nul.shape[0] + 1.0)
    return np.where(np.isfinite(obs), p, np.nan)


def bootstrap_pvalue(values: np.ndarray, *, block: int | None = None, n: int = 2000, seed: int = 0) -> np.ndarray:
    """One-sided p-value for ``mean > 0`` over the first axis by a moving-block bootstrap.

    The bootstrap means are centred on the observed mean (the null mean 0); ``p = (1 + #{mean* − mean >=
    mean}) / (n + 1)``. ``values`` (S, ...) are per-start statistics in time order; blocks of ``block``
    consecutive starts (default ``ceil(S**(1/3))``) keep their serial correlation.

    Returns:
        (...) p-values.
    """
    v = np.asarray(values, dtype=np.float64)
    s = v.shape[0]
    if s < 2:
        raise ValueError(f"need at least 2 starts for a bootstrap, got {s}")
    block = int(np.ceil(s ** (1 / 3))) if block is None else _positive_int("block", block)
    n = _positive_int("n", n)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, s - block + 1, size=(n, -(-s // block)))  # (n, blocks)
    idx = (starts[..., None] + np.arange(block)).reshape(n, -1)[:, :s]  # (n, S)
    means = v[idx].mean(axis=1)  # (n, ...)
    obs = v.mean(axis=0)
    return (1.0 + (means - obs >= obs).sum(0)) / (n + 1.0)
