from pathlib import Path

import pytest
import torch
import xarray as xr

from gridvit.examples import toy_climate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ERA5 = SHARED_DATA / "era5_t2m_uk_2019-03.nc"
ERSST = SHARED_DATA / "ersst_v5_sst_2010-2020.nc"


def _open(path: Path) -> xr.Dataset:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (it sits in ../shared/data beside the repository in CI)")
    return xr.open_dataset(path)


@pytest.fixture
def era5() -> xr.Dataset:
    return _open(ERA5)


@pytest.fixture
def ersst() -> xr.Dataset:
    return _open(ERSST)


@pytest.fixture
def toy() -> xr.Dataset:
    return toy_climate(n_time=24, shape=(16, 32), seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module single-threaded (restored after): its grids and models are tiny, and threaded CPU work
    stalled 10-100× per call on the shared 2-core machine whenever another process held a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def crash_in_third_epoch(monkeypatch):
    """``crash(ds, **train_options)``: ``gridvit.train`` for 3 epochs, interrupted by a simulated crash
    (KeyboardInterrupt) as the third epoch starts, leaving its checkpoint behind; training works again after."""
    import gridvit
    from gridvit.training import Trainer

    real_epoch = Trainer._epoch

    def crashing_epoch(self, bar):
        if self.epoch == 2:
            raise KeyboardInterrupt("simulated crash")
        return real_epoch(self, bar)

    def crash(ds: xr.Dataset, **options) -> None:
        monkeypatch.setattr(Trainer, "_epoch", crashing_epoch)
        with pytest.raises(KeyboardInterrupt):
            gridvit.train(ds, epochs=3, **options)
        monkeypatch.setattr(Trainer, "_epoch", real_epoch)

    return crash
