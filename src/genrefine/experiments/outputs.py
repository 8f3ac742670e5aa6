"""Writing a run's results: samples, latents, models, figures, then ``metrics.json`` (last, so
its presence means the run is complete); every file written atomically. The run writes them
into its run directory's staging folder and commits them all at once
(:class:`~genrefine.experiments.rundir.RunDirectory`)."""

from __future__ import annotations

import json
import os

import numpy as np

from genrefine.checkpoint import atomic_save_npy, atomic_write_text, jsonable, save_generator, save_module
from genrefine.experiments.result import RefinementResult
from genrefine.generators.base import Generator
from genrefine.generators.critic import Critic
from genrefine.weights.classifier import RatioClassifier
from genrefine.weights.ensemble import classifier_kind
from genrefine.weights.omnifold import OmniFold
from genrefine.weights.discriminator import DiscriminatorRatio
from genrefine.weights.latent_importance import LatentImportanceNetwork


def write_outputs(res: RefinementResult, out: str) -> None:
    """``samples/<method>.npy``, ``latents/<method>.npy``, ``samples/<method>_weights.npy`` for
    weighted methods, ``models/<name>/``, ``figures/`` (those that fit the data's dimension,
    :func:`~genrefine.plotting.figures_for`; the base's own,
    :func:`~genrefine.family_figures.base_figures`), then ``metrics.json``."""
    from genrefine.family_figures import base_figures
    from genrefine.plotting import figures_for

    for sub in ("samples", "latents", "models", "figures"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for mth, x in res.samples.items():
        atomic_save_npy(os.path.join(out, "samples", f"{mth}.npy"), x.astype(np.float32))
        atomic_save_npy(os.path.join(out, "latents", f"{mth}.npy"), res.latents[mth].astype(np.float32))
    for mth, w in res.weights.items():
        atomic_save_npy(os.path.join(out, "samples", f"{mth}_weights.npy"), w.astype(np.float32))
    for name, model in res.models.items():
        save_model(model, os.path.join(out, "models", name))
    figures_for(res, os.path.join(out, "figures"), data_shape=getattr(res, "data_shape", None))
    base = res.models.get("base")
    if isinstance(base, Generator):
        history = res.metrics.get("diagnostics", {}).get("base", {}).get("history")
        base_figures(base, history, res.truth, getattr(res, "data_shape", None) or (res.truth.shape[1],),
                     os.path.join(out, "figures"))
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(jsonable(res.metrics), indent=2))


def save_model(model, path: str) -> None:
    """Save a generator, DCTR classifier (MLP or CNN), latent importance network, critic or OmniFold
    weights by its kind."""
    if isinstance(model, Generator):
        save_generator(model, path)
    elif isinstance(model, RatioClassifier):
        save_module(model, model.config(), path, kind=classifier_kind(model))
    elif isinstance(model, LatentImportanceNetwork):
        save_module(model, model.config(), path, kind="latent_importance")
    elif isinstance(model, DiscriminatorRatio):
        save_module(model.critic, model.critic.config(), path, kind="critic")
    elif isinstance(model, Critic):
        save_module(model, model.config(), path, kind="critic")
    elif isinstance(model, OmniFold):
        save_module(model, model.config(), path, kind="omnifold_weights")
