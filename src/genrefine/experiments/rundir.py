"""The output directory of one run: locked, recorded, and replaced all at once.

``with RunDirectory(out, record) as run:`` owns ``out`` for the life of the run:

- **Refused before any work** when ``out`` is empty, a file, not creatable or not writable,
  in use by another live run (an exclusive ``flock`` on ``OUT/.genrefine.lock``; the kernel
  drops it when the process dies, so a killed run never leaves a stale lock), or holding files
  that no genrefine run made (a previous run's outputs are recognised by ``OUT/run.json``).
- **Recorded**: ``OUT/run.json`` holds the ``record`` of the run that last used the directory
  (data fingerprint, options, version: what the training checkpoints belong to, checked by
  ``resume=True``) and the manifest of the committed outputs with the record that made them.
- **Only its own files are removed**: the old outputs named in run.json's manifest, and
  ``OUT/checkpoints`` when run.json says a genrefine run created it (a non-resume rerun
  starts its checkpoints afresh).
- **All at once**: the caller writes its outputs into ``run.staging`` (a hidden directory
  inside ``OUT``, so on the same file system even when ``OUT`` is a mount point) and calls
  ``run.commit()``. Leaving the block without a commit (an exception, Ctrl-C) removes the
  staging directory and leaves the old outputs as they were.

The commit protocol (``metrics.json`` is the "complete" marker)::

    1. fsync the staged files; make an aside directory in OUT
    2. move the old metrics.json aside          old run now reads as incomplete; a crash
                                                here is rolled back (metrics.json moved back)
    3. rewrite run.json with the new manifest    THE COMMIT POINT (one atomic rename);
       and a "pending" journal                   from here a crash is rolled forward
    4. move the other old outputs aside
    5. move the new outputs in, metrics.json last
    6. rewrite run.json without "pending"; delete the aside files the old manifest lists

so whenever ``OUT/metrics.json`` exists, every output in ``OUT`` and run.json's manifest belong
to the run that wrote it: never new samples beside an old marker. A run that dies between
steps 2 and 6 leaves a journal; the next :class:`RunDirectory` entered on ``OUT`` (or the
same one's exit, on Ctrl-C) finishes or undoes it before anything else, so ``OUT`` then
holds the old run or the new one, entire.
"""

from __future__ import annotations

import importlib.metadata
import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings

from genrefine.checkpoint import usual_mode

try:
    import fcntl
except ImportError:  # Windows: byte-range lock instead of flock
    fcntl = None

LOCK = ".genrefine.lock"
LEDGER = "run.json"
CHECKPOINTS = "checkpoints"
MARKER = "metrics.json"
STAGING_PREFIX = ".genrefine-staging-"
ASIDE_PREFIX = ".genrefine-aside-"
TMP_PREFIX = ".genrefine-tmp-"
TAG = ".genrefine-temporary"  # file inside staging/aside directories: a genrefine run made them
FORMAT = "genrefine-run"
FORMAT_VERSION = 1


