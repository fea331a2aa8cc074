"""Lead-conditioned models, the linear-regression baseline, the seam ratio and the rollout curriculum."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import gridvit
from gridvit.baselines import LinearBaseline
from gridvit.config import TrainConfig
from gridvit.data import describe
from gridvit.examples import toy_climate
from gridvit.geometry import Grid
from gridvit.metrics import rmse, seam_ratio

TINY = dict(dim=32, depth=2, heads=2, progress=False, seed=0)


@pytest.fixture(scope="module")
def toy():
    return toy_climate(n_time=240, shape=(8, 16))


@pytest.fixture(scope="module")
def multi(toy):
    return gridvit.train(toy.isel(time=slice(0, 200)), leads=[1, 2, 4], epochs=2, batch_size=16, **TINY)


def test_lead_conditioned_model_beats_persistence_at_every_lead(toy, multi):
    w = multi.spec.grid.area_weights()
    for lead in multi.leads:
        errs, pers = [], []
        for end in range(205, 235 - lead, 3):
            fc = multi.predict(toy.isel(time=slice(0, end)), lead=lead)
            truth = toy.t2m.isel(time=end - 1 + lead)
            assert fc.time.values[0] == truth.time.values
            errs.append(fc.t2m.values[0] - truth.values)
            pers.append(toy.t2m.isel(time=end - 1).values - truth.values)
        zero = np.zeros_like(np.stack(errs))
        assert rmse(np.stack(errs), zero, weights=w) < 0.7 * rmse(np.stack(pers), zero, weights=w), lead


def test_predict_lead_equals_first_step_of_a_lead_only_rollout(toy, multi):
    past = toy.isel(time=slice(0, 210))
    for lead in multi.leads:
        direct = multi.predict(past, lead=lead)
        chained = multi.rollout(past, steps=1, lead=lead)
        np.testing.assert_array_equal(direct.t2m.values, chained.t2m.values)
        assert direct.time.values[0] == past.time.values[-1] + np.timedelta64(6 * lead, "h")


def test_combined_rollout_averages_the_paths_and_round_trips(toy, multi, tmp_path):
    past = toy.isel(time=slice(0, 210))
    comb = multi.rollout(past, steps=4)
    assert comb.sizes["time"] == 4 and np.isfinite(comb.t2m.values).all()
    # tau = 1 has one path (lead 1); tau = 2 averages lead 2 from the start with lead 1 from F(1)
    np.testing.assert_allclose(comb.t2m.values[0], multi.predict(past, lead=1).t2m.values[0], rtol=0, atol=1e-5)
    direct2 = multi.predict(past, lead=2).t2m.values[0]
    greedy = multi.rollout(past, steps=2, paths=1).t2m.values[1]
    np.testing.assert_allclose(greedy, direct2, rtol=0, atol=1e-5)
    assert not np.allclose(comb.t2m.values[1], direct2, atol=1e-4)
    path = multi.save(tmp_path / "m.gvt")
    again = gridvit.load(path)
    assert again.leads == (1, 2, 4)
    np.testing.assert_array_equal(again.rollout(past, steps=4).t2m.values, comb.t2m.values)


def test_lead_options_are_checked(toy, multi):
    for leads, words in (([], "empty"), ([0, 1], "positive"), ([-1], "positive"), ([2, 1], "increasing"),
                         ([1, 1], "increasing"), ([2, 3], "multiple"), (["1"], "positive")):
        with pytest.raises(ValueError, match=words):
            TrainConfig(leads=leads)
    with pytest.raises(TypeError, match="list"):
        TrainConfig(leads=3)
    with pytest.raises(ValueError, match="either lead"):
        TrainConfig(lead=2, leads=[1, 4])
    with pytest.raises(ValueError, match="rollout_steps"):
        TrainConfig(leads=[1, 2], rollout_steps=2)
    with pytest.raises(ValueError, match="lead 500 cannot be trained"):
        gridvit.train(toy.isel(time=slice(0, 100)), leads=[1, 500], epochs=1, **TINY)
    past = toy.isel(time=slice(0, 210))
    with pytest.raises(ValueError, match="not one the model was trained for"):
        multi.predict(past, lead=3)
    with pytest.raises(ValueError, match="history=1"):
        multi.rollout(past, steps=2, lead=2)  # history 2 at spacing 1 cannot chain lead 2
    with pytest.raises(ValueError, match="paths"):
        multi.rollout(past, steps=2, paths=0)
    with pytest.raises(TypeError, match="balance_leads"):
        TrainConfig(leads=[1, 2], balance_leads="yes")


def test_balanced_leads_weight_each_lead_by_its_inverse_persistence_error(toy):
    from gridvit.data import prepare
    from gridvit.training import Trainer, build_surrogate

    data = toy.isel(time=slice(0, 200))
    for balance in (True, False):
        cfg = TrainConfig(leads=[1, 2, 4], epochs=1, balance_leads=balance, **TINY)
        prep = prepare(data, history=cfg.history, lead=cfg.lead, leads=cfg.leads, climatology=cfg.climatology)
        tr = Trainer(build_surrogate(prep, cfg), prep, cfg, checkpoint_dir=None, resume=False)
        if not balance:
            assert tr.lead_weights is None
            plain = tr.validate()
            continue
        w = tr.weights.numpy()  # (H, W) area weights
        sse, tot = np.zeros(3), np.zeros(3)
        for batch in torch.utils.data.DataLoader(prep.dataset("train"), batch_size=32):
            last, y, ok = batch["x"][:, -1].numpy(), batch["y"][:, 0, 0].numpy(), batch["valid"][:, 0, 0].numpy()
            for i, lead in enumerate(cfg.leads):
                sel = batch["lead"].numpy() == lead
                sse[i] += (w * ok[sel] * (last[sel] - y[sel]) ** 2).sum()
                tot[i] += (w * ok[sel]).sum()
        errors = sse / tot  # persistence MSE per lead on the training windows: it grows with the lead
        assert errors[0] < errors[1] < errors[2]
        np.testing.assert_allclose(tr.lead_weights.numpy(), errors.mean() / errors, rtol=1e-4)
        balanced = tr.validate()
    assert balanced < plain  # the long leads' large errors count for less


def test_balanced_leads_survive_a_field_that_persistence_forecasts_exactly():
    still = np.broadcast_to(np.arange(96.0).reshape(8, 12), (60, 8, 12)).astype(np.float32)  # constant in time
    ds = xr.Dataset({"u": (("time", "y", "x"), still)},
                    coords={"time": np.arange(60.0), "y": np.arange(8.0), "x": np.arange(12.0)})
    model = gridvit.train(ds, leads=[1, 2], epochs=1, patch=4, **TINY)  # zero error at every lead: no 0/0
    assert np.isfinite(model.history.loss.values).all()
    np.testing.assert_allclose(model.predict(ds, lead=2).u.values[0], still[0], atol=1e-4)


def _series(n=400, shift=0.0, split=300, seed=0):
    """(time, y, x) AR(1) anomalies with a diurnal cycle; ``shift`` added after ``split``."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2001-01-01", periods=n, freq="1h")
    x = np.zeros((n, 4, 6))
    for t in range(1, n):
        x[t] = 0.8 * x[t - 1] + rng.normal(size=(4, 6))
    x += 3 * np.sin(2 * np.pi * times.hour.values / 24)[:, None, None]
    x[split:] += shift
    return xr.DataArray(x, dims=("time", "lat", "lon"), name="t2m",
                        coords={"time": times, "lat": [50.0, 51.0, 52.0, 53.0], "lon": np.arange(6.0)})


