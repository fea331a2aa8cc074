"""Boundary conditions and finite-difference operators on a cell-centred (B, C, H, W) grid.

Cells are centred at ``y_i = (i + 1/2) dy`` and ``x_j = (j + 1/2) dx``; axis 0 of a plane is ``y`` (dim -2),
axis 1 is ``x`` (dim -1). A boundary condition fills the *ghost cell* just outside each edge, as py-pde
does on the same grid:

- periodic: the ghost is the cell at the other end;
- Dirichlet ``value`` g (the value on the boundary face): ``ghost = 2 g - u_edge``;
- Neumann ``value`` g (the derivative along the outward normal): ``ghost = u_edge + h g``.

Every non-periodic ghost is ``a * u_edge + b``, which is all the stencils here need. The fast path,
:func:`stencil`, adds neighbours through in-place slice updates (no padded copy, no ``torch.roll``,
which allocates and was 1.5-3× slower here at 512²); :func:`pad` builds the padded tensor when a scheme
needs many neighbours at once (Burgers, the Arakawa Jacobian).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

KINDS = ("periodic", "dirichlet", "neumann")
AXES = ("y", "x")


@dataclass(frozen=True)
class Boundary:
    """The boundary condition of one axis, the same on both of its ends.

    Args:
        kind: ``"periodic"``, ``"dirichlet"`` or ``"neumann"``.
        value: the boundary value (Dirichlet) or outward normal derivative (Neumann); unused if periodic.
    """

    kind: str = "periodic"
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"boundary condition must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.value, (int, float)) or isinstance(self.value, bool) or not math.isfinite(self.value):
            raise ValueError(f"boundary value must be a finite number, got {self.value!r}")
        if self.kind == "periodic" and self.value != 0.0:
            raise ValueError(f"a periodic boundary takes no value, got value={self.value!r}")

    @property
    def periodic(self) -> bool:
        """True for a periodic (wrap-around) boundary."""
        return self.kind == "periodic"

    def ghost(self, h: float) -> tuple[float, float]:
        """(a, b) with ``ghost = a * u_edge + b`` for a bounded axis of spacing ``h``."""
        if self.kind == "dirichlet":
            return -1.0, 2.0 * self.value
        return 1.0, h * self.value

    def describe(self) -> str:
        """A netCDF-storable string: ``"periodic"``, ``"dirichlet=0"``, ``"neumann=0.5"``."""
        return self.kind if self.periodic else f"{self.kind}={self.value:g}"


Boundaries = tuple[Boundary, Boundary]  # (y, x)


def boundaries(bc: Any = "periodic", value: float = 0.0) -> Boundaries:
    """Parse a boundary specification into ``(Boundary for y, Boundary for x)``.

    Accepts one kind for both axes (``"periodic"``, ``"dirichlet"``, ``"neumann"`` or a :class:`Boundary`),
    a pair ``(bc_y, bc_x)``, or a mapping ``{"y": bc_y, "x": bc_x}``. ``value`` applies to every
    bounded axis given by name.
    """
    if isinstance(bc, Mapping):
        unknown = set(bc) - set(AXES)
        if unknown or len(bc) != 2:
            raise ValueError(f"bc mapping needs exactly the keys 'y' and 'x', got {sorted(bc)}")
        bc = (bc["y"], bc["x"])
    if isinstance(bc, (str, Boundary)):
        bc = (bc, bc)
    if not isinstance(bc, Sequence) or len(bc) != 2:
        raise TypeError(f"bc must be a kind, a (y, x) pair or a {{'y': ..., 'x': ...}} mapping, got {bc!r}")
    out = []
    for item in bc:
        if isinstance(item, Boundary):
            out.append(item)
        elif isinstance(item, str):
            out.append(Boundary(item, 0.0 if item == "periodic" else float(value)))
        else:
            raise TypeError(f"each boundary must be one of {KINDS} or a Boundary, got {item!r}")
    return out[0], out[1]


def describe(bcs: Boundaries) -> str:
    """A netCDF-storable string: ``"periodic"`` or ``"y:dirichlet=0,x:periodic"``."""
    if bcs[0] == bcs[1]:
        return bcs[0].describe()
    return ",".join(f"{ax}:{b.describe()}" for ax, b in zip(AXES, bcs))


def check_grid(u: torch.Tensor, channels: int | None = None, who: str = "step") -> None:
    """Raise a clear error unless ``u`` is a floating (B, C, H, W) tensor with H, W >= 3."""
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor of shape (B, C, H, W), got {type(u).__name__}")
    if u.ndim != 4:
        raise ValueError(f"{who} expects a (B, C, H, W) tensor, got shape {tuple(u.shape)}")
    if not u.is_floating_point():
        raise TypeError(f"{who} expects a floating-point tensor (float32 or float64), got {u.dtype}")
    if u.shape[-2] < 3 or u.shape[-1] < 3:
        raise ValueError(f"{who} needs a grid of at least 3×3 points, got {u.shape[-2]}×{u.shape[-1]}")
    if channels is not None and u.shape[1] != channels:
        raise ValueError(f"{who} expects C = {channels} channels, got {u.shape[1]} (shape {tuple(u.shape)})")


@functools.lru_cache(maxsize=256)
def _neighbour_slices(dim: int, offset: int, n: int) -> tuple[tuple, tuple, tuple, tuple]:
    """Index tuples (out interior, u interior, out edge row, u wrap row) for a neighbour along ``dim``.

    Plain slicing, precomputed: about half the per-call cost of ``narrow`` at small grids.
    """
    def index(start: int, stop: int) -> tuple:
        return (Ellipsis, slice(start, stop)) if dim == -1 else (Ellipsis, slice(start, stop), slice(None))

    if offset == -1:  # neighbour below: out[1:] += u[:-1]; edge row 0 takes the low ghost (wrap: row n-1)
        return index(1, n), index(0, n - 1), index(0, 1), index(n - 1, n)
    return index(0, n - 1), index(1, n), index(n - 1, n), index(0, 1)


def _add_neighbour(out: torch.Tensor, u: torch.Tensor, c: float, dim: int, offset: int, bc: Boundary, h: float) -> None:
    """``out += c * u[i + offset]`` along ``dim`` (offset ±1), the edge row taking the ghost value."""
    o_in, u_in, o_edge, u_wrap = _neighbour_slices(dim, offset, u.shape[dim])
    out[o_in].add_(u[u_in], alpha=c)
    if bc.periodic:
        out[o_edge].add_(u[u_wrap], alpha=c)
        return
    a, b = bc.ghost(h)
    edge = out[o_edge]
    edge.add_(u[o_edge], alpha=c * a)
    if b != 0.0:
        edge.add_(c * b)


def stencil(
    u: torch.Tensor,
    centre: float,
    neighbours: Mapping[tuple[int, int], float],
    bcs: Boundaries,
    spacing: tuple[float, float],
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply a constant-coefficient stencil with the nearest neighbours along y and x.

    ``out = centre * u + sum_{(axis, offset)} c * u[shifted by offset along axis]`` with axis 0 = y,
    1 = x, offset ±1, ghost values from ``bcs``. E.g. the 5-point Laplacian is
    ``stencil(u, -2/dy²-2/dx², {(0,-1): 1/dy², (0,1): 1/dy², (1,-1): 1/dx², (1,1): 1/dx²}, ...)``.

    Args:
        u: (B, C, H, W) field.
        centre: the coefficient of ``u`` itself.
        neighbours: ``{(axis, offset): coefficient}``.
        bcs: (y, x) boundary conditions.
        spacing: (dy, dx), used by Neumann ghosts.
        out: optional (B, C, H, W) buffer (must not alias ``u``).

    Returns:
        (B, C, H, W)
    """
    out = torch.mul(u, centre, out=out) if out is not None else u * centre
    for (axis, offset), c in neighbours.items():
        if c != 0.0:
            _add_neighbour(out, u, float(c), axis - 2, offset, bcs[axis], spacing[axis])
    return out


