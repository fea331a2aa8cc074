"""The bias computed from token coordinates (FlexAttention path): same numbers as the dense bias, block mask,
learnable slopes' gradient, no (N, N) tensor, attention="auto"/"flex" configs that load and predict on CPU.

FlexAttention has no CPU backward, so these run its eager (unfused) implementation on CPU: forward as shipped,
backward with torch's CPU guard lifted (``flex_cpu`` fixture). The compiled CUDA kernels run in
``benchmarks/attention_bias.py --device cuda``.
"""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gridvit
from gridvit.config import TrainConfig
from gridvit.examples import toy_climate
from gridvit.geometry import Grid, patch_coordinates
from gridvit.model import GridViT, ModelConfig, attention
from gridvit.model import bias as bias_mod
from gridvit.model.attention import _flex_token_distance, uses_flex
from gridvit.model.bias import DistanceBias, TokenDistance, sparse_threshold, token_distance

fa = pytest.importorskip("torch.nn.attention.flex_attention")
CPU = torch.device("cpu")


@pytest.fixture
def flex_cpu(monkeypatch):
    """Route GridViT to the Flex path on CPU (eager) and allow its backward there."""
    monkeypatch.setattr(attention, "flex_available", lambda device: True)
    monkeypatch.setattr(fa, "_validate_device", lambda *args: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager FlexAttention warns that it is unfused
        yield


def sphere(nlat: int, nlon: int, lon0: float = 0.0) -> Grid:
    dlat = 180.0 / nlat
    lat = np.linspace(90 - dlat / 2, -90 + dlat / 2, nlat)  # reaches within dlat/2 of both poles
    return Grid("sphere", lat, lon0 + np.arange(nlon) * 360.0 / nlon, periodic_x=True)


GRIDS = {
    "sphere": (sphere(24, 48, lon0=-180.0), 4),  # patches straddle the ±180° seam, rows touch the poles
    "sphere-fine": (sphere(36, 72), 2),  # 648 tokens: near (5°) and antipodal pairs
    "regional-dateline": (Grid("sphere", np.linspace(-30, 30, 20), np.linspace(160, 200, 24) % 360), 4),
    "periodic-plane": (Grid("plane", np.arange(30.0), np.arange(44.0), periodic_y=True, periodic_x=True), 4),
    "plane": (Grid("plane", np.arange(30.0), np.arange(41.0)), 3),
}


def coordinate_bias(td: TokenDistance) -> torch.Tensor:
    """The (h, N, N) bias the score_mod adds, evaluated for every pair (test-only)."""
    i, j = torch.arange(td.tokens)[:, None], torch.arange(td.tokens)[None, :]
    wrap = None if td.periods is None else tuple(td.periods)
    r = token_distance(tuple(c[i] for c in td.coords), tuple(c[j] for c in td.coords), td.kind, wrap)  # (N, N)
    return -(td.weights[:, None, None] * r[None])


def test_sphere_token_distance_is_the_central_angle_from_0_to_pi():
    # the kernel's polynomial arccos: 2e-8 rad in float64 at every separation, the antipode and a point itself
    rng = np.random.default_rng(0)
    u = rng.normal(size=(4000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = rng.normal(size=(4000, 3))
    v -= (v * u).sum(1, keepdims=True) * u
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    theta = np.concatenate([[0.0, np.pi, 1e-6, np.pi / 2], 10.0 ** rng.uniform(-5, np.log10(np.pi), 3996)])
    w = np.cos(theta)[:, None] * u + np.sin(theta)[:, None] * v
    exact = np.arctan2(np.linalg.norm(np.cross(u, w), axis=1), (u * w).sum(1))
    got = token_distance(tuple(torch.tensor(u[:, k]) for k in range(3)), tuple(torch.tensor(w[:, k]) for k in range(3)),
                         "sphere").numpy()
    assert got[0] == 0.0
    np.testing.assert_allclose(got, exact, rtol=1e-7, atol=3e-8)


@pytest.mark.parametrize("name", sorted(GRIDS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_coordinate_bias_equals_dense_bias(name, dtype):
    grid, patch = GRIDS[name]
    db = DistanceBias(heads=4, layers=1, slope_max=2.0)
    dense = db(grid, patch, device=CPU, dtype=dtype)[0][0]  # (h, N, N)
    td = db.token_distances(grid, patch, device=CPU, dtype=dtype)[0]
    got = coordinate_bias(td)
    assert got.dtype == dtype and td.coords[0].shape == (dense.shape[-1],)
    torch.testing.assert_close(got, dense, rtol=1e-5, atol=1e-6 * float(dense.abs().max()))


def test_learnable_weights_scale_slopes_by_the_length_scale():
    grid, patch = GRIDS["periodic-plane"]
    db = DistanceBias(heads=3, layers=2, mode="learnable", length_scale=2.5)
    tds = db.token_distances(grid, patch, device=CPU, dtype=torch.float32, block_sparse=False)
    assert len(tds) == 2 and all(td.block_mask is None for td in tds)
    torch.testing.assert_close(tds[1].weights, db.slopes()[1] / 2.5)
    tds[0].weights.sum().backward()  # the weights carry the slopes' gradient
    assert db.raw_slopes.grad[0].abs().min() > 0 and db.raw_slopes.grad[1].abs().max() == 0


def test_plane_coordinates_wrap_like_patch_centres():
    grid, patch = GRIDS["periodic-plane"]
    coords, periods = patch_coordinates(grid, patch)
    assert coords.shape == (8 * 11, 2) and periods == (30.0, 44.0)
    coords, periods = patch_coordinates(GRIDS["sphere"][0], 4)
    np.testing.assert_allclose(np.linalg.norm(coords, axis=1), 1.0)
    assert periods == (None, None, None)


def steep_plane() -> tuple[Grid, DistanceBias]:
    """1024 tokens (8 blocks) and steep heads, so the block mask skips blocks."""
    grid = Grid("plane", np.arange(64.0), np.arange(64.0), periodic_y=True, periodic_x=True)
    return grid, DistanceBias(heads=4, layers=1, slope_max=8.0, slope_min=0.5)


def test_block_mask_keeps_every_entry_above_minus_tau_and_skips_others():
    grid, db = steep_plane()
    td = db.token_distances(grid, 2, device=CPU, dtype=torch.float32)[0]
    dense = db(grid, 2, device=CPU, dtype=torch.float32)[0][0]  # (h, N, N)
    n, tau = td.tokens, sparse_threshold(td.tokens)
    assert tau == pytest.approx(np.log(n / 1e-6) + 10.0)
    kept = td.block_mask.to_dense()[0].bool()  # (h, nb, nb)
    kept = kept.repeat_interleave(128, 1).repeat_interleave(128, 2)[:, :n, :n]  # (h, N, N)
    assert not (dense > -tau)[~kept].any()  # nothing above −τ is skipped
    skipped = (~kept).float().mean((1, 2))
    assert skipped[0] > 0.5 and skipped[-1] == 0  # the steep head skips most blocks, the shallow one none
    off = DistanceBias(heads=4, layers=1, slope_max=8.0, slope_min=0.5)
    assert off.token_distances(grid, 2, device=CPU, dtype=torch.float32, block_sparse=False)[0].block_mask is None


def test_flex_with_block_mask_equals_dense_attention():
    grid, db = steep_plane()
    td = db.token_distances(grid, 2, device=CPU, dtype=torch.float32)[0]
    dense = db(grid, 2, device=CPU, dtype=torch.float32)[0]  # (1, h, N, N)
    q, k, v = torch.randn(3, 1, 4, td.tokens, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _flex_token_distance(q, k, v, td, compile=False)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=dense), rtol=1e-5, atol=1e-5)


def tiny(**kw) -> GridViT:
    opts = dict(history=1, channels=2, patch=4, dim=32, depth=2, heads=4, attention="flex")
    torch.manual_seed(0)
    model = GridViT(ModelConfig(**{**opts, **kw})).double()
    torch.nn.init.normal_(model.head.weight, std=0.2)
    if model.cfg.bias == "learnable":  # slopes away from their initial values, different per layer
        with torch.no_grad():
            model.distance_bias.raw_slopes.add_(0.3 * torch.randn_like(model.distance_bias.raw_slopes))
    return model


def loss_and_grads(model: GridViT, grid: Grid) -> tuple[torch.Tensor, dict]:
    x = torch.randn(2, 2, *grid.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = model(x, grid)
    y.square().mean().backward()
    return y.detach(), {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("bias", ["alibi", "learnable"])
@pytest.mark.parametrize("name", ["sphere", "periodic-plane"])
def test_flex_model_forward_and_gradients_equal_sdpa(name, bias, monkeypatch):
    grid = GRIDS[name][0]
    y_sdpa, g_sdpa = loss_and_grads(tiny(bias=bias), grid)  # CPU: SDPA with the dense bias
    with monkeypatch.context() as m:
        m.setattr(attention, "flex_available", lambda device: True)
        m.setattr(fa, "_validate_device", lambda *args: None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y_flex, g_flex = loss_and_grads(tiny(bias=bias), grid)
    torch.testing.assert_close(y_flex, y_sdpa, rtol=1e-6, atol=1e-7)
    for key, g in g_sdpa.items():  # incl. the learnable slopes' gradient from the extra Flex forward
        torch.testing.assert_close(g_flex[key], g, rtol=1e-5, atol=1e-7 * float(g.abs().max()), msg=key)
    if bias == "learnable":
        assert g_flex["distance_bias.raw_slopes"].abs().min() > 0


def test_flex_path_builds_no_dense_bias(flex_cpu, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dense (N, N) bias was requested on the Flex path")

    monkeypatch.setattr(bias_mod, "patch_distances", refuse)
    monkeypatch.setattr(DistanceBias, "_distances", refuse)
    monkeypatch.setattr(DistanceBias, "_alibi", refuse)
    monkeypatch.setattr(bias_mod.SlopedDistance, "dense", refuse)
    for b in ("alibi", "learnable"):
        model = tiny(bias=b)
        y, grads = loss_and_grads(model, GRIDS["sphere"][0])
        assert torch.isfinite(y).all() and all(torch.isfinite(g).all() for g in grads.values())
        with pytest.raises(AssertionError, match="dense"):  # the attention maps still need the dense bias
            model(torch.zeros(1, 2, 24, 48, dtype=torch.float64), GRIDS["sphere"][0], return_attention=True)


def test_attention_choice():
    assert not uses_flex("auto", CPU) and not uses_flex("flex", CPU) and not uses_flex("sdpa", CPU)
    with pytest.raises(ValueError, match="attention must be one of"):
        uses_flex("xformers", CPU)
    assert ModelConfig().attention == "auto" and TrainConfig().attention == "auto"
    with pytest.raises(ValueError, match="attention must be one of"):
        TrainConfig(attention="dense")
    with pytest.raises(TypeError, match="block_sparse"):
        ModelConfig(block_sparse="yes")


def test_flex_model_trains_saves_and_predicts_on_cpu(tmp_path, monkeypatch):
    ds = toy_climate(n_time=24, shape=(16, 32), seed=3)
    sur = gridvit.train(ds, epochs=1, attention="flex", dim=16, depth=1, heads=2, patch=4, batch_size=4,
                        progress=False)
    assert sur.model.cfg.attention == "flex" and sur.config.attention == "flex"
    again = gridvit.load(sur.save(tmp_path / "flex.gvt"))
    assert again.meta()["model_config"]["attention"] == "flex"
    cpu = again.predict(ds.isel(time=slice(0, 8)))
    xr_ref = sur.predict(ds.isel(time=slice(0, 8)))
    np.testing.assert_array_equal(cpu["t2m"].values, xr_ref["t2m"].values)
    monkeypatch.setattr(attention, "flex_available", lambda device: True)  # the GPU's path, eager on CPU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flex = again.predict(ds.isel(time=slice(0, 8)))
    np.testing.assert_allclose(flex["t2m"].values, cpu["t2m"].values, rtol=1e-5, atol=1e-5)


def test_model_config_round_trips_attention_fields():
    cfg = ModelConfig(attention="sdpa", block_sparse=False)
    assert ModelConfig(**dataclasses.asdict(cfg)) == cfg
    old = {k: v for k, v in dataclasses.asdict(ModelConfig(attention="sdpa")).items() if k != "block_sparse"}
    assert ModelConfig(**old).attention == "sdpa"  # model files written before block_sparse load unchanged


def test_cli_passes_attention_through(monkeypatch, tmp_path):
    from gridvit import cli

    seen = {}

    def fake_train(data, **opts):
        seen.update(opts)
        raise SystemExit(0)  # stop before saving: only the options matter here

    monkeypatch.setattr(gridvit, "train", fake_train)
    with pytest.raises(SystemExit):
        cli.main(["train", "data.nc", "--out", str(tmp_path), "--attention", "sdpa"])
    assert seen["attention"] == "sdpa"
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["train", "data.nc", "--out", str(tmp_path), "--attention", "dense"])


def test_auto_takes_the_dense_bias_below_the_token_threshold(monkeypatch):
    """'auto' computes the bias in the kernel only where the dense one stops scaling (the H200 run measured the
    in-kernel bias slower up to 16k tokens); 'flex' always takes it where FlexAttention trains."""
    from gridvit.model import attention

    monkeypatch.setattr(attention, "flex_available", lambda device: True)  # as on a CUDA device
    cuda = torch.device("cuda")
    n = attention.AUTO_FLEX_TOKENS
    assert not attention.uses_flex("auto", cuda, tokens=n) and attention.uses_flex("auto", cuda, tokens=n + 1)
    assert attention.uses_flex("flex", cuda, tokens=16) and not attention.uses_flex("sdpa", cuda, tokens=10**6)
