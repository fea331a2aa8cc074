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
        self.shape = (h, w)
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

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> coefficients (B, C, H, W//2+1) complex if periodic, else (B, C, H, W)."""
        if self.periodic:
            return torch.fft.rfft2(u)
        return self.qy.T @ u @ self.qx

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """Coefficients -> (B, C, H, W)."""
        if self.periodic:
            return torch.fft.irfft2(c, s=self.shape)
        return self.qy @ c @ self.qx.T


def continuous_k2(shape: tuple[int, int], spacing: tuple[float, float], *, dtype, device) -> torch.Tensor:
    """``k_y² + k_x²`` (H, W//2+1) of the exact Laplacian on a periodic grid, in rfft2 layout."""
    (h, w), (dy, dx) = shape, spacing
    ky = wavenumbers(h, h * dy, device=device)[:, None]
    kx = wavenumbers(w, w * dx, real=True, device=device)[None, :]
    return (ky**2 + kx**2).to(dtype)

