"""GridViT: shapes and errors at the boundary, distance bias, equivariance, fused/manual agreement,
grid independence, masked cells. Tiny models (dim 32, depth 2), seeded, CPU."""

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gridvit.geometry import Grid, length_scale, patch_distances
from gridvit.model import Attention, GridViT, ModelConfig, alibi_slopes
from gridvit.model.attention import _flex_attention


def sphere(nlat: int, nlon: int) -> Grid:
    dlat = 180.0 / nlat
    lat = np.linspace(90 - dlat / 2, -90 + dlat / 2, nlat)  # descending, as in ERA5/ERSST files
    return Grid("sphere", lat, np.arange(nlon) * 360.0 / nlon, periodic_x=True)


def plane(h: int, w: int, periodic: bool = True) -> Grid:
    return Grid("plane", np.arange(float(h)), np.arange(float(w)), periodic_y=periodic, periodic_x=periodic)


def tiny(**kw) -> GridViT:
    """A seeded tiny model whose head is randomised (a zero head would make every test trivially pass)."""
    opts = dict(history=2, channels=3, extra_channels=1, patch=4, dim=32, depth=2, heads=4)
    opts.update(kw)
    torch.manual_seed(0)
    model = GridViT(ModelConfig(**opts))
    torch.nn.init.normal_(model.head.weight, std=0.2)
    return model.eval()


def inputs(model: GridViT, shape: tuple[int, int], batch: int = 2, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.cfg.in_channels, *shape, generator=gen)


# --- config and boundary ---------------------------------------------------------------------------------


def test_config_is_json_able_and_round_trips():
    cfg = ModelConfig(history=2, channels=3, abs_pos_embed=True, pos_grid=(8, 16))
    back = ModelConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and back.pos_grid == (8, 16)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(dim=30, heads=4), "divisible by heads"),
        (dict(bias="rope"), "bias must be one of"),
        (dict(patch=0), "patch must be a positive int"),
        (dict(abs_pos_embed=True), "needs pos_grid"),
        (dict(slope_min=2.0, slope_max=1.0), "slope_min <= slope_max"),
        (dict(attention="xformers"), "attention must be one of"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kw)


def test_untrained_model_is_persistence_and_keeps_the_channel_layout():
    torch.manual_seed(0)
    model = GridViT(ModelConfig(history=3, channels=2, extra_channels=1, dim=32, depth=2))
    x = torch.randn(2, 7, 16, 32)
    y = model(x, sphere(16, 32))
    assert y.shape == (2, 2, 16, 32)
    torch.testing.assert_close(y, x[:, 4:6], rtol=0, atol=0)  # last state: t2 c0..c1, before the extra


@pytest.mark.parametrize(
    "x_shape, grid, match",
    [
        ((2, 6, 16, 32), sphere(16, 32), "x has 6 channels but the model expects .* = 7"),
        ((2, 7, 16, 32), sphere(16, 36), r"grid shape \(16, 36\) does not match x's spatial shape \(16, 32\)"),
        ((2, 7, 3, 32), plane(3, 32), "grid too small .* larger than the grid 3×32"),
        ((7, 16, 32), sphere(16, 32), r"x must be a \(B, T\*C\+E, H, W\) tensor"),
    ],
)
def test_bad_shapes_raise_clear_value_errors(x_shape, grid, match):
    model = tiny()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(x_shape), grid)


def test_bad_grid_type_raises_type_error():
    with pytest.raises(TypeError, match="gridvit.geometry.Grid"):
        tiny()(torch.zeros(1, 7, 16, 32), (16, 32))


def test_deterministic_with_a_seed():
    grid = sphere(16, 32)
    a, b = tiny(), tiny()
    x = inputs(a, grid.shape)
    torch.testing.assert_close(a(x, grid), b(x, grid), rtol=0, atol=0)


# --- the bias --------------------------------------------------------------------------------------------


