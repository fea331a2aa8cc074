"""Attention bias from physical distance: ``bias[h, i, j] = −m_h · d(i, j) / L``.

``d`` is the distance between patch centres from :func:`gridvit.geometry.patch_distances` (great-circle km on
a sphere, periodic/bounded grid units on a plane) and ``L`` a length scale (by default the grid's median
nearest-neighbour patch spacing). The per-head slopes ``m_h`` form a geometric range (ALiBi): the steepest
head is local, the shallowest nearly global.

The bias is derived from the grid, never stored in the ``state_dict``: it is cached per
``(grid.key, patch, device, dtype)`` in plain module state, so the same weights load and run on another grid.

Two forms of the same numbers:

- dense (:meth:`DistanceBias.forward`): a (1, h, N, N) tensor (or a :class:`SlopedDistance`) for SDPA — O(N²)
  memory, the CPU path;
- coordinates (:meth:`DistanceBias.token_distances`): a :class:`TokenDistance` holding O(N) per-token
  coordinates and the per-head weights, from which FlexAttention's ``score_mod`` computes the bias inside the
  kernel; no (N, N) tensor is built. With ``block_sparse`` it also carries a per-head block mask that skips
  the key blocks whose bias is below −τ everywhere (see :func:`sparse_threshold`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gridvit.geometry import EARTH_RADIUS_KM, Grid, length_scale, patch_coordinates, patch_distances

SPARSE_BLOCK = 128  # tokens per query/key block of the block mask (FlexAttention's default)
SPARSE_EPS = 1e-6  # bound on the share of a row's attention mass that skipped blocks may hold
SPARSE_SCORE_MARGIN = 10.0  # assumed bound Δ on how far a skipped key's q·k/√d exceeds the query's own


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


def sparse_threshold(tokens: int) -> float:
    """τ = ln(N / ε) + Δ: key blocks whose bias is below −τ for every entry are skipped.

    A row keeps at least its own key (bias 0, logit ``s_ii``); each skipped key j has logit ``s_ij − b`` with
    ``b ≥ τ``, so the skipped share of the row's softmax mass is below ``N · exp(s_ij − s_ii − τ)``, which is
    ``≤ ε = 1e-6`` (:data:`SPARSE_EPS`) while no skipped key's unbiased score ``q·k/√d`` exceeds the query's
    own by more than Δ = 10 (:data:`SPARSE_SCORE_MARGIN`, an assumption on the scores, not a guarantee).
    """
    return math.log(max(tokens, 1) / SPARSE_EPS) + SPARSE_SCORE_MARGIN


ACOS_POLY = (1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046,
             0.0308918810, -0.0170881256, 0.0066700901, -0.0012624911)
"""``acos(z) ≈ √(1 − z) Σ a_k z^k`` on [0, 1], |error| ≤ 2e-8 (Abramowitz & Stegun 4.4.46)."""


def token_distance(a: tuple, b: tuple, kind: str, periods: tuple | None = None) -> torch.Tensor:
    """Elementwise distance between points given by coordinate components (tensors that broadcast).

    On a sphere the components are unit vectors and the result is the central angle θ in radians:
    ``θ = √y · P(1 − y)`` with ``y = 1 − |cos θ| = min(|a − b|², |a + b|²) / 2`` (each form accurate where
    it is taken: ``1 − a·b`` is not, near 0 and π) and P the degree-7 polynomial of :data:`ACOS_POLY`,
    reflected to ``π − θ`` beyond 90°. About 30 float operations and one sqrt per pair, no arcsine: what the
    FlexAttention kernel pays per pair (benchmarks/results/attention_bias_cuda.md). Error ≤ 2e-8 rad plus
    the coordinates' rounding (float32: ~1e-7 rad). On a plane: the Euclidean distance in grid units,
    each axis with a period p (a float or a 0-d tensor; ``inf`` or None: bounded) wrapped to
    ``min(δ, p − δ)`` — coordinates along a periodic axis must lie in [0, p), so ``δ < p``
    (:func:`patch_distances` takes ``δ mod p`` of centres that may pass the end of the axis: the same numbers).
    """
    if kind == "sphere":
        minus = sum((x - y) * (x - y) for x, y in zip(a, b))  # |a − b|² = 2 − 2 cos θ
        plus = sum((x + y) * (x + y) for x, y in zip(a, b))  # |a + b|² = 2 + 2 cos θ
        y = 0.5 * torch.minimum(minus, plus)  # 1 − |cos θ|
        z = 1.0 - y  # |cos θ|
        poly = ACOS_POLY[-1]
        for coef in ACOS_POLY[-2::-1]:
            poly = poly * z + coef  # Horner
        r = torch.sqrt(y) * poly  # acos |cos θ|
        return torch.where(minus <= plus, r, math.pi - r)
    total = 0.0
    for axis, (x, y) in enumerate(zip(a, b)):
        delta = torch.abs(x - y)
        if periods is not None and periods[axis] is not None:
            delta = torch.minimum(delta, periods[axis] - delta)
        total = total + delta * delta
    return torch.sqrt(total)


@dataclass(frozen=True)
class TokenDistance:
    """A bias ``bias[h, i, j] = −w_h · r(i, j)`` computed from per-token coordinates (O(N) memory).

    ``r`` is :func:`token_distance` (radians on a sphere, grid units on a plane) and ``w_h`` the head's slope
    over the length scale (``m_h R / L`` on a sphere, ``m_h / L`` on a plane), so ``w_h r = m_h d / L``.

    Attributes:
        weights: (h,) per-head weights w_h (may require grad: learnable slopes).
        coords: per-token coordinate components, each (N,).
        kind: ``"sphere"`` or ``"plane"``.
        periods: on a plane, (k,) the period of each axis (``inf`` where it does not wrap); None on a sphere.
            A tensor, not floats: captured by the kernel's ``score_mod``, it is an input, not a constant
            that torch.compile would specialise on.
        block_mask: a FlexAttention ``BlockMask`` skipping blocks with bias below −τ everywhere, or None.
    """

    weights: torch.Tensor
    coords: tuple[torch.Tensor, ...]
    kind: str
    periods: torch.Tensor | None
    block_mask: object | None = None

    @property
    def tokens(self) -> int:
        """N."""
        return self.coords[0].shape[0]


@dataclass(frozen=True)
class _TokenGeometry:
    """What the coordinate path caches per grid: coordinates, r → d/L factor, per-block-pair minimum r."""

    coords: tuple[torch.Tensor, ...]
    kind: str
    periods: torch.Tensor | None  # (k,), inf where an axis does not wrap; None on a sphere
    factor: float
    block_min: torch.Tensor  # (nb, nb), nb = ceil(N / SPARSE_BLOCK)


def _distance_pass(coords: torch.Tensor, kind: str, periods: tuple, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's nearest-neighbour distance (N,) and the minimum distance per (query, key) block pair
    (nb, nb), from coordinates (N, k), computed in row chunks of about 4M pairs: O(N) memory, O(N²) time."""
    n = coords.shape[0]
    nb = -(-n // block)
    rows = block * max(1, 2**22 // (n * block))
    cols = coords.unbind(1)
    nearest = torch.empty(n, dtype=coords.dtype, device=coords.device)
    block_min = torch.empty(nb, nb, dtype=coords.dtype, device=coords.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        d = token_distance(tuple(c[start:stop, None] for c in cols), tuple(c[None, :] for c in cols), kind, periods)  # (r, N)
        padded = F.pad(d, (0, nb * block - n, 0, -(stop - start) % block), value=math.inf)  # (r', nb·block)
        block_min[start // block : -(-stop // block)] = padded.reshape(-1, block, nb, block).amin(dim=(1, 3))
        d[torch.arange(stop - start), torch.arange(start, stop)] = math.inf  # exclude self from the neighbours
        nearest[start:stop] = d.amin(dim=1)
    return nearest, block_min


def _block_mask(block_min: torch.Tensor, weights: torch.Tensor, tokens: int):
    """A per-head BlockMask keeping the key blocks where some bias exceeds −τ; None when nothing is skipped."""
    from torch.nn.attention.flex_attention import BlockMask

    keep = weights.detach()[:, None, None].to(block_min.dtype) * block_min < sparse_threshold(tokens)  # (h, nb, nb)
    if bool(keep.all()):
        return None
    counts = keep.sum(-1, dtype=torch.int32)  # (h, nb) kept key blocks per query block
    order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True).to(torch.int32)  # (h, nb, nb) kept first
    return BlockMask.from_kv_blocks(counts[None], order[None], BLOCK_SIZE=SPARSE_BLOCK, seq_lengths=(tokens, tokens))


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

    @torch.compiler.disable
    def token_distances(
        self, grid: Grid, patch: int, *, device: torch.device, dtype: torch.dtype, block_sparse: bool = True
    ) -> list[TokenDistance | None]:
        """One :class:`TokenDistance` per layer (None for ``mode="none"``): the bias as O(N) coordinates.

        Coordinates are float64 when ``dtype`` is, else float32 (the kernel adds the bias to float32 scores).
        With ``block_sparse`` each carries the block mask of its weights (ALiBi: cached with the grid;
        learnable: rebuilt every call from the current slopes, detached).
        """
        if self.mode == "none":
            return [None] * self.layers
        cdtype = torch.float64 if dtype == torch.float64 else torch.float32
        geo = self._cached(("coords", grid.key, patch, device, cdtype), lambda: self._geometry(grid, patch, device, cdtype))
        n = geo.coords[0].shape[0]
        if self.mode == "alibi":
            w = self.fixed_slopes.to(device=device, dtype=cdtype) * geo.factor  # (h,)
            mask = None
            if block_sparse:
                key = ("mask", grid.key, patch, device, cdtype)
                mask = self._cached(key, lambda: _block_mask(geo.block_min, w, n))
            return [TokenDistance(w, geo.coords, geo.kind, geo.periods, mask)] * self.layers
        out = []
        for m in self.slopes():  # (h,) per layer
            w = m.to(cdtype) * geo.factor  # (h,), carries the slopes' gradient
            mask = _block_mask(geo.block_min, w, n) if block_sparse else None
            out.append(TokenDistance(w, geo.coords, geo.kind, geo.periods, mask))
        return out

    def _geometry(self, grid: Grid, patch: int, device: torch.device, dtype: torch.dtype) -> _TokenGeometry:
        """Coordinates, the factor from r to d/L (L as :meth:`_distances` takes it) and the block minima of r."""
        coords, periods = patch_coordinates(grid, patch)  # (N, k) float64
        for axis, period in enumerate(periods):
            if period is not None:
                coords[:, axis] %= period  # into [0, p), as token_distance needs
        c64 = torch.as_tensor(coords, dtype=torch.float64, device=device)  # (N, k)
        nearest, block_min = _distance_pass(c64, grid.kind, periods, SPARSE_BLOCK)  # (N,), (nb, nb) in r units
        unit = EARTH_RADIUS_KM if grid.kind == "sphere" else 1.0  # r -> km on a sphere, grid units on a plane
        scale = self.length_scale
        if scale is None:
            scale = float(np.median(nearest.cpu().numpy())) * unit if len(nearest) > 1 else 1.0
        if not math.isfinite(scale) or scale <= 0:
            scale = 1.0  # as _distances: a single patch (or coincident centres)
        cols = tuple(c.contiguous() for c in c64.to(dtype).unbind(1))  # k × (N,)
        wrap = None
        if grid.kind == "plane":
            wrap = torch.tensor([math.inf if p is None else p for p in periods], dtype=dtype, device=device)  # (k,)
        return _TokenGeometry(cols, grid.kind, wrap, unit / scale, block_min.to(dtype))

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
