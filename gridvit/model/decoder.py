"""The convolutional refinement of the decoder: patch outputs that see their neighbours (no patch seams).

A linear head decodes each patch from its own token alone, so predicted increments jump at patch borders.
With ``decoder="conv"`` the head instead emits F features per cell (pixel shuffle: (B, N, P·P·F) ->
(B, F, H, W)) and two 3×3 convolutions mix them across patch borders into the C output channels, padded as
the grid continues: wrapped along periodic axes, edge-repeated along bounded ones. ``decoder="conv_skip"``
also feeds the model's input (B, T*C+E, H, W) to the first convolution (a U-Net-style skip): the features
then see every input cell directly, not only through the patch tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_grid(x: torch.Tensor, periodic: tuple[bool, bool], n: int = 1) -> torch.Tensor:
    """Pad (B, C, H, W) by ``n`` cells (at most the axis length) on every side: wrap along periodic axes,
    repeat the edge otherwise."""
    for dim, wrap in ((-2, periodic[0]), (-1, periodic[1])):
        size = x.shape[dim]
        if wrap:
            lo, hi = x.narrow(dim, size - n, n), x.narrow(dim, 0, n)
        else:
            shape = list(x.shape)
            shape[dim] = n
            lo, hi = x.narrow(dim, 0, 1).expand(shape), x.narrow(dim, size - 1, 1).expand(shape)
        x = torch.cat([lo, x, hi], dim=dim)  # slices and one copy: half the time of an index_select, fwd + bwd
    return x  # (B, C, H+2n, W+2n)


class ConvRefine(nn.Module):
    """Two 3×3 convolutions with a GELU between: (B, F, H, W) -> (B, C, H, W); the last is zero-initialised
    by :meth:`GridViT.reset_parameters`, so an untrained model is still persistence. With ``skip`` > 0
    input channels, the first convolution sees them beside the features: (B, F + skip, H, W)."""

    def __init__(self, width: int, channels: int, skip: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width + skip, width, 3)
        self.conv2 = nn.Conv2d(width, channels, 3)

    def forward(self, x: torch.Tensor, periodic: tuple[bool, bool], skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = torch.cat([x, skip.to(x.dtype)], dim=1)  # (B, F + skip, H, W)
        x = F.gelu(self.conv1(pad_grid(x, periodic)))  # (B, F, H, W)
        return self.conv2(pad_grid(x, periodic))  # (B, C, H, W)


class ConvStem(nn.Module):
    """Two 3×3 convolutions with GELUs before the patch embedding: (B, F_in, H, W) -> (B, S, H, W), padded as
    the grid continues (the early convolutions of Xiao et al. 2021: cell-scale features for the tokens)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3)
        self.conv2 = nn.Conv2d(width, width, 3)

    def forward(self, x: torch.Tensor, periodic: tuple[bool, bool]) -> torch.Tensor:
        x = F.gelu(self.conv1(pad_grid(x, periodic)))  # (B, S, H, W)
        return F.gelu(self.conv2(pad_grid(x, periodic)))  # (B, S, H, W)