def laplacian(u: torch.Tensor, bcs: Boundaries, spacing: tuple[float, float], *, out: torch.Tensor | None = None) -> torch.Tensor:
    """5-point Laplacian ``(u_N + u_S - 2u)/dy² + (u_E + u_W - 2u)/dx²`` of (B, C, H, W) -> (B, C, H, W)."""
    dy, dx = spacing
    cy, cx = 1.0 / dy**2, 1.0 / dx**2
    return stencil(u, -2.0 * (cy + cx), five_point(cy, cx), bcs, spacing, out=out)


def five_point(cy: float, cx: float) -> dict[tuple[int, int], float]:
    """Neighbour coefficients of a symmetric 5-point stencil: ``cy`` on y-neighbours, ``cx`` on x-neighbours."""
    return {(0, -1): cy, (0, 1): cy, (1, -1): cx, (1, 1): cx}


def _ghost_slab(u: torch.Tensor, dim: int, side: int, bc: Boundary, h: float) -> torch.Tensor:
    """The ghost row (side 0: low end, 1: high end) along ``dim`` of (B, C, H, W), width 1."""
    n = u.shape[dim]
    if bc.periodic:
        return u.narrow(dim, n - 1 if side == 0 else 0, 1)
    a, b = bc.ghost(h)
    edge = u.narrow(dim, 0 if side == 0 else n - 1, 1)
    return edge * a + b if b != 0.0 else edge * a


def pad(u: torch.Tensor, bcs: Boundaries, spacing: tuple[float, float], width: int = 1) -> torch.Tensor:
    """Add ``width`` ghost cells on every side: (B, C, H, W) -> (B, C, H+2·width, W+2·width).

    y first, then x, so corners are ghosts of ghosts (exact wrap when both axes are periodic). Bounded
    boundaries define one ghost cell; a wider pad is periodic only (ValueError otherwise).
    """
    if bcs[0].periodic and bcs[1].periodic:
        return torch.nn.functional.pad(u, (width,) * 4, mode="circular")
    if width != 1:
        raise ValueError(f"{width} ghost cells need periodic boundaries on both axes; got {describe(bcs)}")
    p = torch.cat([_ghost_slab(u, -2, 0, bcs[0], spacing[0]), u, _ghost_slab(u, -2, 1, bcs[0], spacing[0])], dim=-2)
    return torch.cat([_ghost_slab(p, -1, 0, bcs[1], spacing[1]), p, _ghost_slab(p, -1, 1, bcs[1], spacing[1])], dim=-1)


def shifted(p: torch.Tensor, dy: int, dx: int, width: int = 1) -> torch.Tensor:
    """View of ``p`` padded by ``width`` (B, C, H+2·width, W+2·width) holding ``u[i + dy, j + dx]`` at (i, j):
    (B, C, H, W); dy, dx in -width..width."""
    h, w = p.shape[-2] - 2 * width, p.shape[-1] - 2 * width
    return p[..., width + dy : width + dy + h, width + dx : width + dx + w]


def wavenumbers(n: int, length: float, *, real: bool = False, dtype=torch.float64, device=None) -> torch.Tensor:
    """Angular wavenumbers ``2π k / L`` of an n-point periodic axis in FFT order (rfft order if ``real``)."""
    d = length / n
    f = torch.fft.rfftfreq(n, d=d, dtype=dtype, device=device) if real else torch.fft.fftfreq(n, d=d, dtype=dtype, device=device)
    return 2.0 * math.pi * f
