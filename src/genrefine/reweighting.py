"""The latent reweighting protocol (Issenhuth et al., Sec. 3-4 and Appendix E) and its
density-ratio baselines, as used by ``genrefine refine --methods latentrs,...``.

Given a frozen base generator (and its critic when it is a WGAN-GP), :func:`run_lrw_methods`

- trains the latent importance network ``w_φ`` (Alg. 1) for ``latentrs``, ``latentga`` and
  ``latentrsga``;
- fine-tunes a copy of the critic with BCE for the density ratios of ``drs``, ``mhgan`` and
  ``sir`` (the ``-dctr`` variants use the LaSeR DCTR classifier's weights instead);
- fine-tunes a copy of the critic with the WGAN-GP loss for ``dot``;

and returns the latents each sampler delivers plus a callable per method that draws ``n``
samples end to end, which :func:`inference_cost` times against the raw generator.
:func:`score_lrw` computes the paper's metrics: exact EMD and k-NN precision / recall on
``n`` points, ``repeats`` times on fresh points, with 97 % intervals and the
real-against-real floor.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from genrefine.generators.base import Generator
from genrefine.generators.wgan import Critic
from genrefine.metrics import exact_emd
from genrefine.metrics.precision_recall import mean_interval, precision_recall
from genrefine.samplers.dot import DOTSampler, effective_lipschitz
from genrefine.samplers.latent_ga import LatentGradientAscent
from genrefine.samplers.ratio import DRSSampler, MHSampler, SIRSampler
from genrefine.samplers.rejection import LatentRejectionSampler
from genrefine.weights.classifier import DensityRatioClassifier, latent_target
from genrefine.weights.discriminator import DiscriminatorRatio, fine_tune_critic
from genrefine.weights.latent_importance import LatentImportanceNetwork

LRW_METHODS = ("latentrs", "latentga", "latentrsga", "drs", "mhgan", "sir", "dot", "drs-dctr", "mhgan-dctr", "sir-dctr")
RATIO_SAMPLERS = {"drs": DRSSampler, "mhgan": MHSampler, "sir": SIRSampler}


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def select_by_val_emd(make: Callable[[int, float], object], base: Generator, x_val: np.ndarray,
                      grid_steps=(0, 2, 5, 10, 50), grid_eps=(0.01, 0.05, 0.1), seed: int = 0) -> dict:
    """The paper's grid search for gradient-step samplers (Appendix E): for every
    ``(n_steps, step_size)`` draw ``len(x_val)`` samples with ``make(n_steps, step_size)``
    (same seed for every candidate, so all start from the same latents) and keep the pair whose
    samples have the lowest exact EMD to the held-out ``x_val``; ties go to the earlier pair, so
    put ``0`` (no steps) first in ``grid_steps`` to prefer leaving the samples alone.
    Returns ``{"n_steps", "step_size", "val_emd", "grid"}``."""
    grid = []
    for n_steps in grid_steps:
        for eps in (grid_eps[:1] if int(n_steps) == 0 else grid_eps):  # no steps: ε is irrelevant
            torch.manual_seed(seed)
            z = make(int(n_steps), float(eps)).sample(len(x_val))
            grid.append({"n_steps": int(n_steps), "step_size": float(eps),
                         "val_emd": exact_emd(x_val, base.generate(z).cpu().numpy())})
    best = min(grid, key=lambda g: g["val_emd"])
    return {**best, "grid": grid}


def run_lrw_methods(base: Generator, x_train, methods: list[str], cfg: dict, n_samples: int,
                    critic: Critic | None = None, classifier: DensityRatioClassifier | None = None,
                    progress: bool = True, ckpt: Callable[[str], str | None] = lambda name: None) -> dict:
    """Fit what ``methods`` need and sample ``n_samples`` latents with each.

    Returns ``{"latents": {method: z}, "samplers": {method: () -> sampler}, "models": {...},
    "timings": {...}, "diagnostics": {...}}``. ``critic`` is the base's critic (a fresh one is
    trained when None); ``classifier`` is needed by the ``-dctr`` variants.
    """
    dev = base.device
    lat, makers, models, timings, diags = {}, {}, {}, {}, {}
    c = cfg["lrw"]
    n_val = min(2000, max(2, len(x_train) // 50))
    x_val = x_train[torch.randperm(len(x_train), generator=torch.Generator().manual_seed(2))[:n_val].to(x_train.device)]
    x_val = x_val.cpu().numpy()

    def steps_for(name: str, make: Callable[[int, float], object]) -> dict:
        """``{"n_steps", "step_size"}`` of method ``name``: fixed, or chosen on validation data."""
        g = c[name]
        if not g.get("select"):
            return {"n_steps": g["n_steps"], "step_size": g["step_size"]}
        sel, secs = _timed(lambda: select_by_val_emd(make, base, x_val, g["grid_steps"], g["grid_eps"]))
        timings[f"select_{name}"] = secs
        diags[f"{name}_selection"] = sel
        return {"n_steps": sel["n_steps"], "step_size": sel["step_size"]}
    if critic is None and any(m in methods for m in ("latentrs", "latentga", "latentrsga", "drs", "mhgan", "sir", "dot")):
        crit0 = Critic(base.data_dim, c["critic"]["hidden"], c["critic"]["layers"]).to(dev)
        critic, timings["train_critic"] = _timed(lambda: fine_tune_critic(
            crit0, base, x_train, progress=progress, checkpoint=ckpt("critic"), **c["critic"]["fit"]))
    if critic is not None:
        models["critic"] = critic

    if any(m in methods for m in ("latentrs", "latentga", "latentrsga")):
        w = c["w_phi"]
        w_phi = LatentImportanceNetwork(base.latent_dim, w.get("hidden"), w["layers"], w["m"], w.get("fourier", 0),
                                        w.get("fourier_scale", 1.0)).to(dev)
        _, timings["train_w_phi"] = _timed(lambda: w_phi.fit(base, x_train, critic=critic, progress=progress,
                                                             checkpoint=ckpt("w_phi"), **w["fit"]))
        models["w_phi"] = w_phi
        diags["w_phi"] = {"selected_epoch": getattr(w_phi, "selected_epoch_", None),
                          "val_emd": getattr(w_phi, "val_emd_", None),
                          "val_emd_initial": getattr(w_phi, "val_emd_initial_", None),
                          "confirmed": getattr(w_phi, "confirmed_", None),
                          "best_epoch": getattr(w_phi, "best_epoch_", None),
                          "val_emd_best": getattr(w_phi, "val_emd_best_", None),
                          "check_emd": getattr(w_phi, "check_emd_", None),
                          "inputs": w["fit"].get("inputs", "latent"),
                          "distil": getattr(w_phi, "distil_", None),
                          "source": getattr(w_phi, "source_", None),
                          "candidates": getattr(w_phi, "candidates_", None),
                          "transport": getattr(w_phi, "transport_", None),
                          "delivered": getattr(w_phi, "delivered_", None),
                          "history": w_phi.history_}
        target = w_phi.target(base.prior)
        makers["latentrs"] = lambda: LatentRejectionSampler(target, bound=w_phi.m)
        for name, rs in (("latentga", False), ("latentrsga", True)):
            if name in methods:
                def make(n, eps, rs=rs):
                    return LatentGradientAscent(target, n, eps, rejection=rs, weight_fn=w_phi)
                st = steps_for(name, make)
                makers[name] = (lambda st=st, make=make: make(st["n_steps"], st["step_size"]))
    if any(m in methods for m in ("drs", "mhgan", "sir")):
        d = c["discriminator"]
        disc, timings["train_discriminator"] = _timed(lambda: DiscriminatorRatio(critic).to(dev).fit(
            base, x_train, progress=progress, checkpoint=ckpt("discriminator"), **d))
        models["discriminator"] = disc
        diags["discriminator"] = {"selected_epoch": getattr(disc, "selected_epoch_", None),
                                  "val_emd_history": getattr(disc, "val_emd_history_", None)}
        d_target = latent_target(base, disc)
        for m in ("drs", "mhgan", "sir"):
            makers[m] = (lambda m=m: RATIO_SAMPLERS[m](d_target, **c[m]))
    if any(m.endswith("-dctr") for m in methods):
        if classifier is None:
            raise ValueError("the -dctr methods need the DCTR classifier")
        c_target = latent_target(base, classifier)
        for m in ("drs", "mhgan", "sir"):
            makers[m + "-dctr"] = (lambda m=m: RATIO_SAMPLERS[m](c_target, **c[m]))
    if "dot" in methods:
        dc = c["dot_critic"]
        dcrit, timings["train_dot_critic"] = _timed(lambda: fine_tune_critic(
            critic, base, x_train, progress=progress, checkpoint=ckpt("dot_critic"), **dc))
        models["dot_critic"] = dcrit
        k_eff = effective_lipschitz(base, dcrit)  # estimated once, shared by the grid

        def make_dot(n, eps):
            return DOTSampler(base, dcrit, n_steps=n, step_size=eps, k_eff=k_eff)
        st = steps_for("dot", make_dot)
        makers["dot"] = lambda: make_dot(st["n_steps"], st["step_size"])

    samplers = {}
    for m in methods:
        if m not in makers:
            continue
        sampler = makers[m]()
        z, timings[f"sample_{m}"] = _timed(lambda: sampler.sample(n_samples))
        lat[m] = z.detach()
        diags[m] = sampler.diagnostics
        samplers[m] = makers[m]
    return {"latents": lat, "samplers": samplers, "models": models, "timings": timings, "diagnostics": diags}


def inference_cost(base: Generator, makers: dict[str, Callable], n: int = 50_000, repeats: int = 5) -> dict:
    """Milliseconds per delivered sample (best of ``repeats`` runs of ``n`` samples), end to
    end: the sampler's work plus the generator pass of the delivered latents; and the ratio
    to the raw generator (``cost / raw``; the rate ratio is its inverse)."""

    def best(fn) -> float:
        t = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            if base.device.type == "cuda":
                torch.cuda.synchronize()
            t = min(t, time.perf_counter() - t0)
        return 1e3 * t / n

    out = {"n": int(n), "raw_ms": best(lambda: base.sample(n))}
    for m, make in makers.items():
        ms = best(lambda: base.generate(make().sample(n)))
        out[m] = {"ms_per_sample": ms, "cost_over_raw": ms / out["raw_ms"], "rate_over_raw": out["raw_ms"] / ms}
    return out


def score_lrw(truth: np.ndarray, truth_ind: np.ndarray, sample: np.ndarray, weights: np.ndarray | None = None,
              n: int = 2000, repeats: int = 10, k: int = 3, level: float = 0.97) -> dict:
    """Exact EMD (mean Euclidean cost of the optimal matching) and precision / recall with
    k-NN balls, each on ``n`` fresh generated and real points per evaluation, ``repeats``
    evaluations: mean and ``level`` interval, plus the same for real against independent
    real points (the floor). With sample ``weights`` (DCTR) the EMD and the precision are
    weighted and the recall is not defined (None)."""
    need = n * repeats
    if min(len(truth), len(truth_ind), len(sample)) < need:
        raise ValueError(f"scoring needs {need} points per sample (n={n} x {repeats} evaluations); "
                         f"raise --n-samples or lower the evaluation n")
    emd, prec, rec, floor, fp, fr = [], [], [], [], [], []
    for r in range(repeats):
        sl = slice(r * n, (r + 1) * n)
        t, s, ti = truth[sl], sample[sl], truth_ind[sl]
        emd.append(exact_emd(t, s, weights_y=None if weights is None else weights[sl]))
        p, q = precision_recall(t, s, k, weights_fake=None if weights is None else weights[sl])
        prec.append(p)
        rec.append(q)
        floor.append(exact_emd(t, ti))
        p, q = precision_recall(t, ti, k)
        fp.append(p)
        fr.append(q)
    return {"n": int(n), "repeats": int(repeats), "k": int(k),
            "emd": {**mean_interval(emd, level), "floor": mean_interval(floor, level)},
            "precision": {**mean_interval(prec, level), "floor": mean_interval(fp, level)},
            "recall": ({**mean_interval(rec, level), "floor": mean_interval(fr, level)} if weights is None else None)}
