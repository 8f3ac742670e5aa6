"""Safe checkpoints: tensors in safetensors, everything else in JSON. Loading never runs code.

A saved generator is a directory with ``config.json`` (``{"family": ..., "config": ...}``,
nested for refined generators) and ``model.safetensors``. Files are written to a temporary
name and renamed, so an interrupted save leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import torch
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 1


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_npy(path: str, arr) -> None:
    """``numpy.save`` to a temporary name in the same directory, then rename."""
    import numpy as np

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".npy")
    os.close(fd)
    try:
        np.save(tmp, arr)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors ``save_file`` to a temporary name, then rename (tensors copied to CPU, contiguous)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def generator_spec(gen) -> dict:
    """``{"family", "config"}`` of a generator, nested for composite ones."""
    return {"family": gen.family, "config": gen.config()}


def build_generator(spec: dict):
    """Rebuild an (untrained) generator from :func:`generator_spec` output via the family registry."""
    from genrefine.generators.base import FAMILIES
    import genrefine.generators  # noqa: F401  (registers the built-in families:
    import genrefine.refine  # noqa: F401        base generators, refined generators
    import genrefine.samplers  # noqa: F401      and the refiners)

    fam = spec.get("family")
    if fam not in FAMILIES:
        raise ValueError(f"unknown generator family '{fam}' (known: {', '.join(sorted(FAMILIES))})")
    cls = FAMILIES[fam]
    return cls.from_config(spec["config"]) if hasattr(cls, "from_config") else cls(**spec["config"])


def save_generator(gen, path: str, extra: dict | None = None) -> str:
    """Save ``gen`` into directory ``path`` (created; replaced atomically if it exists)."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmpdir = tempfile.mkdtemp(dir=parent, prefix=".tmp-" + os.path.basename(path))
    try:
        meta = {"format_version": FORMAT_VERSION, **generator_spec(gen), "extra": extra or {}}
        with open(os.path.join(tmpdir, "config.json"), "w") as fh:
            json.dump(meta, fh, indent=2)
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in gen.state_dict().items()},
                  os.path.join(tmpdir, "model.safetensors"))
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


def load_generator(path: str, device: str | torch.device = "cpu", family: str | None = None):
    """Load a generator saved by :func:`save_generator`; ``family`` checks what was saved."""
    cfg_path = os.path.join(path, "config.json")
    w_path = os.path.join(path, "model.safetensors")
    if not os.path.isdir(path):
        raise ValueError(f"{path}: no saved model here (expected a directory with config.json and model.safetensors)")
    for p in (cfg_path, w_path):
        if not os.path.isfile(p):
            raise ValueError(f"{path}: missing {os.path.basename(p)}; not a complete genrefine checkpoint")
    try:
        with open(cfg_path) as fh:
            meta = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{cfg_path}: unreadable config ({exc})") from None
    if family is not None and meta.get("family") != family:
        raise ValueError(f"{path}: checkpoint holds a '{meta.get('family')}' generator, expected '{family}'")
    gen = build_generator(meta)
    try:
        state = load_file(w_path)
    except Exception as exc:
        raise ValueError(f"{w_path}: unreadable weights ({type(exc).__name__}: {exc})") from None
    try:
        gen.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{w_path}: weights do not match the saved config ({str(exc).splitlines()[0]})") from None
    return gen.to(device).freeze()


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
    os.makedirs(path, exist_ok=True)
    atomic_save_tensors(module.state_dict(), os.path.join(path, "model.safetensors"))
    atomic_write_text(os.path.join(path, "config.json"),
                      json.dumps({"format_version": FORMAT_VERSION, "kind": kind, "config": config}, indent=2))
    return path


def load_module(path: str, kind: str, cls, device: str | torch.device = "cpu"):
    """Load a module saved by :func:`save_module` as ``kind``: build ``cls(**config)``, load its
    weights, freeze it. Every failure is one ValueError line naming ``path``."""
    try:
        with open(os.path.join(path, "config.json")) as fh:
            meta = json.load(fh)
        state = load_file(os.path.join(path, "model.safetensors"))
    except Exception as exc:
        raise ValueError(f"{path}: not a readable {kind} checkpoint ({type(exc).__name__}: {exc})") from None
    if meta.get("kind") != kind:
        raise ValueError(f"{path}: checkpoint holds '{meta.get('kind', meta.get('family'))}', expected a {kind}")
    module = cls(**meta["config"])
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the saved config ({str(exc).splitlines()[0]})") from None
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(device).eval()


def load_classifier(path: str, device: str | torch.device = "cpu"):
    """Load a :class:`~genrefine.weights.DensityRatioClassifier` (``models/classifier``)."""
    from genrefine.weights.classifier import DensityRatioClassifier

    return load_module(path, "dctr_classifier", DensityRatioClassifier, device)


def load_critic(path: str, device: str | torch.device = "cpu"):
    """Load a :class:`~genrefine.generators.wgan.Critic` (``models/critic``, ``models/dot_critic``)."""
    from genrefine.generators.wgan import Critic

    return load_module(path, "critic", Critic, device)


def load_latent_importance(path: str, device: str | torch.device = "cpu"):
    """Load a :class:`~genrefine.weights.latent_importance.LatentImportanceNetwork` (``models/w_phi``)."""
    from genrefine.weights.latent_importance import LatentImportanceNetwork

    return load_module(path, "latent_importance", LatentImportanceNetwork, device)
