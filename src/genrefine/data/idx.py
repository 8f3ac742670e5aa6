"""The IDX file format of the MNIST distribution: reading and writing, plain or gzip.

Layout (big-endian throughout; LeCun et al., "THE MNIST DATABASE", file formats section):

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions k
    4k bytes    the k sizes, each an unsigned 32-bit integer
    then        prod(sizes) values of the type, C order (last index fastest)

``t10k-images-idx3-ubyte`` is uint8 of shape (10000, 28, 28); ``t10k-labels-idx1-ubyte`` uint8
of shape (10000,). A name ending in ``.gz`` is read and written through gzip. A file whose
header is malformed, or whose length disagrees with its header (truncated or padded), is
refused with one ValueError line; its size is checked before anything of that size is allocated.

Example:
    >>> write_idx("tiny-idx3-ubyte.gz", np.zeros((2, 4, 4), np.uint8))
    >>> read_idx("tiny-idx3-ubyte.gz").shape
    (2, 4, 4)
"""

from __future__ import annotations

import gzip
import os
import re
import zlib

import numpy as np

# type code -> numpy dtype as stored (big-endian)
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str if dt.itemsize > 1 else dt.str: code for code, dt in IDX_TYPES.items()}
_IDX_NAME = re.compile(r"(idx\d+-[a-z0-9]+|\.idx)$", re.IGNORECASE)
_CHUNK = 1 << 20


def is_idx_path(path: str) -> bool:
    """Whether ``path`` names an IDX file: ``*-idx3-ubyte``, ``*.idx`` (either with ``.gz``)."""
    name = os.path.basename(os.fspath(path))
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return bool(_IDX_NAME.search(name))


def _open(path: str, mode: str):
    return gzip.open(path, mode) if os.fspath(path).lower().endswith(".gz") else open(path, mode)


def _read_exact(fh, n: int, what: str) -> bytes:
    """``n`` bytes, in chunks, so a lying header cannot make us allocate more than the file holds."""
    parts, got = [], 0
    while got < n:
        chunk = fh.read(min(_CHUNK, n - got))
        if not chunk:
            raise ValueError(f"truncated: {what} needs {n} bytes, the file ends after {got}")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file into an array of its stored shape and type (native byte order).

    Values are returned as stored (uint8 pixels stay 0-255). Raises ValueError
    ("<path>: <problem>") for a missing file, a bad magic number or type code, a zero
    dimension count, or a length that disagrees with the header.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise ValueError(f"{name}: no such file" if not os.path.exists(name) else f"{name}: not a regular file")
    try:
        with _open(name, "rb") as fh:
            head = _read_exact(fh, 4, "the IDX header")
            if head[:2] != b"\x00\x00":
                raise ValueError(f"not an IDX file (magic bytes {head[:2].hex()} instead of 0000)")
            code, k = head[2], head[3]
            if code not in IDX_TYPES:
                raise ValueError(f"unknown IDX type code 0x{code:02x} (known: 08, 09, 0b, 0c, 0d, 0e)")
            if k == 0:
                raise ValueError("IDX header declares 0 dimensions")
            dims = tuple(int(d) for d in np.frombuffer(_read_exact(fh, 4 * k, "the IDX dimensions"), ">u4"))
            dtype = IDX_TYPES[code]
            n_bytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
            if not name.lower().endswith(".gz"):
                size = os.path.getsize(name) - 4 - 4 * k
                if size != n_bytes:
                    raise ValueError(f"{'truncated' if size < n_bytes else 'corrupt'}: the header {dims} "
                                     f"needs {n_bytes} data bytes, the file holds {size}")
            body = _read_exact(fh, n_bytes, f"shape {dims}")
            if fh.read(1):
                raise ValueError(f"corrupt: data continues past the {n_bytes} bytes of shape {dims}")
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{name}: cannot be read as an IDX file ({type(exc).__name__}: {exc})") from None
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str, array) -> None:
    """Write ``array`` as an IDX file (gzip when ``path`` ends in ``.gz``; mtime 0, so the same
    array gives the same bytes). Types: uint8, int8, int16, int32, float32, float64.

    Raises ValueError for another dtype, a 0-d array, more than 255 dimensions or a size
    beyond 2^32 - 1.
    """
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=").str if arr.dtype.itemsize > 1 else arr.dtype.str
    if key not in _CODES:
        raise ValueError(f"write_idx: dtype {arr.dtype} has no IDX type (use uint8, int8, int16, int32, float32, float64)")
    if not 1 <= arr.ndim <= 255 or any(d >= 2 ** 32 for d in arr.shape):
        raise ValueError(f"write_idx: shape {arr.shape} cannot be stored (1-255 dimensions, each < 2^32)")
    code = _CODES[key]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    body = np.ascontiguousarray(arr, dtype=IDX_TYPES[code]).tobytes()
    name = os.fspath(path)
    if name.lower().endswith(".gz"):
        with open(name, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as fh:
            fh.write(header + body)
    else:
        with open(name, "wb") as fh:
            fh.write(header + body)
