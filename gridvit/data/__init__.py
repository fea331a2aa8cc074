"""The data layer: xarray <-> tensors (grid detection, normalisation, masks, windows, back to xarray)."""

from gridvit.data.convert import to_dataset
from gridvit.data.dims import Dims, detect_dims
from gridvit.data.io import DataFileError, DataFileNotFoundError, open_data
from gridvit.data.normalise import Normaliser, fit_normaliser
from gridvit.data.pipeline import Prepared, prepare
from gridvit.data.reader import FieldReader
from gridvit.data.spec import Channel, DataSpec, describe
from gridvit.data.timeaxis import TimeAxis, time_axis
from gridvit.data.windows import Split, WindowDataset, make_splits, make_windows

__all__ = [
    "Channel", "DataFileError", "DataFileNotFoundError", "DataSpec", "Dims", "FieldReader", "Normaliser",
    "Prepared", "Split", "TimeAxis", "WindowDataset", "describe", "detect_dims", "fit_normaliser", "make_splits",
    "make_windows", "open_data", "prepare", "time_axis", "to_dataset",
]