def fingerprint(array, chunk_bytes: int = 1 << 24) -> str:
    """SHA-256 (hex) of an array's dtype, shape and bytes in C order, read in chunks of about
    ``chunk_bytes`` along the first axis, so a large array (or a memory-mapped ``.npy``) is
    never copied whole. numpy arrays and torch tensors of equal dtype and values agree."""
    import numpy as np  # here, so the run directory itself imports in milliseconds

    if type(array).__module__.split(".")[0] == "torch":
        return _tensor_fingerprint(array, chunk_bytes)
    a = np.asarray(array)
    if a.dtype.hasobject:
        raise TypeError(f"fingerprint needs a numeric array, got dtype {a.dtype}")
    a = a.reshape(1, *a.shape) if a.ndim == 0 else a
    h = hashlib.sha256(f"{a.dtype.str}|{tuple(a.shape if a.ndim else ())}|".encode())
    rows = max(1, chunk_bytes // max(1, a[:1].nbytes))
    for i in range(0, len(a), rows):
        h.update(memoryview(np.ascontiguousarray(a[i:i + rows])).cast("B"))
    return h.hexdigest()


def _tensor_fingerprint(t, chunk_bytes: int) -> str:
    import torch

    t = t.detach()
    try:
        dtype = t[:0].cpu().numpy().dtype.str if t.ndim else t.reshape(1)[:0].cpu().numpy().dtype.str
    except TypeError:  # no numpy twin (bfloat16)
        dtype = str(t.dtype)
    shape = tuple(t.shape)
    t = t.reshape(1, *t.shape) if t.ndim == 0 else t
    h = hashlib.sha256(f"{dtype}|{shape if shape else (1,)}|".encode())
    rows = max(1, chunk_bytes // max(1, t[:1].numel() * t.element_size()))
    for i in range(0, len(t), rows):
        h.update(t[i:i + rows].cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def make_record(data, options: dict) -> dict:
    """The record of a run: ``{"data": fingerprints, "options": options, "version": ...}``;
    ``data`` is one array or a dict of named arrays (e.g. the train and held-out splits)."""
    try:  # the installed distribution's version (the package itself sits above this layer)
        version = importlib.metadata.version("genrefine")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    prints = {k: fingerprint(v) for k, v in data.items()} if isinstance(data, dict) else fingerprint(data)
    return {"data": prints, "options": options, "version": version}


class RunDirectory:
    """Own the output directory ``out`` for one run (see the module docstring).

    Args:
        out: the directory (created with its parents if missing).
        record: JSON-able dict saying what produced the run (:func:`make_record`).
        resume: continue the run whose checkpoints are in ``out``; refused when run.json's
            record differs from ``record`` in any key but those in ``ignore_on_resume``.

    Attributes (inside the ``with`` block): ``path`` (absolute ``out``), ``staging`` (write
    the outputs here), ``checkpoints`` (created on first use), ``resumed`` (a matching record
    was found), ``manifest`` (after :meth:`commit`, the committed files).

    Example:
        >>> with RunDirectory("runs/a", make_record(x, {"epochs": 10})) as run:
        ...     train(checkpoint=os.path.join(run.checkpoints, "base"))
        ...     np.save(os.path.join(run.staging, "samples.npy"), s)
        ...     write_metrics(os.path.join(run.staging, "metrics.json"))
        ...     run.commit()
    """

    def __init__(self, out, record: dict, resume: bool = False, ignore_on_resume=("version",)):
        if not isinstance(out, (str, os.PathLike)):
            raise TypeError(f"out must be a path, got {type(out).__name__}")
        if not isinstance(record, dict):
            raise TypeError(f"record must be a dict, got {type(record).__name__}")
        try:
            self.record = json.loads(json.dumps(record))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"record must be JSON-serialisable ({exc})") from None
        self.out = os.fspath(out)
        self.resume = bool(resume)
        self.ignore_on_resume = tuple(ignore_on_resume)
        self.path = self.staging = None
        self.resumed = False
        self.manifest: list[str] | None = None
        self._fd = None
        self._created_out = False
        self._ledger: dict | None = None
        self._pending = False
        self._committed = False
        self._resumed_ledger: dict | None = None

    # ---- entry and exit -------------------------------------------------------------------
    def __enter__(self) -> "RunDirectory":
        self.path = prepare_out(self.out)
        self._created_out = not os.path.exists(self.path)
        if self._created_out:
            make_out(self.out, self.path)
        lock_existed = os.path.lexists(os.path.join(self.path, LOCK))
        self._fd = lock_directory(self.out, self.path)
        try:
            self._open()
        except BaseException:  # refused: leave the directory as it was found
            if self.staging and os.path.isdir(self.staging):
                _remove_tree(self.staging)
            if self._created_out:
                _remove_if_unused(self.path, True)
            elif not lock_existed:
                os.unlink(os.path.join(self.path, LOCK))
            self._release()
            raise
        return self

    def _open(self) -> None:
        old = _read_ledger(self.out, self.path)
        if old and old.get("pending"):
            _roll_forward(self.path, old, old["pending"])
            old = _read_ledger(self.out, self.path)
        _clean_leftovers(self.path, old)
        foreign = _foreign_entries(self.path, old)
        if foreign:
            hint = (" (an output of an older genrefine without run.json?)"
                    if old is None and MARKER in foreign else "")
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ValueError(f"{self.out}: holds files genrefine did not make ({shown}){hint}; "
                             "choose an empty or new directory, or move them away")
        if self.resume and old is not None:
            diff = _differences(old.get("record", {}), self.record, self.ignore_on_resume)
            if diff:
                raise ValueError(f"{self.out}: cannot resume: the run there was made with different "
                                 f"{', '.join(diff)}; run without resume to start over, or choose another directory")
            self.resumed = True
            self._resumed_ledger = old  # put back if this run fails: its checkpoints are still that run's
        ckpt = os.path.join(self.path, CHECKPOINTS)
        if not self.resume and os.path.lexists(ckpt):  # claimed by run.json, or _foreign_entries refused it
            _check_checkpoint_files(self.out, ckpt)
            if os.listdir(ckpt):
                sys.stderr.write(f"{self.out}: starting over; the earlier run's training checkpoints there are "
                                 "discarded (--resume continues that run instead)\n")
            _remove_tree(ckpt)
        outputs = old["outputs"] if old else {"record": None, "files": []}
        self._ledger = {"format": FORMAT, "format_version": FORMAT_VERSION, "record": self.record,
                        "pid": os.getpid(), "started": _now(), "checkpoints": "created", "outputs": outputs,
                        "committed": old.get("committed") if old else None}  # when the standing outputs were
        _write_json(os.path.join(self.path, LEDGER), self._ledger)
        self.staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.path)
        usual_mode(self.staging)
        _write_json(os.path.join(self.staging, TAG), {"kind": "staging"}, durable=False)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self._pending and not self._committed:  # interrupted inside commit: finish it
                try:
                    _roll_forward(self.path, self._ledger, self._ledger["pending"])
                    self._committed = True
                except Exception:
                    pass  # the journal stays; the next run on OUT completes it
            elif not self._committed and self.staging:
                _remove_tree(self.staging)
                if self._resumed_ledger is not None:  # a failed resume leaves run.json as it found it
                    _write_json(os.path.join(self.path, LEDGER), self._resumed_ledger)
            if not self._committed:
                _remove_if_unused(self.path, self._created_out)
        finally:
            self._release()
        return False

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def checkpoints(self) -> str:
        """``OUT/checkpoints`` (created on first use; run.json records it as genrefine's)."""
        self._require_open()
        d = os.path.join(self.path, CHECKPOINTS)
        os.makedirs(d, exist_ok=True)
        return d

    def _require_open(self) -> None:
        if self._fd is None:
            raise RuntimeError("RunDirectory is used outside its 'with' block")

    # ---- commit -------------------------------------------------------------------------
    def commit(self) -> list[str]:
        """Swap the staged outputs into ``OUT`` (protocol in the module docstring); returns
        the committed manifest (relative paths, directories ending in '/')."""
        self._require_open()
        if self._committed or self._pending:
            raise RuntimeError("commit() was already called for this run")
        files = _walk(self.staging)
        new_entries = sorted({f.split("/")[0] for f in files})
        for e in new_entries:
            if e in (LEDGER, LOCK, CHECKPOINTS) or e.startswith(".genrefine-"):
                raise ValueError(f"staging holds '{e}', a name the run directory reserves for itself")
        old_files = self._ledger["outputs"]["files"]
        old_entries = {f.split("/")[0] for f in old_files}
        for e in new_entries:
            if e not in old_entries and os.path.lexists(os.path.join(self.path, e)):
                raise ValueError(f"{self.out}: '{e}' appeared there during the run; move it away and commit again")
        _fsync_tree(self.staging)
        aside = tempfile.mkdtemp(prefix=f"{ASIDE_PREFIX}{os.getpid()}-", dir=self.path)
        pending = None
        try:
            _write_json(os.path.join(aside, TAG), {"kind": "aside", "files": old_files}, durable=False)
            if os.path.lexists(os.path.join(self.path, MARKER)):  # step 2: the old run stops claiming completeness
                os.replace(os.path.join(self.path, MARKER), os.path.join(aside, MARKER))
                _fsync_dir(self.path)
            pending = {"staging": os.path.basename(self.staging), "aside": os.path.basename(aside),
                       "old_files": old_files, "new_entries": new_entries}
            ledger = {**self._ledger, "outputs": {"record": self.record, "files": files},
                      "committed": _now(), "pending": pending}
            _write_json(os.path.join(self.path, LEDGER), ledger)  # step 3: the commit point
        except BaseException:
            on_disk = _read_ledger(self.out, self.path)
            # interrupted just past the commit point: the new run stands, to be rolled forward
            if pending is not None and on_disk and on_disk.get("pending") == pending:
                self._ledger, self._pending = on_disk, True
            else:
                _undo_aside(self.path, aside, self._ledger)
            raise
        self._ledger, self._pending = ledger, True
        self._ledger = _roll_forward(self.path, self._ledger, pending)
        self._committed = True
        self.manifest = files
        return files


# ---- the protocol's pieces -------------------------------------------------------------------
def _roll_forward(path: str, ledger: dict, pending: dict) -> dict:
    """Steps 4-6 of the commit; idempotent, so a crash at any point is finished by rerunning it."""
    staging = os.path.join(path, pending["staging"])
    aside = os.path.join(path, pending["aside"])
    new_entries = list(pending["new_entries"])
    os.makedirs(aside, exist_ok=True)
    for e in sorted({f.split("/")[0] for f in pending["old_files"]}):
        now_new = e in new_entries and not os.path.lexists(os.path.join(staging, e))
        src = os.path.join(path, e)
        if os.path.lexists(src) and not now_new and not os.path.lexists(os.path.join(aside, e)):
            os.replace(src, os.path.join(aside, e))
    for e in sorted(new_entries, key=lambda e: e == MARKER):  # the marker last
        if os.path.lexists(os.path.join(staging, e)):
            os.replace(os.path.join(staging, e), os.path.join(path, e))
    _fsync_dir(path)
    ledger = {k: v for k, v in ledger.items() if k != "pending"}
    _write_json(os.path.join(path, LEDGER), ledger)
    _discard_aside(path, aside, pending["old_files"])
    if os.path.isdir(staging):
        _remove_tree(staging)
    return ledger


def _clean_leftovers(path: str, ledger: dict | None) -> None:
    """Remove what dead runs left: their staging directories, asides of commits that never
    reached the commit point (their metrics.json moved back first) and temporary files."""
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if name.startswith(TMP_PREFIX) and os.path.isfile(p) and not os.path.islink(p):
            os.unlink(p)
        elif not (name.startswith((STAGING_PREFIX, ASIDE_PREFIX)) and _tagged(p)):
            continue
        elif name.startswith(STAGING_PREFIX):
            _remove_tree(p)
        else:
            _undo_aside(path, p, ledger)


def _undo_aside(path: str, aside: str, ledger: dict | None) -> None:
    """Roll back an aside directory whose commit never reached its commit point: the old
    metrics.json goes back when run.json (still the old one) lists it. After the commit point
    run.json lists the new outputs, so an old marker is never put beside them."""
    marker = os.path.join(aside, MARKER)
    listed = ledger is not None and MARKER in ledger["outputs"]["files"]
    if listed and os.path.lexists(marker) and not os.path.lexists(os.path.join(path, MARKER)):
        os.replace(marker, os.path.join(path, MARKER))
        _fsync_dir(path)
    _discard_aside(path, aside, _read_tag(aside).get("files", []))


def _discard_aside(path: str, aside: str, listed: list[str]) -> None:
    """Delete the listed old outputs from ``aside``; anything else found there (a user's file
    dropped among the old outputs) is kept in a visible directory, with a warning."""
    if not os.path.isdir(aside):
        return
    for rel in sorted((f for f in listed if not f.endswith("/")), reverse=True):
        p = os.path.join(aside, rel)
        if os.path.lexists(p) and (os.path.islink(p) or not os.path.isdir(p)):
            os.unlink(p)
    for root, dirs, files in os.walk(aside, topdown=False):
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p) and not os.listdir(p):
                os.rmdir(p)
    for name in os.listdir(aside):  # the tag, or what was to become it
        if name == TAG or name.startswith(TMP_PREFIX):
            os.unlink(os.path.join(aside, name))
    try:
        os.rmdir(aside)
    except OSError:
        kept = os.path.join(path, "kept-by-genrefine-" + _now().replace(":", ""))
        os.replace(aside, kept)
        warnings.warn(f"{path}: files genrefine did not make were found among the old outputs; kept in {kept}",
                      stacklevel=3)


