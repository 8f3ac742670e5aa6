"""The front door: what a user calls. Loading and saving generators and the trained pieces a
run writes (classifier, critic, latent importance network).

This is the top layer: it knows the model classes and the family registry, while
:mod:`genrefine.checkpoint` only reads and writes files.

Example:
    >>> save_generator(refined, "models/laser")
    >>> refined = load_generator("models/laser")                    # built-in families
    >>> refined = load_generator("models/mine", base=my_decoder)    # built on a user's model
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from genrefine.checkpoint import load_module, load_state, read_checkpoint
from genrefine.checkpoint import save_generator as _write_generator
from genrefine.data import load_flat
from genrefine.experiments.config import build_config
from genrefine.experiments.run import run_refinement
from genrefine.generators.adapters import NEEDS_BASE, as_generator
from genrefine.generators.base import FAMILIES, Generator, build_generator, spec_wraps_user_model
from genrefine.generators.critic import Critic
from genrefine.methods import RunContext, check_method, fit_methods
from genrefine.refine import SampledGenerator
from genrefine.usercode import is_simulator
from genrefine.report import Report, Score
from genrefine.settings import merge
from genrefine.validation import MIN_DATA_ROWS, check_array, check_seed, resolve_device
from genrefine.weights.classifier import RatioClassifier
from genrefine.weights.ensemble import CLASSIFIER_KINDS, ENSEMBLE_KIND, RatioEnsemble
from genrefine.weights.latent_importance import LatentImportanceNetwork
from genrefine.weights.omnifold import OmniFold


def save_generator(gen: Generator, path: str, extra: dict | None = None) -> str:
    """Save ``gen`` into directory ``path`` (replaced atomically if it exists): its family and
    config as JSON, its tensors as safetensors with their sha256. A generator built on a user's
    model stores that model's weights (a module) or nothing (a function), never its code."""
    if not isinstance(gen, Generator):
        raise TypeError(f"save_generator: expected a genrefine Generator, got {type(gen).__name__} "
                        "(wrap a model with as_generator first)")
    if isinstance(gen, SampledGenerator):
        gen.config()  # says why a sampler's generator cannot be saved
    if FAMILIES.get(gen.family) is not type(gen):
        raise ValueError(f"save_generator: {type(gen).__name__} is not a registered family "
                         "(decorate it with @register_family(name)) and could not be loaded back")
    return _write_generator(gen, path, extra)


def load_generator(path: str, device: str | torch.device = "cpu", family: str | None = None,
                   base: Any = None) -> Generator:
    """Load a generator saved by :func:`save_generator`, frozen, on ``device``.

    ``family`` checks what was saved. ``base`` is the user's model (an ``nn.Module``, a
    function, or a generator from :func:`~genrefine.generators.as_generator`) when the
    checkpoint was built on one, at any depth of refinement: a copy of a module gets the saved
    weights (shapes checked) and is frozen like the rest; the module itself is left as it is.
    Every failure is one ValueError line.
    """
    meta, state = read_checkpoint(path)
    if "family" not in meta:
        raise ValueError(f"{path}: checkpoint holds a '{meta.get('kind')}', not a generator")
    if family is not None and meta.get("family") != family:
        raise ValueError(f"{path}: checkpoint holds a '{meta.get('family')}' generator, expected '{family}'")
    wraps = spec_wraps_user_model(meta)
    if base is None and wraps:
        raise ValueError(f"{path}: {NEEDS_BASE}")
    if base is not None and not wraps:
        raise ValueError(f"{path}: base= was given, but this checkpoint holds no user's model (a '{meta['family']}' "
                         "generator); load it without base=")
    gen = build_generator(meta, base)
    load_state(gen, state, path)
    return gen.to(device).freeze()


def load_classifier(path: str, device: str | torch.device = "cpu") -> RatioClassifier:
    """Load a run's DCTR classifier (``models/classifier``) of whichever kind it was saved as:
    an MLP, a CNN, one on image codes, or an ensemble of them (``.weight(x)``, ``.log_weight(x)``)."""
    kind = read_checkpoint(path)[0].get("kind")
    if kind not in CLASSIFIER_KINDS and kind != ENSEMBLE_KIND:
        raise ValueError(f"{path}: checkpoint holds '{kind}', expected a DCTR classifier")
    return load_module(path, kind, CLASSIFIER_KINDS.get(kind, RatioEnsemble), device)


