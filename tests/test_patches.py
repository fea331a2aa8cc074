"""Patchify/unpatchify: exact inverses on awkward grids, padding rules, token layout, errors."""

import pytest
import torch

from gridvit.patches import check_patch, pad, patch_grid_shape, patchify, unpatchify

PERIODIC = [(False, False), (False, True), (True, True), (True, False)]


@pytest.mark.parametrize("shape", [(33, 49), (89, 180), (32, 64)])
@pytest.mark.parametrize("periodic", PERIODIC)
def test_unpatchify_inverts_patchify(shape, periodic):
    x = torch.randn(2, 3, *shape, generator=torch.Generator().manual_seed(0))
    tokens = patchify(x, 4, periodic)
    nh, nw = patch_grid_shape(shape, 4)
    assert tokens.shape == (2, nh * nw, 4 * 4 * 3)
    assert torch.equal(unpatchify(tokens, 4, shape), x)


def test_patch_grid_shape_is_ceil_division():
    assert patch_grid_shape((33, 49), 4) == (9, 13)
    assert patch_grid_shape((89, 180), 4) == (23, 45)
    assert patch_grid_shape((32, 64), 4) == (8, 16)


def test_token_layout_is_p_q_c():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(1, 2, 8, 8)
    tokens = patchify(x, 4)  # (1, 4, 32)
    first = x[0, :, :4, :4].permute(1, 2, 0).reshape(-1)  # (p, q, c)
    assert torch.equal(tokens[0, 0], first)
    second = x[0, :, :4, 4:8].permute(1, 2, 0).reshape(-1)  # row-major: next patch along x
    assert torch.equal(tokens[0, 1], second)


def test_padding_wraps_on_periodic_axes_and_repeats_edges_on_bounded_ones():
    x = torch.arange(5.0).reshape(1, 1, 1, 5).expand(1, 1, 5, 5) + 10 * torch.arange(5.0).reshape(1, 1, 5, 1)
    padded = pad(x, 4, (False, True))  # (1, 1, 8, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded[0, 0, 0, 5:], x[0, 0, 0, :3])  # x wraps round
    assert torch.equal(padded[0, 0, 5:, 0], x[0, 0, 4, 0].repeat(3))  # y repeats its last row


def test_check_patch_errors():
    with pytest.raises(ValueError, match="larger than the grid"):
        check_patch((3, 10), 4)
    with pytest.raises(ValueError, match=">= 1"):
        check_patch((8, 8), 0)
    with pytest.raises(TypeError, match="int"):
        check_patch((8, 8), 2.0)


def test_unpatchify_rejects_tokens_that_do_not_tile_the_grid():
    with pytest.raises(ValueError, match="do not tile"):
        unpatchify(torch.zeros(1, 7, 16), 4, (8, 8))