def _check_checkpoint_files(out: str, ckpt: str) -> None:
    """Refuse to clear ``OUT/checkpoints`` when it holds anything but training checkpoints
    (``NAME.safetensors``, ``NAME.json`` and their ``.tmp-`` files): those are not genrefine's."""
    if not os.path.isdir(ckpt) or os.path.islink(ckpt):
        raise ValueError(f"{out}: '{CHECKPOINTS}' is not a directory genrefine made; move it away")
    other = sorted(e.name for e in os.scandir(ckpt)
                   if not (e.is_file(follow_symlinks=False) and e.name.endswith((".safetensors", ".json"))))
    if other:
        raise ValueError(f"{out}: {CHECKPOINTS}/ holds files genrefine did not make ({', '.join(other[:3])}); "
                         "move them away, or resume the run")


def _foreign_entries(path: str, ledger: dict | None) -> list[str]:
    """Paths in ``path`` (relative) that neither run.json's manifest nor the run directory's
    own bookkeeping accounts for."""
    allowed = set(ledger["outputs"]["files"]) if ledger else set()
    own = {LOCK}
    if ledger:
        own |= {LEDGER, CHECKPOINTS} if ledger.get("checkpoints") == "created" else {LEDGER}
    found = []
    for root, dirs, files in os.walk(path):
        rel_root = os.path.relpath(root, path).replace(os.sep, "/")
        rel_root = "" if rel_root == "." else rel_root + "/"
        keep = []
        for d in sorted(dirs):
            rel = rel_root + d
            if (rel_root == "" and d in own) or (os.path.islink(os.path.join(root, d)) and rel in allowed):
                continue
            if rel + "/" in allowed:
                keep.append(d)
            else:
                found.append(rel + ("" if os.path.islink(os.path.join(root, d)) else "/"))
        dirs[:] = keep
        for f in sorted(files):
            rel = rel_root + f
            if not ((rel_root == "" and f in own) or rel in allowed):
                found.append(rel)
    return found