def _fit(da, leads=(1, 3)):
    spec = describe(da.to_dataset())
    return LinearBaseline.fit(da, leads=leads, history=2, time=spec.time, grid=spec.grid, dims=("time", "lat", "lon"))


def test_linear_baseline_learns_the_dynamics_and_uses_the_training_split_only():
    da = _series()
    train = da.isel(time=slice(0, 300))
    base = _fit(train)
    # AR(1) with phi = 0.8 plus a known diurnal cycle: lead-1 coefficient on the last state ~ 0.8
    i0 = 350
    pred = base.predict(da.values[i0 - 1:i0 + 1], da.time.values[i0], 1)
    resid = pred - da.values[i0 + 1]
    assert np.abs(resid).mean() < 1.2  # the innovation's mean |N(0, 1)| is 0.8
    # a shift planted in the test period must not change the fit
    shifted = _series(shift=50.0)
    again = _fit(shifted.isel(time=slice(0, 300)))
    for k in (1, 3):
        np.testing.assert_array_equal(again.coef[k], base.coef[k])
    # ...while fitting on data that include it does change it
    leaked = _fit(shifted)
    assert not np.allclose(leaked.coef[1], base.coef[1])
    with pytest.raises(ValueError, match="fitted for leads"):
        base.predict(da.values[:2], da.time.values[1], 2)
    with pytest.raises(ValueError, match="too few"):
        _fit(train.isel(time=slice(0, 4)), leads=(1, 5))


