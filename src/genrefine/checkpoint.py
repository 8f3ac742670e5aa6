"""Safe checkpoint files: tensors in safetensors, everything else in JSON. Loading never runs code.

This is the file writer every model uses, and it knows no model classes: what to build from a
checkpoint is the caller's business (:mod:`genrefine.api` through the family registry of
:mod:`genrefine.generators.base`, or a class passed to :func:`load_module`).

A checkpoint is a directory with ``config.json`` and ``model.safetensors``. The JSON holds
``{"format_version", "family" | "kind", "config", "extra", "sha256", "nonfinite"}``: ``sha256``
is a digest of every tensor's name, dtype, shape and bytes, checked on load, and ``nonfinite``
names the tensors that held NaN or inf when saved (unset markers such as an unfitted
rejection bound); any other non-finite tensor is refused. Checkpoints of format 1 (no digest)
still load. Directories are written beside their target and swapped in, files are written to a
temporary name and renamed, so an interrupted save leaves the old checkpoint or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Callable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 2
CONFIG_FILE, TENSOR_FILE = "config.json", "model.safetensors"


def usual_mode(path: str) -> None:
    """Give a file or directory that ``tempfile`` made (modes 0600 / 0700) the mode an ordinary
    ``open`` or ``makedirs`` gives: 0666 / 0777 less the umask, so results are as readable as
    any other file the user makes."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)