def _differences(old: dict, new: dict, ignore, prefix: str = "") -> list[str]:
    """Keys (dotted for nested dicts) whose values differ between two records."""
    out = []
    for k in sorted(set(old) | set(new)):
        if not prefix and k in ignore:
            continue
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, (), f"{prefix}{k}.")
        elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            out.append(f"{prefix}{k}")
    return out


# ---- file-system helpers (shared with the sampling directories of experiments/shards.py) ------
def prepare_out(out: str) -> str:
    """The absolute path of output directory ``out``; refused when empty or a file."""
    if not out.strip():
        raise ValueError("out must name a directory, got an empty path")
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{out}: exists and is not a directory")
    return path


def make_out(out: str, path: str) -> None:
    """Create the output directory (and its parents) if it is missing; one line when it cannot be."""
    try:
        os.makedirs(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise ValueError(f"{out}: exists and is not a directory") from None
    except OSError as exc:
        raise ValueError(f"{out}: cannot create the output directory ({exc.strerror or exc})") from None


def lock_directory(out: str, path: str) -> int:
    """An exclusive lock on ``OUT/.genrefine.lock`` (its fd); refused at once if held."""
    lock = os.path.join(path, LOCK)
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ValueError(f"{out}: not writable ({exc.strerror or exc})") from None
        try:
            _flock(fd)
        except OSError:
            os.lseek(fd, 0, os.SEEK_SET)
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(f"{out} is in use by another genrefine run (pid {pid})") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its last owner removed while we opened it
            if not os.access(path, os.W_OK | os.X_OK):
                os.close(fd)
                raise ValueError(f"{out}: not writable (permission denied)")
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid():<20}\n".encode())  # fixed width: overwrites any older pid
            return fd
        os.close(fd)
    raise ValueError(f"{out}: could not take its lock (another run keeps replacing it)")


