"""Input checks shared by every public entry point.

Each check raises :class:`ValueError` with one line that names the input and what is wrong,
so the command line can print it as ``error: ...`` and exit with code 2.
"""

from __future__ import annotations

import numbers
import os

import numpy as np
import torch

#: fewest data rows a refinement takes: some are held out (the weights check themselves on them,
#: and a comparison scores on two truth halves of at least 2 rows each)
MIN_DATA_ROWS = 20


def check_data_shape(data_shape, name: str = "data_shape") -> tuple[int, ...]:
    """``data_shape`` as a tuple of positive ints: ``(D,)`` for tabular rows, ``(C, H, W)`` for
    images; ``(H, W)`` becomes ``(1, H, W)`` (one channel)."""
    try:
        items = list(data_shape)
        ok = all(not isinstance(s, bool) and int(s) == s and int(s) >= 1 for s in items)
    except (TypeError, ValueError):
        ok = False
    if not ok or len(items) not in (1, 2, 3):
        raise ValueError(f"{name}: expected (D,), (H, W) or (C, H, W) of positive integers, got {data_shape!r}")
    shape = tuple(int(s) for s in items)
    return (1,) + shape if len(shape) == 2 else shape


def _row_shape_error(name: str, data_shape: tuple[int, ...], got: tuple[int, ...]) -> str:
    want = int(np.prod(data_shape))
    image = (1,) + got if len(got) == 2 else got
    if len(data_shape) == 3 and len(image) == 3 and image[1:] == data_shape[1:]:
        return f"{name}: expected {data_shape[0]} channel(s) per image, got {image[0]} (rows of shape {got})"
    if len(data_shape) == 3 and len(image) == 3:
        return f"{name}: expected images of {data_shape[1]}x{data_shape[2]} pixels, got rows of shape {got}"
    return f"{name}: expected rows of shape {data_shape} ({want} values), got rows of shape {got}"


def check_array(x, name: str = "data", ndim: int = 2, min_rows: int = 1, dim: int | None = None,
                data_shape=None) -> np.ndarray:
    """Return ``x`` as a finite float array of shape ``(n, d)`` (``ndim=2``) or ``(n,)``.

    With ``data_shape`` (``(D,)`` or ``(C, H, W)``; ``(H, W)`` means one channel) the rows may
    come in that shape, e.g. ``(n, C, H, W)``, ``(n, H, W)`` for one channel, or already flat
    ``(n, C*H*W)``; the result is always flat ``(n, prod(data_shape))`` (C order).

    Raises ValueError for non-numeric dtypes, the wrong number of dimensions, fewer than
    ``min_rows`` rows, a feature dimension other than ``dim``, rows of another shape (image
    size or channel count) than ``data_shape``, or NaN / inf entries.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}: complex values are not supported")
    if data_shape is not None:
        shape = check_data_shape(data_shape)
        rows = tuple(arr.shape[1:])
        flat = (int(np.prod(shape)),)
        if arr.ndim < 2:
            raise ValueError(f"{name}: expected an array of rows of shape {shape}, got shape {arr.shape}")
        if rows not in (shape, flat) and not (len(shape) == 3 and shape[0] == 1 and rows == shape[1:]):
            raise ValueError(_row_shape_error(name, shape, rows))
        arr = arr.reshape(len(arr), -1) if arr.shape[0] > 0 else arr.reshape(0, flat[0])
        dim = flat[0] if dim is None else dim
    if arr.ndim != ndim:
        want = "(n_samples, n_features)" if ndim == 2 else "(n_samples,)"
        raise ValueError(f"{name}: expected a {ndim}-D array of shape {want}, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name}: needs at least {min_rows} rows, got {arr.shape[0]}")
    if ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name}: has no features (shape {arr.shape})")
    if dim is not None and ndim == 2 and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} features per row, got {arr.shape[1]}")
    arr = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(f"{name}: contains {n_nan} NaN and {n_inf} inf values")
    return arr


def check_weights(w, name: str = "weights", n: int | None = None) -> np.ndarray:
    """Return non-negative finite weights of shape ``(n,)`` that do not all vanish."""
    arr = check_array(w, name=name, ndim=1)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} weights, got {arr.shape[0]}")
    if (arr < 0).any():
        raise ValueError(f"{name}: {int((arr < 0).sum())} weights are negative")
    if not (arr > 0).any():
        raise ValueError(f"{name}: all weights are zero")
    return arr


def check_positive(value, name: str, allow_zero: bool = False) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0 (or >= 0)."""
    ok = value is not None and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks CUDA when available; an unavailable CUDA request is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: {device!r} is not a device (use cpu, cuda, cuda:N or auto)") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: {device!r} is not supported (use cpu, cuda, cuda:N or auto)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but no CUDA device is available")
    return dev


def check_seed(seed) -> int:
    """``seed`` as an int in [0, 2**32 - 1] (numpy's range), or one clear error."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    return int(seed)


def check_count(value, name: str, minimum: int = 1) -> None:
    """One clear error unless ``value`` is an integer >= ``minimum`` (a count: samples, steps, chains)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def not_a_file(path: str) -> str | None:
    """Why ``path`` is not a regular file one can read (``None`` when it is): no such file, a
    directory, a broken symbolic link or a link loop, or not a regular file (a FIFO, a device)."""
    if os.path.isfile(path):
        return None
    if os.path.isdir(path):
        return "is a directory"
    if os.path.lexists(path) and not os.path.exists(path):
        return "a broken symbolic link or a link loop"
    return "not a regular file" if os.path.exists(path) else "no such file"