def _atomic_file(path: str, suffix: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary name in ``path``'s directory, then rename it to ``path``."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=suffix)
        os.close(fd)
        write(tmp)
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # named by the file the user asked for, not the temporary one
            why = exc.strerror or str(exc)
            if "requested and" in str(exc) and "written" in str(exc):  # numpy's short write
                why = f"the device is full: only part of the file was written ({exc})"
            raise OSError(exc.errno, why, path) from None
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(text)

    _atomic_file(path, os.path.basename(path), write)


def atomic_save_npy(path: str, arr) -> None:
    """``numpy.save`` to a temporary name in the same directory, then rename."""
    import numpy as np

    _atomic_file(path, ".npy", lambda tmp: np.save(tmp, arr))


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors ``save_file`` to a temporary name, then rename (tensors copied to CPU, contiguous)."""
    cpu = _cpu_tensors(tensors)
    _atomic_file(path, ".safetensors", lambda tmp: save_file(cpu, tmp, metadata=metadata))


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _nonfinite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return sorted(k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))


def _check_replaceable(path: str) -> None:
    """A checkpoint replaces only an earlier checkpoint or an empty directory: one ValueError line
    for an existing file or a directory holding anything else (nothing the user made is removed)."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise ValueError(f"{path}: exists and is not a checkpoint directory; choose another path")
    entries = os.listdir(path)
    if entries and CONFIG_FILE not in entries:
        raise ValueError(f"{path}: a directory that holds other files, not a checkpoint; choose another path")


def write_checkpoint(path: str, meta: dict, tensors: dict[str, torch.Tensor]) -> str:
    """Write ``meta`` (JSON) and ``tensors`` as a checkpoint directory ``path``, replacing an old one
    atomically; the digest and the list of non-finite tensors are added to ``meta``."""
    path = os.path.abspath(path)
    _check_replaceable(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    cpu = _cpu_tensors(tensors)
    meta = {"format_version": FORMAT_VERSION, **meta, "sha256": tensor_digest(cpu), "nonfinite": _nonfinite(cpu)}
    tmpdir = tempfile.mkdtemp(dir=parent, prefix=".tmp-" + os.path.basename(path))
    try:
        usual_mode(tmpdir)
        with open(os.path.join(tmpdir, CONFIG_FILE), "w") as fh:
            json.dump(meta, fh, indent=2)
        save_file(cpu, os.path.join(tmpdir, TENSOR_FILE))
        if os.path.exists(path):
            old = path + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmpdir, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmpdir, path)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return path


def save_with_record(prefix: str, record: dict, tensors: dict[str, torch.Tensor], key: str,
                     digest: Callable[[dict[str, torch.Tensor]], str] = tensor_digest) -> None:
    """``<prefix>.safetensors`` holding ``tensors`` and, in its metadata under ``key``, ``record``
    (JSON) with the tensors' hash: one atomic file, so a crash never pairs new tensors with an
    old record. ``<prefix>.json`` repeats the record for people to read. Training checkpoints
    and finished estimators are kept this way; ``digest`` is the hash their files were first
    written with (training checkpoints have their own, so older ones still resume)."""
    cpu = _cpu_tensors(tensors)
    text = json.dumps({**record, "sha256": digest(cpu)})
    atomic_save_tensors(cpu, prefix + ".safetensors", metadata={key: text})
    atomic_write_text(prefix + ".json", text)


def load_with_record(prefix: str, key: str, what: str, device: str | torch.device = "cpu",
                     digest: Callable[[dict[str, torch.Tensor]], str] = tensor_digest
                     ) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(record, tensors)`` written by :func:`save_with_record`; a file written before the
    record moved into the tensor file has it in ``<prefix>.json`` and no hash. Every failure is
    one ValueError line naming the file and ``what`` it should be."""
    path = prefix + ".safetensors"
    try:
        with safe_open(path, framework="pt", device=str(device)) as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        if key in meta:
            record = json.loads(meta[key])
        else:
            with open(prefix + ".json") as fh:
                record = json.load(fh)
    except Exception as exc:  # truncated, overwritten or missing pieces
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: unreadable {what} ({msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: {what} lacks its record")
    if "sha256" in record and digest({k: v.cpu() for k, v in tensors.items()}) != record["sha256"]:
        raise ValueError(f"{path}: {what}'s tensors do not match their recorded hash (file altered)")
    return record, tensors


def _read_meta(path: str) -> dict:
    cfg_path = os.path.join(path, CONFIG_FILE)
    try:
        with open(cfg_path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{cfg_path}: unreadable config ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{cfg_path}: not a genrefine checkpoint config (expected an object with a 'config' object)")
    version = meta.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{cfg_path}: format_version {version!r} is not a checkpoint format")
    if version > FORMAT_VERSION:
        raise ValueError(f"{cfg_path}: written in checkpoint format {version} by a newer genrefine (this one reads "
                         f"up to {FORMAT_VERSION}); upgrade genrefine to load it")
    nonfinite = meta.get("nonfinite", [])
    if not isinstance(nonfinite, list) or not all(isinstance(k, str) for k in nonfinite):
        raise ValueError(f"{cfg_path}: 'nonfinite' must list tensor names, got {nonfinite!r}")
    return meta


def _check_tensors(path: str, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse tensors whose digest no longer matches, or that turned non-finite since saving
    (format 1 has no record: only wholly-NaN tensors, the unset marker, pass there)."""
    digest = meta.get("sha256")
    if digest is not None and digest != tensor_digest(tensors):
        raise ValueError(f"{path}: the weights no longer match the digest recorded when they were saved "
                         "(the file was changed or damaged)")
    allowed = set(meta.get("nonfinite", ()))
    for name in _nonfinite(tensors):
        if name not in allowed and not (digest is None and bool(torch.isnan(tensors[name]).all())):
            raise ValueError(f"{path}: tensor '{name}' holds NaN or inf values")


def read_checkpoint(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of a checkpoint directory written by :func:`write_checkpoint` (or by
    format 1), digest and finiteness checked. Every failure is one ValueError line naming ``path``."""
    if not os.path.isdir(path):
        raise ValueError(f"{path}: no saved model here (expected a directory with {CONFIG_FILE} and {TENSOR_FILE})")
    for name in (CONFIG_FILE, TENSOR_FILE):
        if not os.path.isfile(os.path.join(path, name)):
            raise ValueError(f"{path}: missing {name}; not a complete genrefine checkpoint")
    meta = _read_meta(path)
    w_path = os.path.join(path, TENSOR_FILE)
    try:
        tensors = load_file(w_path)
    except Exception as exc:
        raise ValueError(f"{w_path}: unreadable weights ({type(exc).__name__}: {exc})") from None
    _check_tensors(path, meta, tensors)
    return meta, tensors


def load_state(module: nn.Module, tensors: dict[str, torch.Tensor], path: str) -> None:
    """``module.load_state_dict(tensors, strict=True)``; a missing, extra or misshapen tensor is
    one ValueError line naming ``path``."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # the first line names the class, the next the first mismatch
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ValueError(f"{path}: weights do not match the saved config ({lines[min(1, len(lines) - 1)]})") from None


def save_generator(gen, path: str, extra: dict | None = None) -> str:
    """Save a generator into directory ``path``: its ``{"family", "config"}`` (nested for refined
    generators) and its state dict. Load it with :func:`genrefine.api.load_generator`."""
    return write_checkpoint(path, {"family": gen.family, "config": gen.config(), "extra": extra or {}}, gen.state_dict())


def module_state(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict]:
    """Flatten module and optimizer states into (tensors, json-able) for a training checkpoint."""
    tensors: dict[str, torch.Tensor] = {}
    info: dict = {"optimizers": {}}
    for name, m in modules.items():
        for k, v in m.state_dict().items():
            tensors[f"module.{name}.{k}"] = v
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        info["optimizers"][name] = {"param_groups": sd["param_groups"], "state_keys": {}}
        for idx, st in sd["state"].items():
            keys = []
            for k, v in st.items():
                t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
                tensors[f"opt.{name}.{idx}.{k}"] = t
                keys.append(k)
            info["optimizers"][name]["state_keys"][str(idx)] = keys
    return tensors, info


def restore_state(tensors: dict, info: dict, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Inverse of :func:`module_state`."""
    for name, m in modules.items():
        prefix = f"module.{name}."
        m.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, opt in optimizers.items():
        oi = info["optimizers"][name]
        state = {int(idx): {k: tensors[f"opt.{name}.{idx}.{k}"] for k in keys} for idx, keys in oi["state_keys"].items()}
        opt.load_state_dict({"state": state, "param_groups": oi["param_groups"]})


def save_module(module: nn.Module, config: dict, path: str, kind: str) -> str:
    """Save a non-generator module (e.g. a classifier) as ``config.json`` + ``model.safetensors``."""
    return write_checkpoint(path, {"kind": kind, "config": config}, module.state_dict())


def load_module(path: str, kind: str, cls: type[nn.Module], device: str | torch.device = "cpu") -> nn.Module:
    """Load a module saved by :func:`save_module` as ``kind``: build ``cls(**config)``, load its
    weights, freeze it. Every failure is one ValueError line naming ``path``."""
    meta, state = read_checkpoint(path)
    if meta.get("kind") != kind:
        raise ValueError(f"{path}: checkpoint holds '{meta.get('kind', meta.get('family'))}', expected a {kind}")
    try:
        module = cls(**meta["config"])
    except TypeError as exc:
        raise ValueError(f"{path}: the saved config does not fit a {kind} ({exc})") from None
    load_state(module, state, path)
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(device).eval()


def jsonable(obj):
    """``obj`` with numpy scalars and tensors as Python numbers and lists, non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
