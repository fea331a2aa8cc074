"""Initial conditions on the cell-centred grid ``y_i = (i + 1/2) dy``, ``x_j = (j + 1/2) dx``.

All return float64 (S, C, H, W) tensors on the CPU (move them with ``.to``); random ones draw from a
``torch.Generator`` seeded with ``seed``, so a seed gives the same field on every machine.
"""

from __future__ import annotations

import math

import torch

from gridvit.solvers.grid_ops import wavenumbers


def cell_centres(n: int, length: float) -> torch.Tensor:
    """Cell-centred coordinates (n,) of an axis of physical length ``length``."""
    return (torch.arange(n, dtype=torch.float64) + 0.5) * (length / n)


def mesh(shape: tuple[int, int], extent: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, x) coordinate arrays, each (H, W)."""
    y = cell_centres(shape[0], extent[0])
    x = cell_centres(shape[1], extent[1])
    return torch.meshgrid(y, x, indexing="ij")


def gaussian_random_field(
    shape: tuple[int, int],
    extent: tuple[float, float],
    *,
    samples: int = 1,
    channels: int = 1,
    alpha: float = 2.5,
    tau: float = 3.0,
    k_max: float | None = 8.0,
    seed: int = 0,
) -> torch.Tensor:
    """A periodic, band-limited Gaussian random field, zero mean and unit variance per sample/channel.

    The power spectrum is ``P(k) ∝ (|k|² + τ²)^(-α)`` with ``|k|`` in cycles per domain length
    (``k = L k_phys / 2π``), cut to ``|k| <= k_max`` (``None``: no cut); larger α gives smoother fields
    (FNO's Navier–Stokes data uses α = 2.5, τ = 7 on the vorticity).

    Returns:
        (S, C, H, W) float64.
    """
    h, w = shape
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(samples, channels, h, w, generator=g, dtype=torch.float64)
    ky = wavenumbers(h, 2 * math.pi)[:, None]  # cycles per domain, as the domain is [0, 2π)
    kx = wavenumbers(w, 2 * math.pi, real=True)[None, :]
    k2 = ky**2 + kx**2  # (H, W//2+1)
    amp = (k2 + tau**2) ** (-alpha / 2)
    amp[0, 0] = 0.0
    if k_max is not None:
        amp[k2 > k_max**2] = 0.0
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * amp, s=(h, w))  # (S, C, H, W)
    field = field - field.mean(dim=(-2, -1), keepdim=True)
    return field / field.std(dim=(-2, -1), keepdim=True).clamp_min(1e-300)


def gaussian_bump(
    shape: tuple[int, int],
    extent: tuple[float, float],
    *,
    centre: tuple[float, float] | None = None,
    width: float | None = None,
    amplitude: float = 1.0,
) -> torch.Tensor:
    """``A exp(-|r - r0|² / (2 w²))`` (1, 1, H, W), by default centred with ``w = min(extent) / 10``."""
    y, x = mesh(shape, extent)
    cy, cx = centre if centre is not None else (extent[0] / 2, extent[1] / 2)
    w = width if width is not None else min(extent) / 10
    return (amplitude * torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * w**2)))[None, None]


def sine_mode(shape: tuple[int, int], extent: tuple[float, float], *, ky: int = 1, kx: int = 1, amplitude: float = 1.0) -> torch.Tensor:
    """``A sin(2π k_y y / L_y) sin(2π k_x x / L_x)`` (1, 1, H, W): an eigenmode of the periodic Laplacian."""
    y, x = mesh(shape, extent)
    field = torch.sin(2 * math.pi * ky * y / extent[0]) * torch.sin(2 * math.pi * kx * x / extent[1])
    return (amplitude * field)[None, None]


def taylor_green(
    shape: tuple[int, int], extent: tuple[float, float], *, k: int = 1, amplitude: float = 1.0, field: str = "vorticity"
) -> torch.Tensor:
    """The Taylor–Green vortex with ``k`` cells per period along each axis.

    Vorticity ``ω = A cos(k_x x) cos(k_y y)`` (k_x = 2π k / L_x), streamfunction ``ψ = ω / (k_x² + k_y²)``,
    velocity ``(u, v) = (ψ_y, -ψ_x)``. Under Navier–Stokes it only decays, as ``exp(-ν (k_x² + k_y²) t)``.

    Returns:
        (1, 1, H, W) vorticity, or (1, 2, H, W) velocity if ``field="velocity"``.
    """
    if field not in ("vorticity", "velocity"):
        raise ValueError(f"field must be 'vorticity' or 'velocity', got {field!r}")
    y, x = mesh(shape, extent)
    kx, ky = 2 * math.pi * k / extent[1], 2 * math.pi * k / extent[0]
    if field == "vorticity":
        return (amplitude * torch.cos(kx * x) * torch.cos(ky * y))[None, None]
    scale = amplitude / (kx**2 + ky**2)
    u = -scale * ky * torch.cos(kx * x) * torch.sin(ky * y)
    v = scale * kx * torch.sin(kx * x) * torch.cos(ky * y)
    return torch.stack([u, v])[None]


def gray_scott_spots(
    shape: tuple[int, int], *, samples: int = 1, spots: int = 5, size: float = 0.1, noise: float = 0.01, seed: int = 0
) -> torch.Tensor:
    """The classic Gray–Scott start: ``u = 1, v = 0`` with seeded square spots of ``u = 1/2, v = 1/4``.

    ``size`` is the spot side as a fraction of the grid; ``noise`` adds seeded uniform noise.

    Returns:
        (S, 2, H, W) float64.
    """
    h, w = shape
    g = torch.Generator().manual_seed(int(seed))
    out = torch.zeros(samples, 2, h, w, dtype=torch.float64)
    out[:, 0] = 1.0
    sy, sx = max(1, round(size * h)), max(1, round(size * w))
    for s in range(samples):
        ys = torch.randint(0, max(1, h - sy), (spots,), generator=g).tolist()
        xs = torch.randint(0, max(1, w - sx), (spots,), generator=g).tolist()
        for y0, x0 in zip(ys, xs):
            out[s, 0, y0 : y0 + sy, x0 : x0 + sx] = 0.5
            out[s, 1, y0 : y0 + sy, x0 : x0 + sx] = 0.25
    out += noise * (torch.rand(out.shape, generator=g, dtype=torch.float64) - 0.5)
    return out.clamp_(0.0, 1.0)
