"""The weight estimators a run shares between its methods, each built by one function.

- :func:`fit_dctr_classifier`: the post-hoc classifier (DCTR, LaSeR Sec. 3) between the data
  and a generator's samples, with the generated latents and their weights ``w(g(z))``;
- :func:`train_critic`: a WGAN-GP critic against the frozen base (when the base brings none);
- :func:`fit_w_phi`: the latent importance network (latent reweighting Eq. 6, Alg. 1);
- :func:`fit_critic_ratio`: the critic fine-tuned with BCE, whose odds are the density ratio of
  DRS, MH-GAN and SIR;
- :func:`fit_dot_critic`: the critic fine-tuned with the WGAN-GP loss for DOT (Appendix E);
- :func:`fit_omnifold`: OmniFold's latent weights ``ν(z)`` (LaSeR Sec. 3), a function of ``z``
  also for a generator with hidden randomness.

:class:`~genrefine.methods.context.RunContext` calls each once, on first request, and records
its seconds in ``ctx.timings`` and the fitted model in ``ctx.models``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from genrefine import distributed
from genrefine.checkpoint import jsonable, load_state, load_with_record, save_with_record
from genrefine.generators.base import Generator
from genrefine.generators.critic import Critic
from genrefine.samplers.rejection import RejectionPrior
from genrefine.weights.classifier import RatioClassifier, make_classifier
from genrefine.weights.discriminator import DiscriminatorRatio, fine_tune_critic
from genrefine.weights.ensemble import RatioEnsemble, classifier_kind
from genrefine.weights.feature_classifier import FeatureRatioClassifier
from genrefine.weights.latent_importance import LatentImportanceNetwork
from genrefine.weights.omnifold import OmniFold
from genrefine.weights.sharpening import POWERS as SHARPEN_POWERS
from genrefine.weights.sharpening import MAX_GENERATED_ROWS as SHARPEN_MAX_ROWS
from genrefine.weights.sharpening import QUANTILE as SHARPEN_QUANTILE
from genrefine.weights.tempering import CANDIDATES
from genrefine.weights.tempering import MAX_ROWS as TEMPER_MAX_ROWS

#: keys of ``cfg["classifier"]`` that build the classifier (the others train it); an MLP for
#: tabular rows, a CNN for images (:func:`~genrefine.weights.classifier.make_classifier`)
CLASSIFIER_SETTINGS = ("hidden", "layers", "channels", "val_fraction", "patience", "seed")
#: those of the classifier on learned image features (``features``: on, or auto for images);
#: its networks keep their own sizes (the tabular MLP's 8 x 96 would overfit a 16-d code)
FEATURE_SETTINGS = ("val_fraction", "patience", "seed")


@dataclass
class ClassifierFit:
    """A fitted DCTR classifier and the weighted latents a refiner trains on: ``z`` (as many
    as data rows), ``x = g(z)`` and ``w`` (the classifier's weights, times the thinning
    ratio when the generator's prior is a rejection-thinned one)."""

    classifier: RatioClassifier
    z: Tensor
    x: Tensor
    w: Tensor


def tempering_candidates(setting: str, data_shape) -> tuple[tuple[float, ...], str]:
    """The classifier's ``temper`` setting as candidate powers and their rule
    (:func:`~genrefine.weights.tempering.select_tempering`): ``"on"`` the default candidates
    (:data:`~genrefine.weights.tempering.CANDIDATES`), the closest kept; ``"off"`` none;
    ``"auto"`` the same for images (nearly separable from their generators: the weights need
    it), and for tabular rows the ``"guard"`` rule: the full weights unless the held-out rows
    say they are worse than none."""
    if setting not in ("on", "off", "auto"):
        raise ValueError(f"classifier.temper must be on, off or auto, got {setting!r}")
    if setting == "off":
        return (), "best"
    return CANDIDATES, "best" if setting == "on" or len(tuple(data_shape)) == 3 else "guard"


#: fresh generated rows the tempering is scored on: the held-out generated rows are few, and a
#: tempered weighting's score swings with them (weights/tempering.py)
TEMPER_ROWS = 2 * TEMPER_MAX_ROWS


#: fresh generated rows the sharpening is scored on: as many as the scoring takes, within
#: SHARPEN_VALUES values in all (high-dimensional rows get fewer, never below the tempering's)
SHARPEN_VALUES = 50_000_000


def sharpen_rows(data_dim: int) -> int:
    """Fresh generated rows the sharpening of rows of ``data_dim`` values is scored on."""
    return max(TEMPER_ROWS, min(SHARPEN_MAX_ROWS, SHARPEN_VALUES // max(int(data_dim), 1)))


def _fresh_samples(gen: Generator, n: int, seed: int) -> Tensor:
    """``n`` samples of ``gen`` from a random stream of their own (the run's is not moved; a
    stochastic generator's own stream would be, so it is not asked)."""
    devices = [gen.device] if gen.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed + 7919)
        return gen.sample(n)


def build_classifier(c: dict, data_shape) -> RatioClassifier:
    """The untrained DCTR classifier of section ``c`` for rows of ``data_shape``: with
    ``features`` ``"on"``, or ``"auto"`` and images, a classifier on the images' learned code
    (:class:`~genrefine.weights.feature_classifier.FeatureRatioClassifier`, which takes no cell
    calibration); else an MLP for tabular rows, a CNN on the pixels of images. ``members`` K > 1:
    K of them, seeds ``seed .. seed + K - 1``, their logits averaged
    (:class:`~genrefine.weights.ensemble.RatioEnsemble`)."""
    setting = c.get("features", "off")
    if setting not in ("on", "off", "auto"):
        raise ValueError(f"classifier.features must be on, off or auto, got {setting!r}")
    members = c.get("members", 1)
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"classifier.members must be an integer >= 1, got {members!r}")
    images = len(tuple(data_shape)) == 3
    if setting == "on" and not images:
        raise ValueError(f"classifier.features=on needs images (C, H, W), got rows of shape {tuple(data_shape)}")
    if setting == "on" or (setting == "auto" and images):
        one = FeatureRatioClassifier(data_shape, **{k: c[k] for k in FEATURE_SETTINGS if k in c})
    else:
        one = make_classifier(data_shape, **{k: c[k] for k in CLASSIFIER_SETTINGS if k in c})
    if members == 1:
        return one
    return RatioEnsemble(classifier_kind(one), one.config(), members,
                         **{k: c[k] for k in ("val_fraction", "patience", "seed") if k in c})


def fit_dctr_classifier(ctx, gen: Generator, tag: str = "") -> ClassifierFit:
    """Train the DCTR classifier between ``ctx.x_train`` and samples of ``gen`` (rows of the
    base's ``data_shape``).

    The classifier sees ``generated_per_data`` times as many generated samples as data rows;
    with ``calibrate_cells`` it is then calibrated per cell against as many fresh samples;
    the refiners train on the first ``len(x_train)`` of them with their weights. Seconds go to
    ``ctx.timings["train_classifier" + tag]``.
    """
    c = ctx.cfg["classifier"]
    n_data = len(ctx.x_train)
    n_gen = max(2, int(round(float(c.get("generated_per_data", 1)) * n_data)))
    z_tr, x_tr = gen.sample_with_latents(n_gen)
    shape = getattr(ctx.base, "data_shape", None) or (ctx.x_train.shape[1],)
    clf = build_classifier(c, shape).to(ctx.device)
    cells = int(c.get("calibrate_cells", 0)) if clf.takes_cells else 0
    candidates, rule = tempering_candidates(c.get("temper", "off"), shape)
    # chosen once, for the base's classifier: only the latent samplers of the base's weights use it
    powers = SHARPEN_POWERS if c.get("sharpen") == "auto" and not gen.stochastic and not tag else ()
    ctx.timed(f"train_classifier{tag}", lambda: clf.fit(  # calibrated on samples it never trained on
        ctx.x_train, x_tr, epochs=c["epochs"], batch_size=c["batch_size"], lr=c["lr"], gamma=c["gamma"],
        progress=ctx.progress, checkpoint=ctx.ckpt("classifier" + tag), calibrate_cells=cells,
        calibration_samples=lambda: gen.sample(n_gen), temper=candidates, temper_rule=rule,
        temper_samples=None if gen.stochastic else lambda: _fresh_samples(gen, TEMPER_ROWS, int(c.get("seed", 0))),
        sharpen=powers, sharpen_quantile=float(c.get("sharpen_quantile", SHARPEN_QUANTILE)),
        sharpen_samples=lambda: _fresh_samples(gen, sharpen_rows(gen.data_dim), int(c.get("seed", 0)) + 1)))
    prior = gen.prior
    if isinstance(prior, RejectionPrior):
        # a refiner with a rejection step: its latents are thinned normal draws, but the next
        # refiner's coupled noise needs plain normal draws. Same target, exactly: proposals
        # weighted by w(g(y)) x a(y) / Z.
        z_tr = prior.proposal.sample((n_data,))
        x_tr = gen.generate(z_tr)
        return ClassifierFit(clf, z_tr, x_tr, clf.weight(x_tr) * prior.log_ratio(z_tr).exp())
    z_tr, x_tr = z_tr[:n_data], x_tr[:n_data]
    return ClassifierFit(clf, z_tr, x_tr, clf.weight(x_tr))


#: keys of ``cfg["omnifold"]`` that build the OmniFold weights (the others train them)
OMNIFOLD_SETTINGS = ("iterations", "hidden", "layers", "latent_hidden", "latent_layers", "val_fraction", "patience",
                     "seed")


def fit_omnifold(ctx, gen: Generator, tag: str = "") -> ClassifierFit:
    """OmniFold (``cfg["omnifold"]``) between ``ctx.x_train`` and ``gen``: the weighted latents a
    refiner trains on (``w = ν(z)``; ``classifier``: the last data-space classifier). Its
    per-iteration record goes to ``ctx.diagnostics["omnifold_weights" + tag]``, seconds to
    ``ctx.timings["train_omnifold" + tag]``."""
    c = ctx.cfg["omnifold"]
    of = OmniFold(gen.latent_dim, gen.data_shape, **{k: c[k] for k in OMNIFOLD_SETTINGS if k in c}).to(ctx.device)
    n_gen = max(2, int(round(float(c.get("generated_per_data", 1)) * len(ctx.x_train))))
    ctx.timed(f"train_omnifold{tag}", lambda: of.fit(
        gen, ctx.x_train, n_generated=n_gen, epochs=c["epochs"], batch_size=c["batch_size"], lr=c["lr"],
        gamma=c["gamma"], progress=ctx.progress, checkpoint=ctx.ckpt("omnifold" + tag)))
    ctx.diagnostics["omnifold_weights" + tag] = of.diagnostics_
    ctx.models["omnifold_weights" + tag] = of
    keep = slice(0, len(ctx.x_train))  # a refiner trains on as many latents as data rows
    return ClassifierFit(of.step1_, of.z_[keep], of.x_[keep], of.log_weight_[keep].exp())


def train_critic(ctx) -> Critic:
    """A new WGAN-GP critic (``cfg["lrw"]["critic"]``) trained against the frozen base."""
    c = ctx.cfg["lrw"]["critic"]
    crit0 = Critic(ctx.base.data_dim, c["hidden"], c["layers"], data_shape=ctx.base.data_shape).to(ctx.device)
    return ctx.timed("train_critic", lambda: fine_tune_critic(
        crit0, ctx.base, ctx.x_train, progress=ctx.progress, checkpoint=ctx.ckpt("critic"), **c["fit"]))


#: safetensors metadata key of a finished fit's record (``<ckpt>_fitted.safetensors``)
FITTED_KEY = "genrefine.fitted"


def fit_w_phi(ctx, critic: Critic) -> LatentImportanceNetwork:
    """The latent importance network ``w_φ`` (``cfg["lrw"]["w_phi"]``) against ``critic``;
    its selection record goes to ``ctx.diagnostics["w_phi"]``. A finished fit is checkpointed
    whole (``<ckpt>_fitted.safetensors``: weights, record and seconds), so a resumed run loads it
    instead of fitting again."""
    w = ctx.cfg["lrw"]["w_phi"]
    w_phi = LatentImportanceNetwork(ctx.base.latent_dim, w.get("hidden"), w["layers"], w["m"]).to(ctx.device)
    path = ctx.ckpt("w_phi")
    done = f"{path}_fitted" if path else None
    if done and _load_fitted(w_phi, done, ctx):
        return w_phi
    ctx.timed("train_w_phi", lambda: w_phi.fit(ctx.base, ctx.x_train, critic=critic, progress=ctx.progress,
                                               checkpoint=path, **w["fit"]))
    keys = ("selected_epoch", "val_emd", "val_emd_initial", "confirmed", "best_epoch", "val_emd_best", "check_emd")
    ctx.diagnostics["w_phi"] = {
        **{k: getattr(w_phi, k + "_", None) for k in keys}, "inputs": w["fit"].get("inputs", "latent"),
        **{k: getattr(w_phi, k + "_", None) for k in ("distil", "source", "candidates", "transport", "delivered")},
        "history": w_phi.history_}
    if done and distributed.rank_and_size()[0] == 0:  # rank 0 owns the checkpoints under torchrun
        save_with_record(done, {"kind": "w_phi_fitted", "config": w_phi.config(), "seconds": ctx.timings["train_w_phi"],
                                "diagnostics": jsonable(ctx.diagnostics["w_phi"])}, w_phi.state_dict(), FITTED_KEY)
    return w_phi


def _load_fitted(w_phi: LatentImportanceNetwork, path: str, ctx) -> bool:
    """Load a finished fit saved under the prefix ``path`` into ``w_phi`` (frozen), with its
    record and seconds; False when there is none, or it was fitted with another shape. Rank 0
    says whether there is one, so under torchrun every rank loads it or every rank fits."""
    if not distributed.from_rank0(lambda: os.path.isfile(path + ".safetensors")):
        return False
    meta, state = load_with_record(path, FITTED_KEY, "finished w_phi fit")
    if meta.get("kind") != "w_phi_fitted" or meta["config"] != w_phi.config():
        return False
    load_state(w_phi, state, path)
    w_phi.eval().requires_grad_(False)
    ctx.timings["train_w_phi"] = float(meta["seconds"])
    ctx.diagnostics["w_phi"] = {**meta["diagnostics"], "resumed": True}
    return True


def fit_critic_ratio(ctx, critic: Critic) -> DiscriminatorRatio:
    """A copy of ``critic`` fine-tuned with BCE (``cfg["lrw"]["discriminator"]``): its odds
    ``exp(logit D(x))`` estimate ``p_data / p_g``."""
    d = ctx.cfg["lrw"]["discriminator"]
    disc = ctx.timed("train_discriminator", lambda: DiscriminatorRatio(critic).to(ctx.device).fit(
        ctx.base, ctx.x_train, progress=ctx.progress, checkpoint=ctx.ckpt("discriminator"), **d))
    ctx.diagnostics["discriminator"] = {"selected_epoch": getattr(disc, "selected_epoch_", None),
                                        "val_emd_history": getattr(disc, "val_emd_history_", None),
                                        "platt_scale": getattr(disc, "platt_", None)}
    return disc


def fit_dot_critic(ctx, critic: Critic) -> Critic:
    """A copy of ``critic`` fine-tuned with the WGAN-GP loss (``cfg["lrw"]["dot_critic"]``)."""
    dc = ctx.cfg["lrw"]["dot_critic"]
    return ctx.timed("train_dot_critic", lambda: fine_tune_critic(
        critic, ctx.base, ctx.x_train, progress=ctx.progress, checkpoint=ctx.ckpt("dot_critic"), **dc))
