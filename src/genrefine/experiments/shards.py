"""Streaming samples into shards: ``genrefine sample --n 100000000 --out DIR``.

Memory stays flat in ``n``: rows are drawn in seeded *blocks* of :data:`BLOCK` rows and written
into fixed-size shard files (``shard_00000.npy``, ...) as they fill. The samples are a function of
``(model, seed)`` alone: block ``b`` is always drawn from the streams seeded with
:func:`block_seed` ``(seed, b)``, so a different shard size cuts the same rows differently, and
an interrupted run that resumes draws exactly what the uninterrupted one would have.

``DIR/manifest.json`` records the request (``n``, seed, shard size, the model's hash, row shape),
the model's fingerprint (:func:`model_probe`) and every finished shard (rows, first row,
sha256); it is rewritten atomically after each shard, and ``complete`` turns true after the
last. A rerun with the same request and a model of the same fingerprint resumes after the
finished shards (their files are checked against the manifest); another request, another
model, or files in ``DIR`` that no sampling run made, are refused before anything is drawn.
``DIR`` is locked while a run writes it.

Under ``torchrun`` (a process group initialised, :func:`genrefine.distributed.init`) the ranks
share the work in rounds: in round ``j`` rank ``r`` writes shard ``j·W + r`` from its own block
seeds, and rank 0, which holds the lock, gathers the round's records into the manifest. The
rows are the same as one process would write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import torch
from tqdm.auto import tqdm

from genrefine import distributed
from genrefine.checkpoint import atomic_save_npy, atomic_write_text
from genrefine.experiments.rundir import LOCK, lock_directory, make_out, prepare_out
from genrefine.generators.base import Generator

#: rows per seeded block: the unit of randomness (a shard of another size cuts the same rows)
BLOCK = 65_536
#: default rows per shard file: 16 blocks (about 8 MB for 2-D float32 rows)
SHARD_ROWS = 16 * BLOCK
MANIFEST = "manifest.json"
#: the model's fingerprint in the manifest: its output at this many fixed latent points (the
#: first PROBE_VALUES values of each), seeded with PROBE_SEED. A checkpoint built on a user's
#: function holds no weights to hash, so a resumed run checks what the model does instead.
PROBE_ROWS, PROBE_VALUES, PROBE_SEED = 8, 64, 20_261_207
#: relative tolerance of that check: far above the rounding of another thread count or device,
#: far below the change of another model
PROBE_RTOL = 1e-3


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block`` of a run seeded ``seed`` (a 63-bit hash of the pair)."""
    digest = hashlib.sha256(f"genrefine-block:{int(seed)}:{int(block)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _seed_streams(gen: Generator, seed: int) -> None:
    """Seed torch's stream and every stream the generator owns (a simulator's numpy stream)."""
    torch.manual_seed(seed)
    for module in gen.modules():
        if hasattr(module, "reseed"):
            module.reseed(seed)


@torch.no_grad()
def draw_block(gen: Generator, seed: int, block: int, n: int) -> np.ndarray:
    """Rows ``[block·BLOCK, block·BLOCK + rows)`` of the run seeded ``seed`` (``rows`` is the
    block's share of ``n``), float32, flat; refused when not finite."""
    rows = min(BLOCK, n - block * BLOCK)
    _seed_streams(gen, block_seed(seed, block))
    x = gen.sample(rows).reshape(rows, -1).float().cpu().numpy()
    if not np.isfinite(x).all():
        raise ValueError(f"block {block}: the generator produced NaN or inf samples; the shards written so far "
                         f"are kept and listed in {MANIFEST}")
    return x


@torch.no_grad()
def model_probe(gen: Generator) -> list[list[float]]:
    """The model's fingerprint: ``gen`` at :data:`PROBE_ROWS` latent points drawn from its prior
    with every stream seeded by :data:`PROBE_SEED` (so a simulator's noise is fixed too)."""
    _seed_streams(gen, PROBE_SEED)
    z = gen.prior.sample((PROBE_ROWS,))
    x = gen(z).reshape(PROBE_ROWS, -1)[:, :PROBE_VALUES]
    return x.float().cpu().tolist()


def _same_model(old: list, new: list) -> bool:
    old, new = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    scale = max(1.0, float(np.abs(old).max(initial=0.0)))
    return old.shape == new.shape and bool(np.allclose(new, old, rtol=PROBE_RTOL, atol=PROBE_RTOL * 1e-2 * scale))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _request(n: int, seed: int, shard_rows: int, model_hash: str, data_shape) -> dict:
    if isinstance(n, bool) or int(n) != n or int(n) < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(shard_rows, bool) or int(shard_rows) != shard_rows or int(shard_rows) < 1:
        raise ValueError(f"shard_rows must be an integer >= 1, got {shard_rows!r}")
    return {"n": int(n), "seed": int(seed), "shard_rows": int(shard_rows), "block_rows": BLOCK,
            "model_sha256": model_hash, "data_shape": [int(s) for s in data_shape]}


def check_out(out: str) -> None:
    """Refuse, before a model is loaded, a ``DIR`` that is a file or holds files that no sampling
    run made (the request itself is checked once the model is known)."""
    path = prepare_out(out)
    if os.path.isdir(path):
        entries = [e for e in os.listdir(path) if e != LOCK and not _leftover(path, e)]
        if entries and MANIFEST not in entries:
            raise ValueError(f"{out}: holds files that no sampling run made ({', '.join(sorted(entries)[:3])}); "
                             "name an empty or new directory")


#: bytes per sample value in a shard (float32 rows)
ROW_VALUE_BYTES = 4
#: the share of a disk's free space the shards may take
DISK_SHARE = 0.95


def check_disk(out: str, path: str, total_bytes: int) -> None:
    """Refuse, before anything is written, shards that cannot fit: ``total_bytes`` for the whole
    request, less the shard files already in ``path`` (a resumed run), against the free space of
    the disk that holds it."""
    have = 0
    if os.path.isdir(path):
        have = sum(os.path.getsize(os.path.join(path, e)) for e in os.listdir(path) if e.endswith(".npy"))
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    free = shutil.disk_usage(parent).free
    need = total_bytes - have
    if need > DISK_SHARE * free:
        raise ValueError(f"{out}: the samples need about {need / 2 ** 30:.3g} GiB more on disk and {free / 2 ** 30:.3g} "
                         "GiB are free there; lower -n or write to another disk")


def _leftover(path: str, name: str) -> bool:
    """Whether ``name`` is a temporary file of a killed run's shard or manifest write
    (``.tmp-*.npy`` / ``.tmp-*.json``, made only by such writes): it is not a finished file."""
    return name.startswith(".tmp-") and name.endswith((".npy", ".json")) and os.path.isfile(os.path.join(path, name))


def _remove_leftovers(path: str) -> None:
    for name in os.listdir(path):
        if _leftover(path, name):
            os.unlink(os.path.join(path, name))


def _finished(out: str, path: str, request: dict, probe: list) -> list[dict]:
    """The shards a previous run with the same request and the same model (``probe``, its
    fingerprint) finished (checked), or [] for a new DIR."""
    entries = sorted(e for e in os.listdir(path) if e != LOCK and not _leftover(path, e))
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.exists(manifest_path):
        if entries:
            raise ValueError(f"{out}: holds files that no sampling run made ({', '.join(entries[:3])}); "
                             "name an empty or new directory")
        return []
    try:
        manifest = json.loads(open(manifest_path).read())
        old = {k: manifest[k] for k in request}
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{out}: {MANIFEST} is not a sampling manifest; name an empty or new directory") from None
    if old != request:
        diff = ", ".join(f"{k} {old[k]} != {request[k]}" for k in request if old[k] != request[k])
        raise ValueError(f"{out}: holds samples of another request ({diff}); name another directory")
    if "probe" in manifest and not _same_model(manifest["probe"], probe):
        raise ValueError(f"{out}: holds samples of another model (the same latent points give other rows; was "
                         "another --base given?); name another directory")
    shards = list(manifest.get("shards", []))
    for s in shards:
        p = os.path.join(path, s["file"])
        if not os.path.exists(p) or _sha256(p) != s["sha256"]:
            raise ValueError(f"{out}: {s['file']} is missing or does not match {MANIFEST}; name another directory")
    return shards


def write_shards(gen: Generator, n: int, out: str, seed: int = 0, shard_rows: int = SHARD_ROWS,
                 model_hash: str = "", progress: bool = True) -> dict:
    """Draw ``n`` rows of ``gen`` into shard files in directory ``out`` (see the module
    docstring); returns the final manifest. ``model_hash`` identifies the model in the manifest
    (a resumed run must use the same one)."""
    request = _request(n, seed, shard_rows, model_hash, getattr(gen, "data_shape", (gen.data_dim,)))
    probe = model_probe(gen)
    rank, world = distributed.rank_and_size()
    path = prepare_out(out)
    check_disk(out, path, request["n"] * gen.data_dim * ROW_VALUE_BYTES)
    fd = None
    try:
        if rank == 0:  # one owner: the lock, the check of what is there, the manifest
            make_out(out, path)
            fd = lock_directory(out, path)
            _remove_leftovers(path)  # a killed run's half-written shard (the lock says no run writes now)
        shards = distributed.from_rank0(lambda: _finished(out, path, request, probe))
        n_shards = -(-request["n"] // request["shard_rows"])
        done = sum(s["rows"] for s in shards)
        bar = tqdm(total=request["n"], initial=done, desc="sampling", unit="rows",
                   disable=not progress or rank != 0)
        for first in range(len(shards), n_shards, world):
            k = first + rank
            mine = _write_shard(gen, request, k, path) if k < n_shards else None
            new = [r for r in distributed.gather(mine) if r is not None]
            shards += new
            if rank == 0:
                _write_manifest(path, request, shards, complete=len(shards) == n_shards, probe=probe)
            bar.update(sum(r["rows"] for r in new))
        bar.close()
        return _write_manifest(path, request, shards, complete=True, probe=probe) if rank == 0 else \
            {**request, "complete": True, "rows_written": sum(s["rows"] for s in shards), "shards": shards}
    finally:
        if fd is not None:
            os.close(fd)


def _write_shard(gen: Generator, request: dict, k: int, path: str) -> dict:
    """Shard ``k``: rows ``[k·S, min((k+1)·S, n))``, drawn block by block (a block cut by the
    shard's edge is drawn whole and sliced: the rows are the same as in any other cut)."""
    n, size = request["n"], request["shard_rows"]
    first, last = k * size, min((k + 1) * size, n)
    parts = []
    for b in range(first // BLOCK, (last - 1) // BLOCK + 1):
        x = draw_block(gen, request["seed"], b, n)
        lo, hi = max(first, b * BLOCK) - b * BLOCK, min(last, (b + 1) * BLOCK) - b * BLOCK
        parts.append(x[lo:hi])
    name = f"shard_{k:05d}.npy"
    atomic_save_npy(os.path.join(path, name), np.concatenate(parts))
    return {"file": name, "first_row": first, "rows": last - first, "sha256": _sha256(os.path.join(path, name))}


def _write_manifest(path: str, request: dict, shards: list[dict], complete: bool, probe: list) -> dict:
    manifest = {**request, "complete": bool(complete), "rows_written": sum(s["rows"] for s in shards),
                "shards": shards, "probe": probe}
    atomic_write_text(os.path.join(path, MANIFEST), json.dumps(manifest, indent=1))
    return manifest


def read_shards(out: str) -> np.ndarray:
    """Every row of a complete sampling directory, in order (for checks; it holds all in memory)."""
    manifest = json.loads(open(os.path.join(out, MANIFEST)).read())
    if not manifest.get("complete"):
        raise ValueError(f"{out}: the sampling run is not complete ({manifest.get('rows_written')} of "
                         f"{manifest.get('n')} rows)")
    return np.concatenate([np.load(os.path.join(out, s["file"])) for s in manifest["shards"]])
