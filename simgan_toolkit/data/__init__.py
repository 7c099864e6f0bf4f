"""Datasets on disk: the toolkit's HDF5 layout and the interface of dataset-format loaders."""

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

__all__ = ["DatasetLoader", "Unit", "FORMAT", "H5ImageWriter", "count_images_h5", "iter_images_h5", "read_attrs", "read_images_h5", "write_images_h5"]