def test_seam_ratio_sees_blocky_fields_and_not_smooth_ones():
    yy, xx = np.meshgrid(np.linspace(0, 3, 32), np.linspace(0, 5, 48), indexing="ij")
    smooth = np.sin(yy) * np.cos(xx)
    assert 0.8 < seam_ratio(smooth, 4) < 1.25
    rng = np.random.default_rng(0)
    blocks = np.kron(rng.normal(size=(8, 12)), np.ones((4, 4))) + 0.01 * rng.normal(size=(32, 48))
    assert seam_ratio(blocks, 4) > 100
    with pytest.raises(ValueError, match="patch side"):
        seam_ratio(smooth, 1)


def test_rollout_curriculum_starts_with_one_step_and_reaches_k(toy):
    from gridvit.training import Trainer, build_surrogate
    from gridvit.data import prepare

    cfg = TrainConfig(rollout_steps=3, rollout_curriculum=0.5, epochs=10, **TINY)
    prep = prepare(toy, history=cfg.history, rollout=3)
    tr = Trainer(build_surrogate(prep, cfg), prep, cfg, checkpoint_dir=None, resume=False)
    seen = []
    for p in (0.0, 0.3, 0.55, 0.65, 0.74, 0.76, 1.0):
        tr.step = int(p * tr.epochs * tr.n_batches)
        seen.append(tr.unrolled_steps())
    assert seen == [1, 1, 1, 2, 2, 3, 3]
    tr.cfg = TrainConfig(rollout_steps=3, epochs=10, **TINY)  # the default: all K steps from the start
    assert tr.unrolled_steps() == 3
    with pytest.raises(ValueError, match="rollout_curriculum"):
        TrainConfig(rollout_curriculum=1.0)


def _ar_field(n=300, seed=0):
    """x_{t+1} = a(cell) x_t + noise, with a(cell) from 0.2 to 0.95 across the grid (numeric time axis)."""
    rng = np.random.default_rng(seed)
    a = np.linspace(0.2, 0.95, 8 * 12).reshape(8, 12)
    x = np.zeros((n, 8, 12))
    for t in range(1, n):
        x[t] = a * x[t - 1] + rng.normal(size=(8, 12))
    da = xr.DataArray(x.astype(np.float32), dims=("time", "y", "x"), name="u",
                      coords={"time": np.arange(n, dtype=float), "y": np.arange(8.0), "x": np.arange(12.0)})
    return da.to_dataset(), a


def test_linear_base_starts_as_the_per_cell_least_squares_fit(tmp_path):
    from gridvit.data import prepare
    from gridvit.training import Trainer, build_surrogate

    ds, a = _ar_field()
    cfg = TrainConfig(history=1, linear_base=True, epochs=1, patch=4, **TINY)
    prep = prepare(ds, history=1, patch=4)
    sur = build_surrogate(prep, cfg)
    w0 = sur.model.cell_linear.weight.clone()
    np.testing.assert_array_equal(w0[0, 0, 0].numpy(), 1.0)  # persistence before the fit
    Trainer(sur, prep, cfg, checkpoint_dir=None, resume=False)  # fits the base on the training windows
    slope = sur.model.cell_linear.weight[0, 0, 0].numpy()  # (H, W) weight on the last state
    z = (ds.u.values[:270] - sur.normaliser.mean[0]) / sur.normaliser.std[0]  # the training split, normalised
    x, y = z[:-1], z[1:]
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    ols = ((x - xm) * (y - ym)).sum(axis=0) / ((x - xm) ** 2).sum(axis=0)  # per-cell least squares
    np.testing.assert_allclose(slope, ols, atol=5e-3)
    assert np.abs(slope - a).mean() < 0.06
    # zero head: the untrained network's forecast is exactly the linear base
    fc = sur.predict(ds.isel(time=slice(0, 280))).u.values[0]
    x0 = (ds.u.values[279] - sur.normaliser.mean[0]) / sur.normaliser.std[0]
    bias = sur.model.cell_linear.weight[0, 0, 1].numpy()
    np.testing.assert_allclose((fc - sur.normaliser.mean[0]) / sur.normaliser.std[0], slope * x0 + bias, atol=1e-4)
    trained = gridvit.train(ds, history=1, linear_base=True, epochs=1, patch=4, **TINY)
    again = gridvit.load(trained.save(tmp_path / "lin.gvt"))
    np.testing.assert_array_equal(again.predict(ds).u.values, trained.predict(ds).u.values)
    with pytest.raises(ValueError, match="per-cell linear base"):
        again.model(torch.zeros(1, 1, 16, 24), Grid(kind="plane", y=np.arange(16.0), x=np.arange(24.0)))


