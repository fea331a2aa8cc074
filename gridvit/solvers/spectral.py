"""Diagonalising the 5-point Laplacian, for implicit (Crank–Nicolson, IMEX) and spectral steps.

On a doubly periodic grid the discrete Laplacian is diagonal in Fourier space (``rfft2``), with
eigenvalues ``-(4/dy²) sin²(k_y dy/2) - (4/dx²) sin²(k_x dx/2)``. With a bounded axis it is still
separable, ``L u = L_y u + u L_xᵀ + S`` (``S`` the constant part of the ghost cells), and each 1-D
operator is a small symmetric matrix diagonalised once by ``eigh``: the transform is then two dense
matmuls, O(HW(H+W)) per step — fine up to ~512², the cost to beat with DCT/DST transforms beyond.
"""

from __future__ import annotations

import torch

from gridvit.solvers.grid_ops import Boundaries, Boundary, wavenumbers


def operator_1d(n: int, h: float, bc: Boundary) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D second-difference matrix (n, n) with its boundary ghosts, and the source vector (n,)."""
    m = (torch.diag(torch.full((n,), -2.0, dtype=torch.float64))
         + torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)
         + torch.diag(torch.ones(n - 1, dtype=torch.float64), -1))
    s = torch.zeros(n, dtype=torch.float64)
    if bc.periodic:
        m[0, -1] += 1.0
        m[-1, 0] += 1.0
    else:
        a, b = bc.ghost(h)
        m[0, 0] += a
        m[-1, -1] += a
        s[0] = s[-1] = b
    return m / h**2, s / h**2


class LaplaceEigen:
    """The 5-point Laplacian of an (H, W) grid in its eigenbasis.

    ``forward`` maps (B, C, H, W) to coefficients, ``inverse`` maps back (in ``dtype``);
    ``eigenvalues`` and ``source`` (the transformed boundary source, or None) are float64 and
    broadcast against the coefficients: build multipliers from them, then cast.
    """

    def __init__(self, shape: tuple[int, int], spacing: tuple[float, float], bcs: Boundaries, *, dtype, device) -> None:
        (h, w), (dy, dx) = shape, spacing
        self.shape, self.dtype = (h, w), dtype
        self.periodic = bcs[0].periodic and bcs[1].periodic
        if self.periodic:
            ky = wavenumbers(h, h * dy, device=device)[:, None]
            kx = wavenumbers(w, w * dx, real=True, device=device)[None, :]
            lam = -(4.0 / dy**2) * torch.sin(ky * dy / 2) ** 2 - (4.0 / dx**2) * torch.sin(kx * dx / 2) ** 2
            self.eigenvalues = lam  # (H, W//2+1)
            self.source = None
            return
        my, sy = operator_1d(h, dy, bcs[0])
        mx, sx = operator_1d(w, dx, bcs[1])
        ly, qy = torch.linalg.eigh(my)
        lx, qx = torch.linalg.eigh(mx)
        self.qy, self.qx = qy.to(device=device, dtype=dtype), qx.to(device=device, dtype=dtype)
        self.eigenvalues = (ly[:, None] + lx[None, :]).to(device=device)  # (H, W)
        src = sy[:, None] + sx[None, :]
        self.source = (qy.T @ src @ qx).to(device=device) if src.abs().max() > 0 else None

    def multiplier(self, m: torch.Tensor) -> torch.Tensor:
        """A float64 multiplier of the coefficients, cast to their dtype (complex if periodic)."""
        return fourier_multiplier(m, self.dtype) if self.periodic else m.to(self.dtype)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> coefficients (B, C, H, W//2+1) complex if periodic, else (B, C, H, W)."""
        if self.periodic:
            return rfft2(u)
        return self.qy.T @ u @ self.qx

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """Coefficients -> (B, C, H, W)."""
        if self.periodic:
            return irfft2(c, self.shape)
        return self.qy @ c @ self.qx.T


def continuous_k2(shape: tuple[int, int], spacing: tuple[float, float], *, dtype, device) -> torch.Tensor:
    """``k_y² + k_x²`` (H, W//2+1) of the exact Laplacian on a periodic grid, in rfft2 layout."""
    (h, w), (dy, dx) = shape, spacing
    ky = wavenumbers(h, h * dy, device=device)[:, None]
    kx = wavenumbers(w, w * dx, real=True, device=device)[None, :]
    return (ky**2 + kx**2).to(dtype)


def fourier_multiplier(m: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast a real multiplier of ``rfft2`` coefficients to the complex dtype of ``dtype``.

    Multiplying complex coefficients in place by a complex tensor was ~10× faster here than by a
    real one (which torch promotes on every call).
    """
    return m.to(dtype.to_complex())


# On CPU, batched 2-D FFTs of large grids were up to 2× slower here (one thread) than the same
# transforms one image at a time; small grids are faster batched. Loop from this many points (CPU only:
# cuFFT batches well).
LOOP_FROM = 256 * 256


def _loop(x: torch.Tensor, h: int, w: int) -> bool:
    return x.device.type == "cpu" and h * w >= LOOP_FROM and x.numel() > x.shape[-2] * x.shape[-1]


def rfft2(u: torch.Tensor) -> torch.Tensor:
    """``torch.fft.rfft2`` over the last two dims of (..., H, W) -> (..., H, W//2+1)."""
    h, w = u.shape[-2:]
    if not _loop(u, h, w):
        return torch.fft.rfft2(u)
    flat = u.reshape(-1, h, w)
    out = torch.empty(flat.shape[0], h, w // 2 + 1, dtype=u.dtype.to_complex(), device=u.device)
    for i in range(flat.shape[0]):
        torch.fft.rfft2(flat[i], out=out[i])
    return out.view(*u.shape[:-2], h, w // 2 + 1)


def irfft2(c: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``torch.fft.irfft2`` of (..., H, W//2+1) coefficients -> real (..., H, W)."""
    h, w = shape
    if not _loop(c, h, w):
        return torch.fft.irfft2(c, s=shape)
    flat = c.reshape(-1, *c.shape[-2:])
    out = torch.empty(flat.shape[0], h, w, dtype=c.real.dtype, device=c.device)
    for i in range(flat.shape[0]):
        torch.fft.irfft2(flat[i], s=shape, out=out[i])
    return out.view(*c.shape[:-2], h, w)
