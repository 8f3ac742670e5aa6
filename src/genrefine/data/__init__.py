"""Data: built-in 2-D sets and validated loading of user files."""

import os

import numpy as np

from genrefine.data.files import load_array
from genrefine.data.toy import DATASETS, make_dataset


def load_data(name_or_path: str, n: int = 480_000, seed: int = 0, key: str | None = None) -> np.ndarray:
    """A built-in set by name (``n`` points, ``seed``) or a user's file by path."""
    if name_or_path in DATASETS:
        return make_dataset(name_or_path, n, seed)
    if not os.path.splitext(str(name_or_path))[1] and not os.path.exists(str(name_or_path)):
        raise ValueError(f"'{name_or_path}' is neither a built-in data set ({', '.join(DATASETS)}) nor a file")
    return load_array(name_or_path, key=key)


__all__ = ["DATASETS", "make_dataset", "load_array", "load_data"]
