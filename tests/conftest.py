from pathlib import Path

import pytest
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
