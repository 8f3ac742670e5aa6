"""Loading a user's data file with validation: ``.npy``, ``.npz`` (first array or ``key``),
``.csv`` / ``.txt`` with or without a header row (2-D only), and IDX files (MNIST's
``*-idx3-ubyte``, plain or ``.gz``; :mod:`genrefine.data.idx`). Rows may be vectors
``(n, D)``, one-channel images ``(n, H, W)`` or images ``(n, C, H, W)``; :func:`to_flat` turns
any of them into the package's flat ``(n, D)`` float32 rows plus their ``data_shape``.
Every failure is one ValueError line naming the file and the problem."""

from __future__ import annotations

import csv
import io
import os
import warnings
import zipfile

import numpy as np

from genrefine.data.idx import is_idx_path, read_idx
from genrefine.validation import check_array, check_data_shape, not_a_file

_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: what a channels-last last axis may hold


def _read_csv(path: str) -> np.ndarray:
    """Rows of numbers; a header row, ``#`` comment lines, a byte-order mark, trailing
    delimiters and any line ending (\\n, \\r\\n, \\r) are allowed."""
    with open(path, encoding="utf-8-sig") as fh:  # universal newlines; the BOM is not data
        text = fh.read()
    if not text.strip():
        raise ValueError("the file is empty")
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith("#")]
    text = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t ")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","
    try:
        raw = [r for r in csv.reader(io.StringIO(text), delimiter=delim, skipinitialspace=True)]
    except csv.Error as exc:
        raise ValueError(f"not readable as CSV ({exc})") from None
    raw = [r for r in raw if any(c.strip() for c in r)]
    rows = [_trailing_trimmed([c.strip() for c in r]) for r in raw]

    def numeric(row):  # a header has a cell that is not a number (an empty cell is a missing one)
        try:
            [float(c) for c in row if c != ""]
            return True
        except ValueError:
            return False

    header = None
    if rows and not numeric(rows[0]):
        header, rows = raw[0], rows[1:]
    if not rows:
        raise ValueError("no data rows")
    if header is not None and _is_index_column(header, rows):
        warnings.warn(f"{os.path.basename(path)}: the first column is a row index (headed '{header[0].strip()}', "
                      f"counting {rows[0][0]}, {rows[1][0]}, ...), as pandas writes one; it is left out of the features",
                      stacklevel=3)
        rows = [r[1:] for r in rows]
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ValueError(f"row {i + 1} has {len(r)} columns, expected {width}")
        for j, c in enumerate(r):
            if c == "":
                raise ValueError(f"row {i + 1}, column {j + 1}: empty value (a missing entry)")
            try:
                float(c)
            except ValueError:
                raise ValueError(f"row {i + 1}, column {j + 1}: '{c[:30]}' is not a number") from None
    return np.array(rows, dtype=np.float64)


def _trailing_trimmed(cells: list[str]) -> list[str]:
    """The cells without the empty ones a trailing delimiter leaves at the end of a line."""
    while cells and cells[-1] == "":
        cells = cells[:-1]
    return cells


#: header names of a row-index column (pandas writes the first; the others are its usual names)
_INDEX_NAMES = ("", "unnamed: 0", "index")


def _is_index_column(header: list[str], rows: list[list[str]]) -> bool:
    """Whether the first column is a written-out row index: its header cell is blank or an
    index name, the header is one cell short of the rows or names it, and its values count up
    by one from 0 or 1."""
    name = header[0].strip().lower()
    named = [c for c in header if c.strip()]
    if name not in _INDEX_NAMES or len(rows[0]) != len(named) + (name == ""):
        return False
    try:
        first = np.array([float(r[0]) for r in rows])
    except ValueError:
        return False
    return len(first) > 1 and first[0] in (0.0, 1.0) and bool(np.all(np.diff(first) == 1.0))


