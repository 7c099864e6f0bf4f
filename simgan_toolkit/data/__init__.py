"""Datasets on disk: the toolkit HDF5 layout, the dataset-loader interface, checked reading and conversion."""

from simgan_toolkit.data.hdf5 import (
    FORMAT,
    H5ImageWriter,
    count_images_h5,
    iter_images_h5,
    read_attrs,
    read_images_h5,
    write_images_h5,
)
from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.data.convert import convert_dataset
from simgan_toolkit.data.formats import resolve_loader
from simgan_toolkit.data.reading import SkipReport, read_dataset

__all__ = [
    "DatasetLoader", "Unit", "SkipReport", "convert_dataset", "read_dataset", "resolve_loader",
    "FORMAT", "H5ImageWriter", "count_images_h5", "iter_images_h5", "read_attrs", "read_images_h5", "write_images_h5",
]
