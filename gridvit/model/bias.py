"""Attention bias from physical distance: ``bias[h, i, j] = −m_h · d(i, j) / L``.

``d`` is the distance between patch centres from :func:`gridvit.geometry.patch_distances` (great-circle km on
a sphere, periodic/bounded grid units on a plane) and ``L`` a length scale (by default the grid's median
nearest-neighbour patch spacing). The per-head slopes ``m_h`` form a geometric range (ALiBi): the steepest
head is local, the shallowest nearly global.

The bias is derived from the grid, never stored in the ``state_dict``: it is cached per
``(grid.key, patch, device, dtype)`` in plain module state, so the same weights load and run on another grid.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gridvit.geometry import Grid, length_scale, patch_distances


@dataclass(frozen=True)
class SlopedDistance:
    """A bias ``−m_h · dist`` kept factored, so the fused CPU kernel can train the slopes (see attention.py).

    Attributes:
        slopes: (h,) positive slopes m_h (may require grad).
        dist: (N, N) scaled distances d / L.
        log_dist: (N, N) ``log(d / L)`` (−inf on the diagonal), cached with ``dist``.
    """

    slopes: torch.Tensor
    dist: torch.Tensor
    log_dist: torch.Tensor

    def dense(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The bias as a tensor (1, h, N, N)."""
        bias = -(self.slopes[None, :, None, None].to(self.dist.dtype) * self.dist)  # (1, h, N, N)
        return bias if dtype is None else bias.to(dtype)


def alibi_slopes(heads: int, *, slope_max: float = 1.0, slope_min: float = 1.0 / 64.0) -> torch.Tensor:
    """Geometric per-head slopes (h,) from ``slope_max`` (local head) down to ``slope_min`` (global head)."""
    if heads == 1:
        return torch.tensor([slope_max], dtype=torch.float64)
    ratio = (slope_min / slope_max) ** (1.0 / (heads - 1))
    return slope_max * ratio ** torch.arange(heads, dtype=torch.float64)


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))  # softplus(x) = y  <=>  x = y + log(1 - e^-y)


class DistanceBias(nn.Module):
    """Per-layer attention biases (1, h, N, N) for a grid.

    Args:
        heads: h.
        layers: number of attention layers that consume a bias.
        mode: ``"alibi"`` (fixed slopes, one cached bias shared by all layers), ``"learnable"``
            (per-layer slopes ``softplus(raw)``, positive by construction) or ``"none"``.
        slope_max: steepest slope (per L).
        slope_min: shallowest slope (per L).
        length_scale: fixed L (km on a sphere, grid units on a plane); ``None`` uses the grid's median
            nearest-neighbour patch spacing.
        cache_size: grids kept in the cache (least recently used dropped first).
    """

    def __init__(
        self,
        *,
        heads: int,
        layers: int,
        mode: str = "alibi",
        slope_max: float = 1.0,
        slope_min: float = 1.0 / 64.0,
        length_scale: float | None = None,
        cache_size: int = 4,
    ) -> None:
        super().__init__()
        self.heads, self.layers, self.mode = heads, layers, mode
        self.length_scale = length_scale
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()  # not a buffer: never in the state_dict
        init = alibi_slopes(heads, slope_max=slope_max, slope_min=slope_min).float()
        if mode == "learnable":
            self.raw_slopes = nn.Parameter(_inverse_softplus(init).repeat(layers, 1))  # (layers, h)
        elif mode == "alibi":
            self.register_buffer("fixed_slopes", init, persistent=False)  # (h,), derived from the config
        elif mode != "none":
            raise ValueError(f"bias mode must be 'alibi', 'learnable' or 'none', got {mode!r}")

    def slopes(self) -> torch.Tensor | None:
        """Slopes (layers, h) per length scale, or None for ``mode="none"``."""
        if self.mode == "learnable":
            return F.softplus(self.raw_slopes)
        if self.mode == "alibi":
            return self.fixed_slopes.expand(self.layers, self.heads)
        return None

    def scaled_distances(self, grid: Grid, patch: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``d / L`` (N, N) between the grid's patch centres, cached per (grid, patch, device, dtype)."""
        return self._cached(("d", grid.key, patch, device, dtype), lambda: self._distances(grid, patch, device, dtype))

    @torch.compiler.disable  # a cache lookup (numpy on a miss): keep it out of compiled graphs
    def forward(
        self, grid: Grid, patch: int, *, device: torch.device, dtype: torch.dtype
    ) -> list[torch.Tensor | SlopedDistance | None]:
        """One bias per layer: ALiBi, the same cached (1, h, N, N) tensor for every layer; learnable, a
        :class:`SlopedDistance` per layer (its slopes carry the gradient); none, ``None``.

        The leading 1 matters for speed: SDPA's fused CPU kernel takes a 4-D mask that broadcasts over the
        batch, but falls back to the slow math kernel for a 3-D (h, N, N) one.
        """
        if self.mode == "none":
            return [None] * self.layers
        if self.mode == "alibi":
            key = ("alibi", grid.key, patch, device, dtype)
            bias = self._cached(key, lambda: self._alibi(grid, patch, device, dtype))
            return [bias] * self.layers
        dist = self.scaled_distances(grid, patch, device=device, dtype=dtype)  # (N, N)
        log_dist = self._cached(("log", grid.key, patch, device, dtype), lambda: torch.log(dist))  # (N, N)
        return [SlopedDistance(m, dist, log_dist) for m in self.slopes()]  # m: (h,)

    def _alibi(self, grid: Grid, patch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        dist = self._distances(grid, patch, device, torch.float32)  # (N, N)
        m = self.fixed_slopes.to(device=device, dtype=torch.float32)  # (h,)
        return (-(m[:, None, None] * dist)).to(dtype).unsqueeze(0).contiguous()  # (1, h, N, N)

    def _distances(self, grid: Grid, patch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        d = patch_distances(grid, patch)  # (N, N) float64, cached on the grid
        scale = self.length_scale if self.length_scale is not None else length_scale(d)
        if not math.isfinite(scale) or scale <= 0:
            scale = 1.0  # a single patch (or coincident centres): no distances to scale
        return torch.as_tensor(d / scale, dtype=dtype, device=device)  # (N, N)

    def _cached(self, key: tuple, make) -> torch.Tensor:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = make()
        self._cache[key] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return value
