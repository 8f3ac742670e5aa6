"""Data: built-in sets, validated loading of user files (.npy, .npz, .csv, MNIST IDX), and
the front door that turns any of them into the package's flat rows plus ``data_shape``."""

from __future__ import annotations

import os

import numpy as np

from genrefine.data.files import load_array, to_flat
from genrefine.data.idx import read_idx, write_idx
from genrefine.data.toy import DATA_SHAPES, DATASETS, FINITE_SIZES, dataset_shape, make_dataset

DEFAULT_N = 480_000  # rows drawn from a synthetic built-in set when no n is given


def load_flat(name_or_path: str, n: int | None = None, seed: int = 0, key: str | None = None,
              data_shape=None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flat float32 rows ``(n, D)`` and their ``data_shape`` from a built-in set or a file.

    A built-in set by name draws ``n`` rows with ``seed`` (``n=None``: :data:`DEFAULT_N` for the
    synthetic sets, every row of a finite one such as ``digits``); a path is read by
    :func:`load_array` (uint8 images scaled to [0, 1]). ``(n, D)`` rows give ``data_shape``
    ``(D,)``, ``(n, H, W)`` give ``(1, H, W)``, ``(n, C, H, W)`` give ``(C, H, W)``. With
    ``data_shape`` the caller says what it expects; other rows are one ValueError line.

    Example:
        >>> x, shape = load_flat("../shared/data/mnist/t10k-images-idx3-ubyte.gz")
        >>> x.shape, shape
        ((10000, 784), (1, 28, 28))
    """
    name = str(name_or_path)
    if n is not None and (isinstance(n, bool) or int(n) != n or int(n) < 1):
        raise ValueError(f"n must be an integer >= 1, got {n}")
    if name in DATASETS:
        rows = make_dataset(name, FINITE_SIZES.get(name, DEFAULT_N) if n is None else n, seed)
    elif not os.path.splitext(name)[1] and not os.path.exists(name):
        raise ValueError(f"'{name}' is neither a built-in data set ({', '.join(DATASETS)}) nor a file")
    else:
        rows = load_array(name, key=key)
        if n is not None:
            rows = rows[: int(n)]
    return to_flat(rows, data_shape, name=name)


def load_data(name_or_path: str, n: int = DEFAULT_N, seed: int = 0, key: str | None = None) -> np.ndarray:
    """A built-in set by name (``n`` points, ``seed``) or a user's file by path, as flat
    ``(n, D)`` float32 rows (images flattened; :func:`load_flat` also returns their shape).
    A file is read whole (``n`` applies to built-in sets only)."""
    name = str(name_or_path)
    if name in DATASETS:
        return load_flat(name, n, seed)[0]
    return load_flat(name, None, seed, key)[0]


__all__ = ["DATASETS", "DATA_SHAPES", "DEFAULT_N", "FINITE_SIZES", "dataset_shape", "load_array", "load_data",
           "load_flat", "make_dataset", "read_idx", "to_flat", "write_idx"]
