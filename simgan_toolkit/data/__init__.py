"""Datasets on disk: the toolkit's HDF5 layout."""

from simgan_toolkit.data.hdf5 import (
    FORMAT,
    H5ImageWriter,
    count_images_h5,
    iter_images_h5,
    read_attrs,
    read_images_h5,
    write_images_h5,
)

__all__ = ["FORMAT", "H5ImageWriter", "count_images_h5", "iter_images_h5", "read_attrs", "read_images_h5", "write_images_h5"]
