"""Input checks shared by every public entry point.

Each check raises :class:`ValueError` with one line that names the input and what is wrong,
so the command line can print it as ``error: ...`` and exit with code 2.
"""

from __future__ import annotations

import numpy as np
import torch


def check_array(x, name: str = "data", ndim: int = 2, min_rows: int = 1, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite float array of shape ``(n, d)`` (``ndim=2``) or ``(n,)``.

    Raises ValueError for non-numeric dtypes, the wrong number of dimensions, fewer than
    ``min_rows`` rows, a feature dimension other than ``dim``, or NaN / inf entries.
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
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but no CUDA device is available")
    return dev