def load_critic(path: str, device: str | torch.device = "cpu") -> Critic:
    """Load a :class:`~genrefine.generators.critic.Critic` (``models/critic``, ``models/dot_critic``)."""
    return load_module(path, "critic", Critic, device)


def load_omnifold(path: str, device: str | torch.device = "cpu") -> OmniFold:
    """Load OmniFold's latent weights (``models/omnifold_weights``): ``.weight(z)``, ``.target(prior)``."""
    return load_module(path, "omnifold_weights", OmniFold, device)


def load_latent_importance(path: str, device: str | torch.device = "cpu") -> LatentImportanceNetwork:
    """Load a :class:`~genrefine.weights.latent_importance.LatentImportanceNetwork` (``models/w_phi``)."""
    return load_module(path, "latent_importance", LatentImportanceNetwork, device)


# --- the front door: refine a generator with one method, or compare several ---------------

def _as_base(generator, latent_dim=None, data_shape=None) -> Generator:
    """A :class:`Generator` as it is; a user's module or function through :func:`as_generator`
    (a plain function of two arguments ``f(z, rng)`` is a simulator with hidden randomness)."""
    if isinstance(generator, Generator):
        return generator
    return as_generator(generator, latent_dim=latent_dim, data_shape=data_shape, stochastic=is_simulator(generator))


def _flat_data(data, gen: Generator) -> np.ndarray:
    """``data`` (rows of any shape, or a file path) as flat float32 rows of the generator's shape."""
    shape = tuple(gen.data_shape)
    if isinstance(data, (str, os.PathLike)):
        rows = load_flat(str(data), data_shape=shape if len(shape) == 3 else None)[0]
    elif data is None or isinstance(data, (dict, set)):
        raise TypeError(f"data: expected an array of rows or a file path, got {type(data).__name__}")
    else:
        try:
            ndim = np.ndim(data)
        except ValueError:  # ragged rows: check_array names the problem
            ndim = 2
        rows = check_array(data, name="data", data_shape=shape if ndim > 2 else None)
        if rows.shape[1] != gen.data_dim:
            raise ValueError(f"data: rows have {rows.shape[1]} values but the generator makes {gen.data_dim} "
                             f"(data_shape {shape})")
    if len(rows) < MIN_DATA_ROWS:
        raise ValueError(f"data: needs at least {MIN_DATA_ROWS} rows (the weights hold some out to check "
                         f"themselves), got {len(rows)}")
    return rows.astype(np.float32)


def _method_list(methods) -> list[str]:
    """``methods`` (names, or one comma-separated string) as the run's list, ``"base"`` first."""
    try:
        items = methods.split(",") if isinstance(methods, str) else list(methods)
    except TypeError:
        raise TypeError(f"methods: expected method names, got {type(methods).__name__}") from None
    if not all(isinstance(m, str) for m in items):
        raise TypeError(f"methods: expected method names (strings), got {items!r:.80}")
    if not any(m.strip() for m in items):
        raise ValueError("methods: name at least one method (e.g. methods=['rejection']; ['base'] scores the base alone)")
    return ["base", *[m.strip() for m in items if m.strip() and m.strip() != "base"]]