def test_bias_is_minus_slope_times_scaled_distance_symmetric_and_cached():
    model = tiny()
    grid = sphere(16, 32)
    biases = model.distance_bias(grid, 4, device=torch.device("cpu"), dtype=torch.float32)
    assert len(biases) == 2 and biases[0] is biases[1]  # ALiBi: one tensor shared by the layers
    bias = biases[0]
    n = 4 * 8
    assert bias.shape == (1, 4, n, n)
    d = np.array(patch_distances(grid, 4))
    expected = -alibi_slopes(4)[:, None, None] * torch.as_tensor(d / length_scale(d))
    torch.testing.assert_close(bias[0].double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(bias, bias.transpose(-1, -2), rtol=0, atol=0)
    assert model.distance_bias(grid, 4, device=torch.device("cpu"), dtype=torch.float32)[0] is bias


def test_alibi_slopes_are_geometric_from_local_to_global():
    s = alibi_slopes(4, slope_max=1.0, slope_min=1 / 64)
    torch.testing.assert_close(s, torch.tensor([1.0, 1 / 4, 1 / 16, 1 / 64], dtype=torch.float64))
    assert alibi_slopes(1).tolist() == [1.0]


def test_bias_not_in_state_dict_so_weights_load_on_another_grid():
    model = tiny()
    model(inputs(model, (32, 64)), sphere(32, 64))  # fills the cache
    state = model.state_dict()
    assert not any("distance_bias" in k for k in state)
    other = GridViT(model.cfg)
    other.load_state_dict(state)
    x = inputs(model, (48, 96))
    torch.testing.assert_close(other(x, sphere(48, 96)), model(x, sphere(48, 96)), rtol=0, atol=0)


def test_learnable_slopes_are_positive_and_trained():
    model = tiny(bias="learnable")
    with torch.no_grad():
        model.distance_bias.raw_slopes.fill_(-30.0)
    assert (model.distance_bias.slopes() > 0).all()
    assert model.distance_bias.slopes().shape == (2, 4)  # per layer, per head
    model = tiny(bias="learnable").train()
    grid = sphere(16, 32)
    model(inputs(model, grid.shape), grid).square().mean().backward()
    grad = model.distance_bias.raw_slopes.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


# --- equivariance ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [(1, 0), (0, 3), (2, 5)])
def test_periodic_plane_roll_by_whole_patches_rolls_the_output(shift):
    model, grid = tiny(), plane(32, 48)
    x = inputs(model, grid.shape)
    s = (4 * shift[0], 4 * shift[1])
    rolled = model(torch.roll(x, s, dims=(-2, -1)), grid)
    torch.testing.assert_close(rolled, torch.roll(model(x, grid), s, dims=(-2, -1)), rtol=1e-5, atol=1e-5)


def test_sphere_roll_longitude_by_whole_patches_rolls_the_output():
    model, grid = tiny(), sphere(32, 64)
    x = inputs(model, grid.shape)
    for k in (1, 5, 15):
        rolled = model(torch.roll(x, 4 * k, dims=-1), grid)
        torch.testing.assert_close(rolled, torch.roll(model(x, grid), 4 * k, dims=-1), rtol=1e-5, atol=1e-5)


def test_absolute_position_embedding_breaks_equivariance():
    model, grid = tiny(abs_pos_embed=True, pos_grid=(8, 12)), plane(32, 48)
    x = inputs(model, grid.shape)
    rolled = model(torch.roll(x, (4, 8), dims=(-2, -1)), grid)
    gap = (rolled - torch.roll(model(x, grid), (4, 8), dims=(-2, -1))).abs().max()
    assert gap > 1e-3


def test_bias_breaks_symmetry_under_non_periodic_roll():
    """Sanity check of the equivariance tests: on a bounded plane a roll is not a symmetry."""
    model, grid = tiny(), plane(32, 48, periodic=False)
    x = inputs(model, grid.shape)
    gap = (model(torch.roll(x, 8, dims=-1), grid) - torch.roll(model(x, grid), 8, dims=-1)).abs().max()
    assert gap > 1e-3


# --- attention paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", ["alibi", "learnable", "none"])
def test_fused_and_manual_paths_agree(bias):
    model, grid = tiny(bias=bias), sphere(32, 64)
    x = inputs(model, grid.shape)
    fused = model(x, grid)
    manual, attn = model(x, grid, return_attention=True)
    torch.testing.assert_close(manual, fused, rtol=1e-5, atol=1e-5)
    assert len(attn) == 2 and attn[0].shape == (2, 4, 128, 128)
    torch.testing.assert_close(attn[0].sum(-1), torch.ones(2, 4, 128), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-8), (torch.float32, 1e-4)])
