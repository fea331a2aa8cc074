"""A per-cell linear base under the ViT: ``next = A_ℓ(x) + delta``, with ``A_ℓ`` least squares per grid cell.

The linear-regression forecast of WeatherBench/ClimateLearn, inside the model: for each lead ℓ and grid cell,
an affine map of the network's own input channels at that cell (the ``history`` normalised states, static and
calendar channels) fitted by least squares on the training windows before training
(:func:`fit_cell_linear`), then held fixed (a buffer, not trained; refitted on the training and validation
windows where validation keeps the base alone, see :class:`gridvit.config.TrainConfig`). The transformer
learns the residual: what a per-cell linear model cannot see (neighbours, advection, nonlinearity). Untrained
(zero head) the model is the linear regression; before the fit, persistence. The map has weights per cell, so
a model with it runs on its training grid only.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

RIDGE = 1e-3  # ridge term per sample, relative to unit-scale (normalised) features


class CellLinear(nn.Module):
    """Per-cell affine maps (one per lead) of F input channels to C outputs: (B, F, H, W) -> (B, C, H, W).

    Args:
        leads: number of leads L. in_channels: F. channels: C (the state channels; the last C inputs of the
            history are the last state). shape: the grid (H, W). history: T (to start as persistence).
    """

    def __init__(self, leads: int, in_channels: int, channels: int, shape: tuple[int, int], history: int) -> None:
        super().__init__()
        weight = torch.zeros(leads, channels, in_channels + 1, *shape)  # (L, C, F+1, H, W); the last: intercept
        last = (history - 1) * channels
        for c in range(channels):
            weight[:, c, last + c] = 1.0  # persistence until fitted
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor, lead_index: torch.Tensor) -> torch.Tensor:
        w = self.weight[lead_index].to(x.dtype)  # (B, C, F+1, H, W)
        return torch.einsum("bcfhw,bfhw->bchw", w[:, :, :-1], x) + w[:, :, -1]  # (B, C, H, W)


@torch.no_grad()
def fit_cell_linear(sur: Any, batches: Iterable, device: torch.device) -> None:
    """Least-squares fit of ``sur.model.cell_linear`` on ``batches`` of the training windows only: tuples of
    inputs (B, F, H, W), the first target (B, C, H, W), its valid mask and lead indices (B,). Cells with no valid sample keep
    persistence. A ridge of 1e-3 per sample keeps collinear channels (calendar phases) solvable.
    """
    lin = sur.model.cell_linear
    n_leads, c, f1 = lin.weight.shape[:3]
    h, w = lin.weight.shape[-2:]
    a = torch.zeros(n_leads, h, w, f1, f1, dtype=torch.float64, device=device)  # Σ x xᵀ per lead and cell
    b = torch.zeros(n_leads, c, h, w, f1, dtype=torch.float64, device=device)  # Σ y x
    n = torch.zeros(n_leads, c, h, w, dtype=torch.float64, device=device)
    for x, y, valid, idx in batches:
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1).double()  # (B, F+1, H, W)
        y, valid = y.double(), valid.double()  # (B, C, H, W)
        for j in idx.unique().tolist():
            sel = idx == j
            xs, ys, vs = x[sel], y[sel], valid[sel]
            ok = vs.amin(dim=1)  # (b, H, W) every channel valid: one design per cell
            a[j] += torch.einsum("bfhw,bghw,bhw->hwfg", xs, xs, ok)
            b[j] += torch.einsum("bchw,bfhw,bchw->chwf", ys, xs, vs)
            n[j] += vs.sum(dim=0)
    count = a[..., -1, -1]  # (L, H, W) samples per cell (the intercept's Σ 1)
    eye = torch.eye(f1, dtype=torch.float64, device=device)
    sol = torch.linalg.solve((a + RIDGE * count.clamp_min(1)[..., None, None] * eye)[:, None],
                             b[..., None])[..., 0]  # (L, C, H, W, F+1)
    fitted = (n > 0) & (count[:, None] > f1)  # (L, C, H, W)
    new = torch.where(fitted[..., None], sol, lin.weight.permute(0, 1, 3, 4, 2).double())
    lin.weight.copy_(new.permute(0, 1, 4, 2, 3).to(lin.weight.dtype))  # (L, C, F+1, H, W)