def test_diurnal_calendar_keeps_only_the_time_of_day_channels(toy, tmp_path):
    model = gridvit.train(toy.isel(time=slice(0, 120)), calendar="diurnal", epochs=1, **TINY)
    assert model.forcing_names == ("sin_hour", "cos_hour")
    assert model.model.cfg.extra_channels == 2
    again = gridvit.load(model.save(tmp_path / "d.gvt"))
    np.testing.assert_array_equal(again.predict(toy).t2m.values, model.predict(toy).t2m.values)
    with pytest.raises(ValueError, match="calendar"):
        TrainConfig(calendar="yearly")


def test_training_keeps_the_linear_base_unless_it_beats_it_on_validation():
    from gridvit.data import prepare
    from gridvit.training import Trainer, build_surrogate

    ds, _ = _ar_field()  # the per-cell linear model is the true one: a too-fast network can only hurt
    cfg = TrainConfig(history=1, linear_base=True, epochs=2, patch=4, lr=0.3, warmup=0.0, **TINY)
    prep = prepare(ds, history=1, patch=4)
    tr = Trainer(build_surrogate(prep, cfg), prep, cfg, checkpoint_dir=None, resume=False)
    base, fit = tr.validate(), tr.sur.model.cell_linear.weight.clone()
    tr.run()
    assert tr.validate() <= base + 1e-9
    assert not any(p.any() for p in tr.sur.model.output_layer.parameters())  # the network was dropped
    # ... so the base alone is refitted on every window: the training split (t < 270) and validation
    slope = tr.sur.model.cell_linear.weight[0, 0, 0].numpy()
    z = (ds.u.values - tr.sur.normaliser.mean[0]) / tr.sur.normaliser.std[0]
    pairs = np.r_[0:269, 270:299]
    x, y = z[pairs], z[pairs + 1]
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    np.testing.assert_allclose(slope, ((x - xm) * (y - ym)).sum(axis=0) / ((x - xm) ** 2).sum(axis=0), atol=5e-3)
    assert np.abs(slope - fit[0, 0, 0].numpy()).max() > 1e-3  # not the training-split fit


def test_a_kept_network_keeps_the_training_split_linear_base():
    from gridvit.data import prepare
    from gridvit.training import Trainer, build_surrogate

    rng = np.random.default_rng(1)  # x_{t+1} = x_t shifted one cell along x: invisible to a per-cell regression
    x = np.zeros((200, 8, 12))
    x[0] = rng.normal(size=(8, 12))
    for t in range(1, 200):
        x[t] = 0.9 * np.roll(x[t - 1], 1, axis=1) + 0.3 * rng.normal(size=(8, 12))
    ds = xr.Dataset({"u": (("time", "y", "x"), x.astype(np.float32))},
                    coords={"time": np.arange(200.0), "y": np.arange(8.0), "x": np.arange(12.0)})
    cfg = TrainConfig(history=1, linear_base=True, epochs=3, patch=4, lr=3e-3, **TINY)
    prep = prepare(ds, history=1, patch=4)
    tr = Trainer(build_surrogate(prep, cfg), prep, cfg, checkpoint_dir=None, resume=False)
    base, fit = tr.validate(), tr.sur.model.cell_linear.weight.clone()
    tr.run()
    assert tr.validate() < 0.9 * base  # the network beats the base on validation and is kept ...
    assert any(p.any() for p in tr.sur.model.output_layer.parameters())
    torch.testing.assert_close(tr.sur.model.cell_linear.weight, fit, rtol=0, atol=0)  # ... with its base


def test_a_linear_base_model_refuses_another_grid_clearly():
    ds, _ = _ar_field()
    model = gridvit.train(ds, history=1, linear_base=True, epochs=1, patch=4, **TINY)
    fine = ds.interp(y=-0.25 + 0.5 * np.arange(16), x=-0.25 + 0.5 * np.arange(24))  # the same extent, twice as fine
    with pytest.raises(ValueError, match="per-cell linear base"):
        model.predict(fine, regrid=True)
