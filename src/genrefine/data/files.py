"""Loading a user's data file with validation: ``.npy``, ``.npz`` (first array or ``key``),
``.csv`` / ``.txt`` with or without a header row. Every failure is one ValueError line
naming the file and the problem."""

from __future__ import annotations

import csv
import io
import os
import zipfile

import numpy as np

from genrefine.validation import check_array


def _read_csv(path: str) -> np.ndarray:
    with open(path, newline="") as fh:
        text = fh.read()
    if not text.strip():
        raise ValueError("the file is empty")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t ")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim, skipinitialspace=True)]
    rows = [[c.strip() for c in r if c.strip() != ""] for r in rows]
    rows = [r for r in rows if r]

    def numeric(row):
        try:
            [float(c) for c in row]
            return True
        except ValueError:
            return False

    if rows and not numeric(rows[0]):
        rows = rows[1:]  # a header row
    if not rows:
        raise ValueError("no data rows")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ValueError(f"row {i + 1} has {len(r)} columns, expected {width}")
        for j, c in enumerate(r):
            try:
                float(c)
            except ValueError:
                raise ValueError(f"row {i + 1}, column {j + 1}: '{c[:30]}' is not a number") from None
    return np.array(rows, dtype=np.float64)


def load_array(path: str, key: str | None = None) -> np.ndarray:
    """Read ``path`` into a validated finite float32 array of shape ``(n, d)``.

    Raises ValueError ("<path>: <problem>") for a missing or unreadable file, an unknown
    extension, a missing ``key``, non-numeric entries, NaN/inf, or a shape other than 2-D.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise ValueError(f"{name}: no such file")
    if os.path.isdir(name):
        raise ValueError(f"{name}: is a directory, expected a .npy, .npz or .csv file")
    ext = os.path.splitext(name)[1].lower()
    try:
        if ext == ".npy":
            arr = np.load(name, allow_pickle=False)
        elif ext == ".npz":
            with np.load(name, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if not keys:
                    raise ValueError("the archive holds no arrays")
                if key is not None and key not in keys:
                    raise ValueError(f"no array named '{key}' (arrays: {', '.join(keys)})")
                arr = npz[key if key is not None else keys[0]]
        elif ext in (".csv", ".txt", ".tsv"):
            arr = _read_csv(name)
        else:
            raise ValueError(f"unsupported extension '{ext}'; use .npy, .npz or .csv")
    except ValueError as exc:
        msg = str(exc)
        if "allow_pickle" in msg or "Object arrays" in msg:
            msg = "holds Python objects (pickled data is never loaded); save a numeric array"
        elif "cannot reshape" in msg or "header" in msg.lower() or "magic" in msg.lower():
            msg = f"not a valid {ext} file ({msg})"
        raise ValueError(f"{name}: {msg}") from None
    except (OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: cannot be read as a {ext} file ({type(exc).__name__}: {exc})") from None
    return check_array(arr, name=name, ndim=2, min_rows=2).astype(np.float32)