def test_learnable_slopes_fused_gradients_match_the_manual_path(dtype, tol):
    """The fused CPU path gets the slopes' gradient analytically; autograd through explicit attention agrees."""
    grid = sphere(16, 32)
    grads = []
    for manual in (False, True):
        model = tiny(bias="learnable").to(dtype).train()
        x = inputs(model, grid.shape).to(dtype)
        y = model(x, grid, return_attention=manual)
        y = y[0] if manual else y
        y.square().mean().backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    assert grads[0]["distance_bias.raw_slopes"].abs().min() > 0
    for name, g in grads[0].items():
        torch.testing.assert_close(g, grads[1][name], rtol=tol, atol=tol * g.abs().max().item(), msg=name)


def test_attention_module_paths_agree_including_flex_score_mod():
    torch.manual_seed(0)
    att = Attention(32, 4)
    q, k, v = torch.randn(3, 2, 4, 64, 8).unbind(0)
    d = torch.tensor(patch_distances(plane(32, 32), 4), dtype=torch.float32)
    bias = (-alibi_slopes(4).float()[:, None, None] * d / 4.0)[None]  # (1, h, N, N)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    manual, _ = att.manual(q, k, v, bias)
    torch.testing.assert_close(manual, fused, rtol=1e-5, atol=1e-6)
    pytest.importorskip("torch.nn.attention.flex_attention")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager FlexAttention on CPU warns that it is unfused
        flex = _flex_attention(q, k, v, bias, compile=False)  # the score_mod, eager, forward only
    torch.testing.assert_close(flex, fused, rtol=1e-5, atol=1e-6)


def test_local_head_attends_near_and_global_head_far():
    model, grid = tiny(), sphere(32, 64)
    with torch.no_grad():  # no content: the attention is the bias alone, softmax(-m_h d / L)
        for block in model.blocks:
            block.attn.qkv.weight.zero_()
    _, attn = model(inputs(model, grid.shape), grid, return_attention=True)
    d = np.array(patch_distances(grid, 4))
    scaled = torch.as_tensor(d / length_scale(d), dtype=torch.float32)
    reach = (attn[0][0] * scaled).sum(-1).mean(-1)  # mean attention distance per head, in units of L
    assert reach[0] < 3.0 and reach[-1] > 3 * reach[0]
    assert (reach.diff() > 0).all()  # heads ordered from local to global


# --- grids and masks -------------------------------------------------------------------------------------


def test_model_built_on_32x64_runs_unchanged_on_48x96_and_33x49():
    model = tiny()
    model(inputs(model, (32, 64)), sphere(32, 64))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    regional = Grid("sphere", np.linspace(58, 50, 33), np.linspace(-10, 2, 49))  # ERA5 UK layout
    for grid in (sphere(48, 96), regional, plane(33, 49)):
        y = model(inputs(model, grid.shape), grid)
        assert y.shape == (2, 3, *grid.shape) and torch.isfinite(y).all()
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


def test_abs_pos_embed_is_interpolated_to_other_grids():
    model = tiny(abs_pos_embed=True, pos_grid=(8, 16))
    y = model(inputs(model, (48, 96)), sphere(48, 96))
    assert y.shape == (2, 3, 48, 96)


def test_masked_cells_never_feed_nan_into_the_network():
    """An ERSST-like input: 89 × 180 global grid, land (~31 % of cells) NaN in every channel."""
    model = tiny().train()
    grid = Grid("sphere", np.arange(88.0, -89.0, -2.0), np.arange(0.0, 360.0, 2.0), periodic_x=True)
    lat, lon = np.meshgrid(grid.y, grid.x, indexing="ij")
    land = (np.sin(np.deg2rad(2 * lon)) * np.cos(np.deg2rad(3 * lat)) > 0.42) | (lat < -70)
    assert 0.25 < land.mean() < 0.37
    x = inputs(model, grid.shape)
    x[:, :, torch.as_tensor(land)] = float("nan")
    x[0, 0, 0, 0] = float("inf")
    x.requires_grad_(True)
    y = model(x, grid)
    assert torch.isfinite(y).all()
    ocean = torch.as_tensor(~land)
    y[:, :, ocean].square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_bf16_autocast_runs_and_caches_a_bf16_bias():
    model, grid = tiny(), sphere(32, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(inputs(model, grid.shape), grid)
    assert torch.isfinite(y).all()
    assert any(key[-1] == torch.bfloat16 for key in model.distance_bias._cache)


def test_learnable_slopes_train_under_bf16_autocast():
    model, grid = tiny(bias="learnable").train(), sphere(16, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(inputs(model, grid.shape), grid)
    y.float().square().mean().backward()
    grad = model.distance_bias.raw_slopes.grad
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all() and grad.abs().sum() > 0