def _flock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _read_ledger(out: str, path: str) -> dict | None:
    p = os.path.join(path, LEDGER)
    if not os.path.lexists(p):
        return None
    try:
        with open(p) as fh:
            led = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{out}: {LEDGER} is unreadable ({exc}); it is not a genrefine run directory") from None
    ok = (isinstance(led, dict) and led.get("format") == FORMAT and isinstance(led.get("record"), dict)
          and isinstance(led.get("outputs"), dict) and isinstance(led["outputs"].get("files"), list))
    if not ok:
        raise ValueError(f"{out}: {LEDGER} was not written by genrefine; choose another directory")
    return led


def _write_json(path: str, obj, durable: bool = True) -> None:
    """Write JSON to ``path`` via a temporary file and a rename; ``durable``: fsync the file
    before and the directory after (a tag need not be: without it the directory is empty)."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(d)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: str) -> None:
    """fsync every file and directory under ``root``, so a commit never publishes data that a
    power cut could still lose."""
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(d)


def _walk(root: str) -> list[str]:
    """Relative paths under ``root`` (directories end in '/'), without the tag file."""
    out = []
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root).replace(os.sep, "/")
        rel = "" if rel == "." else rel + "/"
        for x in dirs:
            out.append(rel + x + ("" if os.path.islink(os.path.join(d, x)) else "/"))
        out += [rel + f for f in files if not (rel == "" and f == TAG)]
    return sorted(out)


def _tagged(p: str) -> bool:
    """A staging or aside directory a genrefine run made: it carries the tag, or it died before
    the tag was in place (then it holds nothing but genrefine's temporary files)."""
    if not os.path.isdir(p) or os.path.islink(p):
        return False
    names = os.listdir(p)
    return TAG in names or all(n.startswith(TMP_PREFIX) for n in names)


def _read_tag(p: str) -> dict:
    try:
        with open(os.path.join(p, TAG)) as fh:
            tag = json.load(fh)
        return tag if isinstance(tag, dict) else {}
    except (OSError, ValueError):
        return {}


def _remove_tree(p: str) -> None:
    if os.path.islink(p) or not os.path.isdir(p):
        os.unlink(p)
    else:
        shutil.rmtree(p)


def _remove_if_unused(path: str, created: bool) -> None:
    """After a run that did not commit: drop an empty checkpoints directory, and the whole
    ``out`` when this run created it and nothing of value landed in it."""
    ckpt = os.path.join(path, CHECKPOINTS)
    if os.path.isdir(ckpt) and not os.path.islink(ckpt) and not os.listdir(ckpt):
        os.rmdir(ckpt)
    if created and set(os.listdir(path)) <= {LOCK, LEDGER}:
        for name in (LEDGER, LOCK):
            if os.path.lexists(os.path.join(path, name)):
                os.unlink(os.path.join(path, name))
        try:
            os.rmdir(path)
        except OSError:
            pass


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
