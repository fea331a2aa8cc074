"""Opening files: a netCDF file or a zarr store path -> a lazily opened ``xr.Dataset``, with clear errors.

A path that does not exist raises :class:`DataFileNotFoundError` (a ``FileNotFoundError`` and a
``ValueError``) naming it; a file that cannot be read (truncated, damaged, not netCDF/zarr) raises
:class:`DataFileError` naming it. Classic-format netCDF files (``CDF\\x01``/``CDF\\x02``), which the netCDF
library opens even when truncated and then reads as zeros, are checked against the sizes their header
declares.
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import xarray as xr

PathLike = str | os.PathLike


class DataFileNotFoundError(FileNotFoundError, ValueError):
    """No netCDF file or zarr store at the given path."""


class DataFileError(ValueError):
    """A data file exists but cannot be read as netCDF or zarr (truncated, damaged, another format)."""


def is_zarr(path: Path) -> bool:
    """A ``.zarr`` path, or a folder holding zarr v2 (``.zgroup``) or v3 (``zarr.json``) metadata."""
    return path.suffix == ".zarr" or (path.is_dir() and ((path / ".zgroup").exists() or (path / "zarr.json").exists()))


def open_data(path: PathLike) -> xr.Dataset:
    """Open a netCDF file or a zarr store lazily (values are read on use).

    Zarr stores open without dask (``chunks=None``): gridvit reads whole windows itself, and indexing the
    store directly was ~10× faster than through a dask graph per read (``benchmarks/loader.py``).

    Raises:
        DataFileNotFoundError: nothing exists at ``path``.
        DataFileError: the file or store is damaged, truncated or not netCDF/zarr.
    """
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(errno.ENOENT, "no netCDF file or zarr store at this path (accepted: a .nc "
                                    "file, a zarr store folder, or an xarray Dataset/DataArray)", str(p))
    try:
        if is_zarr(p):
            with warnings.catch_warnings():  # consolidated=None already means "use it when there"
                warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata",
                                        RuntimeWarning)
                return xr.open_zarr(p, consolidated=None, chunks=None)
        _check_classic_netcdf(p)
        return xr.open_dataset(p)
    except DataFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        kind = "zarr store" if is_zarr(p) else "netCDF file"
        raise DataFileError(f"cannot read {str(p)!r} as a {kind}: it is damaged, truncated or in another format "
                            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
                            "re-download or re-write it") from None


def _check_classic_netcdf(path: Path) -> None:
    """Raise DataFileError when a classic netCDF file is shorter than its header says (truncated)."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"CDF\x01", b"CDF\x02"):
        return  # netCDF-4/HDF5 and CDF-5: the library itself refuses truncated files
    from scipy.io import netcdf_file

    try:
        netcdf_file(path, mmap=True).close()  # parsing maps every variable onto the file: fails when short
    except (ValueError, TypeError, OSError, IndexError):
        raise DataFileError(f"cannot read {str(path)!r}: the netCDF file is truncated or damaged (its header "
                            f"declares more data than its {path.stat().st_size} bytes hold); re-download or "
                            "re-write it") from None