def compare(generator, data, methods=("rejection", "laser"), *, latent_dim: int | None = None, data_shape=None,
            settings: dict | None = None, preset: str = "quick", holdout: float = 0.2, n_samples: int = 20_000,
            seed: int = 0, device: str = "cpu", progress: bool = True, out: str | None = None) -> Report:
    """Refine ``generator`` against ``data`` with every method in ``methods``, score them all
    on the same held-out truth with floors, rank them and name the one to use.

    ``generator`` is a :class:`Generator` or a user's model or function (wrapped by
    :func:`as_generator` with ``latent_dim`` and ``data_shape``); ``data`` rows of any shape or
    a file. A ``holdout`` share of the rows is never trained on: half is the truth every method
    is scored on, half an independent truth for the floors. ``settings`` (``{section: {param:
    value}}``) are checked against the preset before anything is trained; ``out`` writes the
    run directory as ``genrefine refine`` does.

    Example:
        >>> report = genrefine.compare(my_decoder, images, methods=["rejection", "sir-dctr"], latent_dim=2)
        >>> print(report.summary()); refined = report.generators.get(report.recommended)
    """
    seed = check_seed(seed)
    gen = _as_base(generator, latent_dim, data_shape)
    x = _flat_data(data, gen)
    res = run_refinement(x, methods=_method_list(methods), preset=preset, seed=seed, n_samples=n_samples,
                         device=device, out=out, holdout=holdout, base=gen, progress=progress, scoring="suite",
                         data_shape=tuple(gen.data_shape), settings=settings)
    return report_from_run(res, gen)


def report_from_run(res, base: Generator) -> Report:
    """The typed :class:`~genrefine.report.Report` of a finished run scored with ``"suite"``."""
    m = res.metrics
    rank = m["ranking"]
    scores = {meth: {k: Score.from_dict(v) for k, v in sc.items() if isinstance(v, dict) and "value" in v}
              for meth, sc in m["scores"].items()}
    gens = {"base": base, **{k: SampledGenerator(base, f, method=k) for k, f in res.samplers.items() if k in scores},
            **{k: v for k, v in res.models.items() if isinstance(v, Generator) and k in scores}}
    return Report(methods=list(scores), scores=scores, key=rank["key"], ranking=[r["method"] for r in rank["ranking"]],
                  recommended=rank["recommended"], ranking_detail=rank, generators=gens, samples=dict(res.samples),
                  diagnostics=m.get("diagnostics", {}), timings=m.get("timings_seconds", {}))


def refine(generator, data, method: str = "rejection", *, latent_dim: int | None = None, data_shape=None,
           settings: dict | None = None, preset: str = "quick", seed: int = 0, device: str = "cpu",
           progress: bool = True, **params) -> Generator:
    """Refine ``generator`` against ``data`` with one ``method`` and return the refined
    generator (itself a :class:`Generator`: sample it, score it, refine it again).

    ``params`` are the method's own settings (``refine(g, x, "laser", epochs=20)``), laid over
    the preset with ``settings`` and checked before anything is trained. A refiner (``laser``,
    ``laser-flow``) returns a saveable :class:`RefinedGenerator`; a sampler (``rejection``,
    ``hmc``, ``ddls``, ``sir``, ``latentrs``, ...) a :class:`~genrefine.refine.SampledGenerator`
    that runs the sampler at every draw. ``dctr`` gives weights, not a generator: use
    :func:`compare` or ``rejection``.
    """
    seed = check_seed(seed)
    gen = _as_base(generator, latent_dim, data_shape)
    x = _flat_data(data, gen)
    cls = check_method(gen, method)
    if cls.sampled_by is not None:
        raise ValueError(f"{cls.name} gives weighted samples, not a generator; use {cls.sampled_by} (the same "
                         "weights, sampled) or compare()")
    dev = resolve_device(device)
    if params:  # the method's own settings, checked like settings= (a misspelt key fails before training)
        settings = merge(settings or {}, {cls.name: params}) if isinstance(settings or {}, dict) else settings
    cfg = build_config(preset, None, "realnvp", settings=settings)
    torch.manual_seed(seed)
    np.random.seed(seed)
    gen = gen.to(dev).freeze()
    ctx = RunContext(gen, torch.as_tensor(x, device=dev), cfg, n_samples=cfg["evaluation"]["n"], device=dev,
                     progress=progress, seed=seed)
    result = fit_methods(ctx, [cls.name])[cls.name]
    if result.generator is not None:
        return result.generator
    if result.sampler_factory is not None:
        return SampledGenerator(gen, result.sampler_factory, method=cls.name)
    raise ValueError(f"{method} gave no generator")  # every method gives one, or names sampled_by
