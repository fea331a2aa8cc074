"""Patchify / unpatchify for any H×W grid: pad to a multiple of the patch side, cut, and back.

Padding goes at the end of each spatial axis (bottom rows, right columns): wrap padding along periodic
axes (the grid continues), edge padding (repeat the last row/column) along bounded ones. Unpatchify
crops the padding away, so ``unpatchify(patchify(x)) == x`` exactly.

Token layout: patches are numbered row-major over the (nh, nw) patch grid; each token holds its P·P·C
values in (p, q, c) order, i.e. ``b c (nh p) (nw q) -> b (nh nw) (p q c)``.
"""

from __future__ import annotations

import numpy as np
import torch


def patch_grid_shape(shape: tuple[int, int], patch: int) -> tuple[int, int]:
    """Number of patches (nh, nw) covering an (H, W) grid with patch side P (ceil division)."""
    h, w = shape
    return (-(-h // patch), -(-w // patch))


def check_patch(shape: tuple[int, int], patch: int) -> None:
    """Raise ValueError unless ``patch`` is a positive int no larger than the grid."""
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)):
        raise TypeError(f"patch must be an int, got {type(patch).__name__}")
    if patch < 1:
        raise ValueError(f"patch must be >= 1, got {patch}")
    h, w = shape
    if patch > min(h, w):
        raise ValueError(
            f"patch {patch} is larger than the grid {h}×{w}: the grid must hold at least one patch "
            f"(use patch <= {min(h, w)})"
        )


def source_index(n: int, patch: int, periodic: bool) -> np.ndarray:
    """Index into an axis of length n for each position of the padded axis (wrap or edge)."""
    padded = patch_grid_shape((n, n), patch)[0] * patch
    idx = np.arange(padded)
    return idx % n if periodic else np.minimum(idx, n - 1)


def pad(x: torch.Tensor, patch: int, periodic: tuple[bool, bool] = (False, False)) -> torch.Tensor:
    """Pad (B, C, H, W) at the end of H and W to multiples of P: wrap if periodic, else edge."""
    h, w = x.shape[-2:]
    iy = torch.as_tensor(source_index(h, patch, periodic[0]), device=x.device)
    ix = torch.as_tensor(source_index(w, patch, periodic[1]), device=x.device)
    if iy.numel() != h:
        x = x.index_select(-2, iy)
    if ix.numel() != w:
        x = x.index_select(-1, ix)
    return x  # (B, C, nh*P, nw*P)


def patchify(x: torch.Tensor, patch: int, periodic: tuple[bool, bool] = (False, False)) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C) tokens, padding H and W up to multiples of P."""
    b, c, h, w = x.shape
    nh, nw = patch_grid_shape((h, w), patch)
    x = pad(x, patch, periodic)  # (B, C, nh*P, nw*P)
    x = x.reshape(b, c, nh, patch, nw, patch)  # (B, C, nh, P, nw, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, nh, nw, P, P, C)
    return x.reshape(b, nh * nw, patch * patch * c)  # (B, N, P*P*C)


def unpatchify(tokens: torch.Tensor, patch: int, shape: tuple[int, int]) -> torch.Tensor:
    """(B, N, P*P*C) tokens -> (B, C, H, W), cropping the padding added by :func:`patchify`."""
    b, n, d = tokens.shape
    h, w = shape
    nh, nw = patch_grid_shape(shape, patch)
    if n != nh * nw or d % (patch * patch):
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not tile a {h}×{w} grid with patch {patch} "
            f"(expected N = {nh * nw} and a last dim divisible by {patch * patch})"
        )
    c = d // (patch * patch)
    x = tokens.reshape(b, nh, nw, patch, patch, c)  # (B, nh, nw, P, P, C)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, nh, P, nw, P)
    x = x.reshape(b, c, nh * patch, nw * patch)  # (B, C, nh*P, nw*P)
    return x[..., :h, :w]  # (B, C, H, W)
