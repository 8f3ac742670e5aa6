"""Refinement end to end: fit or take a base generator, learn where it over- and
under-produces, sample the reweighted latent with every requested method, score everything
against held-out truth, and write the results.

Two families of methods share the run:

- LaSeR (Sec. 3 of the LaSeR paper): DCTR classifier weights pulled back to the latent space,
  sampled by rejection, HMC or a refiner network (``dctr``, ``rejection``, ``hmc``, ``laser``,
  ``laser-flow``);
- latent reweighting (Issenhuth et al.) and its baselines: a latent importance network
  against a Wasserstein critic (``latentrs``, ``latentga``, ``latentrsga``), the
  discriminator's density ratios (``drs``, ``mhgan``, ``sir``; ``*-dctr`` with the DCTR
  classifier's instead) and discriminator optimal transport (``dot``); see
  :mod:`genrefine.reweighting`.

``run_refinement`` is what ``genrefine refine`` calls; it is usable from Python too.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from genrefine import metrics as M
from genrefine.checkpoint import atomic_save_npy, atomic_write_text, save_generator
from genrefine.data import DATASETS, load_data
from genrefine.generators import Generator, RealNVPGenerator, WGANGenerator
from genrefine.presets import get_preset
from genrefine.refine import RefinedGenerator
from genrefine.reweighting import LRW_METHODS, inference_cost, run_lrw_methods, score_lrw
from genrefine.samplers.base import weight_diagnostics
from genrefine.samplers.hmc import HMCSampler
from genrefine.samplers.refiner_flow import RefinerFlow
from genrefine.samplers.refiner_gan import RefinerGAN
from genrefine.samplers.rejection import LatentRejectionSampler, RejectionPrior
from genrefine.validation import check_array, resolve_device
from genrefine.weights import DensityRatioClassifier, latent_target

LASER_METHODS = ("base", "dctr", "rejection", "hmc", "laser", "laser-flow")
METHODS = LASER_METHODS + LRW_METHODS
BASE_FAMILIES = ("realnvp", "wgan-gp")
REFINERS = {"laser": RefinerGAN, "laser-flow": RefinerFlow}


def parse_methods(methods) -> list[str]:
    """``"base,hmc"`` or a list -> validated list in canonical order."""
    items = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not items:
        raise ValueError("methods: none given; choose from " + ", ".join(METHODS))
    bad = [m for m in items if m not in METHODS]
    if bad:
        raise ValueError(f"methods: unknown {', '.join(bad)}; choose from {', '.join(METHODS)}")
    return [m for m in METHODS if m in items]


@dataclass
class RefinementResult:
    """Everything one run produced: unweighted samples and their latents per method, DCTR
    weights, models, and the metrics dictionary written to ``metrics.json``."""

    samples: dict[str, np.ndarray] = field(default_factory=dict)
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    dctr_weights: np.ndarray | None = None
    models: dict[str, object] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    truth: np.ndarray | None = None


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _rates(gens: dict[str, Generator], n: int = 200_000, repeats: int = 5) -> dict[str, float]:
    """Samples per second of each ``gen.sample(n)``: best of ``repeats``, the generators timed in
    turn within each repeat, so a slow spell of the machine hits them alike (on a shared 2-core
    machine single timings of the same call vary by 10-30%)."""
    best = {k: float("inf") for k in gens}
    for _ in range(repeats):
        for k, gen in gens.items():
            t0 = time.perf_counter()
            gen.sample(n)
            if gen.device.type == "cuda":
                torch.cuda.synchronize()
            best[k] = min(best[k], time.perf_counter() - t0)
    return {k: n / t for k, t in best.items()}


def score_sample(truth, truth_ind, sample, weights=None, hist_range=None, exact_n: int = 3000,
                 energy_n: int = 10_000, seed: int = 0) -> dict:
    """Histogram JSD/EMD in both conventions, exact EMD and energy distance, each with the
    truth-against-truth floor at the same sample size (LaSeR Sec. 4.2).

    ``*_prob``: probabilities on 40 x 40 bins, ground distance in data units. ``*_paper``: the
    public LaSeR scoring code's convention (100 x 100 ``density=True`` bins, ground distance
    divided by its maximum), comparable with the paper's Table 3.
    """
    m = min(len(truth), len(truth_ind), len(sample))
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(sample), m, replace=False) if len(sample) > m else np.arange(m)
    s, w = sample[idx], (None if weights is None else weights[idx])
    t, ti = truth[:m], truth_ind[:m]
    out = {"n": int(m)}
    for conv in ("prob", "paper"):
        # prob: 40x40 bins (low noise floor at 10^5 points); paper: 100x100 as the public scoring code
        kw = {"range": hist_range, "convention": conv, "bins": 40 if conv == "prob" else 100}
        for name, fn in (("jsd", M.hist_jsd), ("emd", M.hist_emd)):
            out[f"{name}_{conv}"] = M.score_with_error(fn, t, s, ti, weights_y=w, **kw)
    ne = min(exact_n, m)
    pick = rng.choice(m, ne, replace=False)
    out["exact_emd"] = M.score_with_error(M.exact_emd, t[:ne], s[pick], ti[ne:2 * ne] if 2 * ne <= m else ti[:ne],
                                          weights_y=None if w is None else w[pick])
    out["exact_emd"]["n"] = int(ne)
    nd = min(energy_n, m)
    pick = rng.choice(m, nd, replace=False)
    out["energy"] = M.score_with_error(M.energy_distance, t[:nd], s[pick], ti[:nd], weights_y=None if w is None else w[pick])
    out["energy"]["n"] = int(nd)
    return out


def run_refinement(
    data: str | np.ndarray,
    methods="base,dctr,rejection,hmc,laser,laser-flow",
    preset: str = "quick",
    seed: int = 0,
    n_samples: int = 200_000,
    device: str = "cpu",
    out: str | None = None,
    iterations: int = 1,
    key: str | None = None,
    holdout: float = 0.2,
    base: Generator | None = None,
    progress: bool = True,
    resume: bool = False,
    overrides: dict | None = None,
    base_family: str = "realnvp",
    scoring: str = "auto",
    critic=None,
    w_phi: dict | None = None,
) -> RefinementResult:
    """Run the LaSeR protocol; see the module docstring. Returns a :class:`RefinementResult`
    and, when ``out`` is given, writes ``samples/``, ``latents/``, ``models/``, ``figures/``
    and ``metrics.json`` there (metrics last, every file written atomically).

    ``data`` is a built-in set name (training data and two independent truth samples of
    ``n_samples`` points are generated), a file path, or an array (a ``holdout`` fraction is
    kept aside and split in two halves: the truth and the independent truth for the floor).

    ``base_family`` picks the base trained when ``base`` is None (``realnvp`` or ``wgan-gp``);
    ``critic`` is a trained critic for the latent reweighting methods (default: the WGAN-GP
    base's own, else a new one); ``w_phi`` overrides the latent importance network's settings
    (``{"m": 3.0, "inputs": "data", "fit": {"lambda1": 10.0}}``).
    ``scoring``: ``laser`` (histogram JSD / EMD in both conventions, exact EMD and energy
    distance on one large sample), ``lrw`` (the latent reweighting paper's exact EMD and k-NN
    precision / recall, ``repeats`` evaluations of ``n`` fresh points, with 97 % intervals, and
    the inference cost per delivered sample), ``all``, or ``auto``: ``lrw`` when a latent
    reweighting method is requested or the base is a WGAN-GP, else ``laser``.
    """
    method_list = parse_methods(methods)
    if base_family not in BASE_FAMILIES:
        raise ValueError(f"base: unknown family '{base_family}' (choose from {', '.join(BASE_FAMILIES)})")
    if base is not None:
        base_family = base.family
    if scoring not in ("auto", "laser", "lrw", "all"):
        raise ValueError(f"scoring must be auto, laser, lrw or all, got {scoring!r}")
    if scoring == "auto":
        scoring = "lrw" if (base_family == "wgan-gp" or any(m in LRW_METHODS for m in method_list)) else "laser"
    if int(n_samples) < 1:
        raise ValueError(f"n-samples must be >= 1, got {n_samples}")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must lie in (0, 1), got {holdout}")
    dev = resolve_device(device)
    data_name = data if isinstance(data, str) and data in DATASETS else None
    cfg = get_preset(preset, data_name, base_family)
    if w_phi:
        if w_phi.get("m") is not None:
            m_val = float(w_phi["m"])
            if not np.isfinite(m_val) or m_val <= 0:
                raise ValueError(f"m must be a finite number > 0, got {w_phi['m']}")
            cfg["lrw"]["w_phi"]["m"] = m_val
        if w_phi.get("inputs") is not None:
            if w_phi["inputs"] not in ("latent", "data"):
                raise ValueError(f"w_phi inputs must be 'latent' or 'data', got {w_phi['inputs']!r}")
            cfg["lrw"]["w_phi"]["fit"]["inputs"] = w_phi["inputs"]
        for k, v in (w_phi.get("fit") or {}).items():
            if v is None or not np.isfinite(v) or v < 0:
                raise ValueError(f"{k} must be a finite number >= 0, got {v}")
            cfg["lrw"]["w_phi"]["fit"][k] = float(v)
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    n_samples = int(n_samples)

    # --- data (validated before anything is written)
    if data_name is not None:
        x_train = load_data(data_name, cfg["n_train"], seed=seed)
        truth = load_data(data_name, n_samples, seed=seed + 1_000_001)
        truth_ind = load_data(data_name, n_samples, seed=seed + 2_000_003)
        hist_range = M.PAPER_RANGES.get(data_name)
        label = data_name
    else:
        arr = load_data(data, key=key) if isinstance(data, str) else check_array(data, name="data")
        arr = arr.astype(np.float32)
        if len(arr) < 10:
            raise ValueError(f"{data if isinstance(data, str) else 'data'}: needs at least 10 rows, got {len(arr)}")
        perm = np.random.default_rng(seed).permutation(len(arr))
        n_hold = max(2, int(round(holdout * len(arr))))
        x_train = arr[perm[n_hold:]]
        half = n_hold // 2
        truth, truth_ind = arr[perm[:half]], arr[perm[half:2 * half]]
        hist_range = None
        label = os.path.basename(data) if isinstance(data, str) else "array"
    dim = x_train.shape[1]
    if base is not None and base.data_dim != dim:
        raise ValueError(f"base generator makes {base.data_dim}-d samples but the data is {dim}-d")

    torch.manual_seed(seed)
    np.random.seed(seed)
    ckpt_dir = os.path.join(out, "checkpoints") if out else None
    if ckpt_dir and not resume and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    ckpt = (lambda name: os.path.join(ckpt_dir, name)) if ckpt_dir else (lambda name: None)
    res = RefinementResult(truth=truth)
    timings: dict[str, float] = {}
    diagnostics: dict[str, dict] = {}
    x_train_t = torch.as_tensor(x_train, device=dev)

    # --- base generator
    if base is None and base_family == "wgan-gp":
        b = cfg["wgan"]
        base = WGANGenerator(b["latent_dim"], dim, b["hidden"], b["layers"]).to(dev)
        _, timings["train_base"] = _timed(lambda: base.fit(
            x_train_t, epochs=b["epochs"], batch_size=b["batch_size"], lr=b["lr"], betas=b["betas"],
            n_critic=b["n_critic"], gp_weight=b["gp_weight"], gamma=b.get("gamma", 1.0), progress=progress,
            checkpoint=ckpt("base")))
        critic = base.critic_
        diagnostics["base"] = {"final_wasserstein": base.history_[-1]["wasserstein"] if base.history_ else None}
    elif base is None:
        b = cfg["base"]
        base = RealNVPGenerator(dim, b["transforms"], b["hidden"]).to(dev)
        _, timings["train_base"] = _timed(lambda: base.fit(
            x_train_t, epochs=b["epochs"], batch_size=b["batch_size"], lr=b["lr"], weight_decay=b["weight_decay"],
            gamma=b["gamma"], progress=progress, checkpoint=ckpt("base")))
        diagnostics["base"] = {"final_nll": base.history_[-1]["nll"] if base.history_ else None}
    base = base.to(dev).freeze()
    res.models["base"] = base
    if critic is None:
        critic = getattr(base, "critic_", None)

    (z_base, x_base), timings["sample_base"] = _timed(lambda: base.sample_with_latents(n_samples))
    res.samples["base"], res.latents["base"] = x_base.cpu().numpy(), z_base.cpu().numpy()

    needs_weights = any(m in LASER_METHODS[1:] or m.endswith("-dctr") for m in method_list)
    c = cfg["classifier"]

    def fit_classifier(gen: Generator, tag: str) -> tuple[DensityRatioClassifier, torch.Tensor, torch.Tensor, torch.Tensor]:
        # the classifier sees generated_per_data x as many generated samples as data rows; the
        # refiners train on the first len(x_train) of them with their weights
        n_gen = max(2, int(round(float(c.get("generated_per_data", 1)) * len(x_train))))
        z_tr, x_tr = gen.sample_with_latents(n_gen)
        clf = DensityRatioClassifier(dim, c["hidden"], c["layers"]).to(dev)
        _, timings[f"train_classifier{tag}"] = _timed(lambda: clf.fit(
            x_train_t, x_tr, epochs=c["epochs"], batch_size=c["batch_size"], lr=c["lr"], gamma=c["gamma"],
            progress=progress, checkpoint=ckpt("classifier" + tag)))
        prior = gen.prior
        if isinstance(prior, RejectionPrior):
            # a refiner with a rejection step: its latents are thinned normal draws, but the next
            # refiner's coupled noise needs plain normal draws. Same target, exactly: proposals
            # weighted by w(g(y)) x a(y) / Z.
            z_tr = prior.proposal.sample((len(x_train),))
            x_tr = gen.generate(z_tr)
            return clf, z_tr, x_tr, clf.weight(x_tr) * prior.log_ratio(z_tr).exp()
        z_tr, x_tr = z_tr[: len(x_train)], x_tr[: len(x_train)]
        return clf, z_tr, x_tr, clf.weight(x_tr)

    if needs_weights:
        clf, z_tr, x_tr, w_tr = fit_classifier(base, "")
        res.models["classifier"] = clf
        diagnostics["weights_train"] = weight_diagnostics(w_tr)
        if "dctr" in method_list or "hmc" in method_list or "rejection" in method_list:
            target = latent_target(base, clf)
        if "dctr" in method_list:
            w = clf.weight(x_base)
            diagnostics["dctr"] = weight_diagnostics(w)
            res.samples["dctr"], res.latents["dctr"] = res.samples["base"], res.latents["base"]
            res.dctr_weights = w.cpu().numpy()
        if "rejection" in method_list:
            sampler = LatentRejectionSampler(target, **cfg["rejection"])
            z, timings["sample_rejection"] = _timed(lambda: sampler.sample(n_samples))
            res.latents["rejection"] = z.cpu().numpy()
            res.samples["rejection"] = base.generate(z).cpu().numpy()
            diagnostics["rejection"] = sampler.diagnostics
        if "hmc" in method_list:
            h = dict(cfg["hmc"])
            if h.get("n_chains") == "n":
                h["n_chains"] = n_samples
            sampler = HMCSampler.paper(target, progress=progress) if h.pop("paper", False) else HMCSampler(target, progress=progress, **h)
            z, timings["sample_hmc"] = _timed(lambda: sampler.sample(n_samples))
            res.latents["hmc"] = z.detach().cpu().numpy()
            res.samples["hmc"] = base.generate(z.detach()).cpu().numpy()
            diagnostics["hmc"] = sampler.diagnostics
        for method in ("laser", "laser-flow"):
            if method not in method_list:
                continue
            r = dict(cfg[method])
            arch_keys = ("aux_dim", "hidden", "layers", "drs_hidden", "drs_layers") if method == "laser" \
                else ("transforms", "hidden", "bins")
            arch = {k: r.pop(k) for k in arch_keys if k in r}
            data_rej = r.pop("data_rejection", None)
            gen, z_k, w_k, clf_k = base, z_tr, w_tr, clf
            diagnostics[method] = {"iterations": []}
            for k in range(int(iterations)):
                tag = f"_{method}_it{k + 1}"
                if k > 0:  # refine the refined generator: new classifier, weights on its own latent
                    clf_k, z_k, _, w_k = fit_classifier(gen, tag)
                phi = REFINERS[method](gen.latent_dim, **arch).to(dev)
                _, secs = _timed(lambda: phi.fit(z_k, w_k, progress=progress, checkpoint=ckpt("refiner" + tag), **r))
                timings[f"train{tag}"] = secs
                gen = RefinedGenerator(gen, phi).freeze()
                it = {"weights": weight_diagnostics(w_k), "train_seconds": secs,
                      **({"rejection": phi.drs_diagnostics_} if hasattr(phi, "drs_diagnostics_") else {})}
                if data_rej:  # last correction in data space: the classifier trained on against this refiner
                    _, timings[f"train{tag}_data_rejection"] = _timed(lambda: gen.fit_data_rejection(
                        x_train_t, classifier=clf_k, batch_size=c["batch_size"], lr=c["lr"], gamma=c["gamma"],
                        generated_per_data=c.get("generated_per_data", 1), progress=progress,
                        checkpoint=ckpt("data_rejection" + tag), **data_rej))
                    it["data_rejection"] = gen.data_rejection_diagnostics_
                diagnostics[method]["iterations"].append(it)
            res.models[method] = gen
            (y, x), timings[f"sample_{method}"] = _timed(lambda: gen.sample_with_latents(n_samples))
            res.samples[method] = x.cpu().numpy()
            res.latents[method] = gen.base_latent(y).cpu().numpy()

    lrw_list = [m for m in method_list if m in LRW_METHODS]
    lrw_makers = {}
    if lrw_list:
        L = run_lrw_methods(base, x_train_t, lrw_list, cfg, n_samples, critic=critic,
                            classifier=res.models.get("classifier"), progress=progress, ckpt=ckpt)
        timings.update(L["timings"])
        diagnostics.update(L["diagnostics"])
        for name, model in L["models"].items():
            res.models[name] = model
        for m, z in L["latents"].items():
            res.latents[m] = z.cpu().numpy()
            res.samples[m] = base.generate(z).cpu().numpy()
        lrw_makers = L["samplers"]

    # --- metrics
    scores = {}
    t0 = time.perf_counter()
    ev = cfg["evaluation"]
    for mth in method_list:
        w = res.dctr_weights if mth == "dctr" else None
        sc = {}
        if scoring in ("laser", "all"):
            sc.update(score_sample(truth, truth_ind, res.samples[mth], weights=w, hist_range=hist_range, seed=seed))
        if scoring in ("lrw", "all"):
            sc["lrw"] = score_lrw(truth, truth_ind, res.samples[mth], weights=w, n=min(ev["n"], n_samples // ev["repeats"]),
                                  repeats=ev["repeats"], k=ev["k"])
        scores[mth] = sc
    timings["metrics"] = time.perf_counter() - t0
    rates = _rates({"base": base, **{m: res.models[m] for m in ("laser", "laser-flow") if m in res.models}})
    for mth in ("laser", "laser-flow"):
        if mth in rates:
            rates[f"{mth}_over_base"] = rates[mth] / rates["base"]
    cost = inference_cost(base, lrw_makers, n=ev["cost_n"]) if lrw_makers else None
    res.metrics = {
        "data": label, "dim": int(dim), "methods": method_list, "preset": preset, "seed": seed,
        "n_samples": n_samples, "n_train": int(len(x_train)), "n_truth": int(len(truth)), "device": str(dev),
        "iterations": int(iterations), "hist_range": hist_range, "config": cfg, "base_family": base_family,
        "scoring": scoring, "scores": scores, "timings_seconds": timings, "samples_per_second": rates,
        "inference_cost": cost, "diagnostics": diagnostics,
    }
    if out:
        write_outputs(res, out)
    return res


def write_outputs(res: RefinementResult, out: str) -> None:
    """Write samples, latents, models, figures, then ``metrics.json`` (last, so its presence
    means the run is complete)."""
    from genrefine.checkpoint import save_module
    from genrefine.generators.wgan import Critic
    from genrefine.plotting import refinement_figure
    from genrefine.weights.discriminator import DiscriminatorRatio
    from genrefine.weights.latent_importance import LatentImportanceNetwork

    for sub in ("samples", "latents", "models", "figures"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for mth, x in res.samples.items():
        atomic_save_npy(os.path.join(out, "samples", f"{mth}.npy"), x.astype(np.float32))
        atomic_save_npy(os.path.join(out, "latents", f"{mth}.npy"), res.latents[mth].astype(np.float32))
    if res.dctr_weights is not None:
        atomic_save_npy(os.path.join(out, "samples", "dctr_weights.npy"), res.dctr_weights.astype(np.float32))
    for name, model in res.models.items():
        if isinstance(model, Generator):
            save_generator(model, os.path.join(out, "models", name))
        elif isinstance(model, DensityRatioClassifier):
            save_module(model, {"dim": model.dim, "hidden": model.hidden, "layers": model.layers},
                        os.path.join(out, "models", name), kind="dctr_classifier")
        elif isinstance(model, LatentImportanceNetwork):
            save_module(model, model.config(), os.path.join(out, "models", name), kind="latent_importance")
        elif isinstance(model, DiscriminatorRatio):
            save_module(model.critic, model.critic.config(), os.path.join(out, "models", name), kind="critic")
        elif isinstance(model, Critic):
            save_module(model, model.config(), os.path.join(out, "models", name), kind="critic")
    refinement_figure(res, os.path.join(out, "figures"))
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(_jsonable(res.metrics), indent=2))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