def _read(name: str, ext: str, key: str | None) -> np.ndarray:
    if is_idx_path(name):
        return read_idx(name)
    if ext == ".npy":
        return np.load(name, allow_pickle=False)
    if ext == ".npz":
        if not zipfile.is_zipfile(name):
            raise ValueError("not a valid .npz file (a .npz is a zip archive of .npy arrays)")
        with np.load(name, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if not keys:
                raise ValueError("the archive holds no arrays")
            if key is not None and key not in keys:
                raise ValueError(f"no array named '{key}' (arrays: {', '.join(keys)})")
            arr = npz[key if key is not None else keys[0]]
            if key is None and len(keys) > 1 and arr.ndim not in (2, 3, 4):
                raise ValueError(f"its first array '{keys[0]}' has shape {arr.shape}, not rows; name the data array "
                                 f"with --key (Python: key=) (arrays: {', '.join(keys)})")
            return arr
    if ext in (".csv", ".txt", ".tsv"):
        return _read_csv(name)
    raise ValueError(f"unsupported extension '{ext}'; use .npy, .npz, .csv or an IDX file (*-idx3-ubyte[.gz])")


def load_array(path: str, key: str | None = None) -> np.ndarray:
    """Read ``path`` into a validated finite float32 array of shape ``(n, D)``, ``(n, H, W)`` or
    ``(n, C, H, W)``.

    uint8 sources (MNIST's IDX files, 8-bit images saved with numpy) are image intensities and
    come back divided by 255, i.e. in [0, 1]; every other type keeps its values. A 4-D array
    whose last axis holds 1, 3 or 4 entries and whose second does not is channels-last
    ``(n, H, W, C)`` and is transposed to ``(n, C, H, W)``.

    Raises ValueError ("<path>: <problem>") for a missing or unreadable file, an unknown
    extension, a missing ``key``, a corrupt or truncated IDX file, non-numeric entries, NaN/inf,
    fewer than 2 rows, or a shape other than 2-D to 4-D.
    """
    name = os.fspath(path)
    why = not_a_file(name)  # a FIFO or device would block or never end
    if why is not None:
        raise ValueError(f"{name}: {why}" + ("" if why == "no such file" else ", expected a .npy, .npz, .csv or IDX file"))
    ext = os.path.splitext(name)[1].lower()
    if key is not None and ext != ".npz":
        raise ValueError(f"{name}: a key ('{key}') names an array of a .npz file; this is a {ext or 'suffix-less'} file")
    try:
        arr = _read(name, ext, key)
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith(name + ": "):  # read_idx names the file already
            raise ValueError(msg) from None
        if "allow_pickle" in msg or "Object arrays" in msg:
            msg = "holds Python objects (pickled data is never loaded); save a numeric array"
        elif "cannot reshape" in msg or "header" in msg.lower() or "magic" in msg.lower():
            msg = f"not a valid {ext} file ({msg})"
        raise ValueError(f"{name}: {msg}") from None
    except (OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: cannot be read as a {ext} file ({type(exc).__name__}: {exc})") from None
    return _as_rows(arr, name)


def _as_rows(arr, name: str) -> np.ndarray:
    """A validated float32 array of 2-D to 4-D rows; uint8 scaled to [0, 1]."""
    arr = np.asarray(arr)
    if not 2 <= arr.ndim <= 4:
        raise ValueError(f"{name}: expected a 2-D to 4-D array ((n, D), (n, H, W) or (n, C, H, W)), "
                         f"got shape {arr.shape}")
    if arr.ndim == 4 and arr.shape[-1] in _CHANNELS and arr.shape[1] not in _CHANNELS:
        arr = arr.transpose(0, 3, 1, 2)
    scale = 255.0 if arr.dtype == np.uint8 else None
    flat = check_array(arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:]))), name=name, ndim=2, min_rows=2)
    flat = flat.astype(np.float32) / np.float32(scale) if scale else flat.astype(np.float32, copy=False)
    return flat.reshape(arr.shape)


def to_flat(arr, data_shape=None, name: str = "data") -> tuple[np.ndarray, tuple[int, ...]]:
    """Flat float32 rows ``(n, D)`` and their ``data_shape`` from rows of any supported shape.

    ``(n, D)`` gives ``(D,)``, ``(n, H, W)`` gives ``(1, H, W)``, ``(n, C, H, W)`` gives
    ``(C, H, W)``. With ``data_shape`` (what the caller expects) the rows must have that shape
    or be flat rows of its size; a wrong image size or channel count is a ValueError line.
    """
    a = np.asarray(arr) if not hasattr(arr, "detach") else arr.detach().cpu().numpy()
    if data_shape is None:
        if not 2 <= a.ndim <= 4:
            raise ValueError(f"{name}: expected a 2-D to 4-D array ((n, D), (n, H, W) or (n, C, H, W)), "
                             f"got shape {a.shape}")
        data_shape = a.shape[1:]
    shape = check_data_shape(data_shape)
    return check_array(a, name=name, min_rows=1, data_shape=shape).astype(np.float32, copy=False), shape
