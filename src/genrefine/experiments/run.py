"""Refinement end to end (what ``genrefine refine`` runs): fit or take a base generator, run
every requested method from the registry (:mod:`genrefine.methods`) on one shared
:class:`~genrefine.methods.RunContext`, score everything against held-out truth, and write
the results.

Two families of methods share the run:

- LaSeR (Sec. 3 of the LaSeR paper): DCTR classifier weights pulled back to the latent space,
  sampled by rejection, HMC, Langevin (DDLS) or a refiner network (``dctr``, ``rejection``,
  ``hmc``, ``ddls``, ``laser``, ``laser-flow``);
- latent reweighting (Issenhuth et al.) and its baselines: a latent importance network
  against a Wasserstein critic (``latentrs``, ``latentga``, ``latentrsga``), the
  discriminator's density ratios (``drs``, ``mhgan``, ``sir``; ``*-dctr`` with the DCTR
  classifier's instead) and discriminator optimal transport (``dot``).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from genrefine import metrics as M
from genrefine.data import DATASETS, load_data
from genrefine.experiments.config import build_config
from genrefine.experiments.outputs import write_outputs
from genrefine.experiments.scoring import inference_cost, sampling_rates, score_lrw, score_sample
from genrefine.generators import Generator, RealNVPGenerator, WGANGenerator
from genrefine.methods import METHODS, MethodResult, RunContext, check_method, fit_methods
from genrefine.timing import timed
from genrefine.validation import check_array, resolve_device

#: base families ``run_refinement`` can train, by name
BASE_CLASSES: dict[str, type[Generator]] = {"realnvp": RealNVPGenerator, "wgan-gp": WGANGenerator}
BASE_FAMILIES = tuple(BASE_CLASSES)
#: the methods of a default run: every LaSeR method for a flow base, every latent reweighting
#: method for a WGAN-GP base
DEFAULT_METHODS = {"realnvp": ("base", "dctr", "rejection", "hmc", "laser", "laser-flow"),
                   "wgan-gp": ("base", "latentrs", "latentga", "latentrsga", "drs", "mhgan", "sir", "dot")}


def method_names() -> tuple[str, ...]:
    """``base`` and every registered method, in the run's canonical order."""
    return ("base", *METHODS)


def parse_methods(methods) -> list[str]:
    """``"base,hmc"`` or a list -> validated list in canonical order."""
    known = method_names()
    items = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not items:
        raise ValueError("methods: none given; choose from " + ", ".join(known))
    bad = [m for m in items if m not in known]
    if bad:
        raise ValueError(f"methods: unknown {', '.join(bad)}; choose from {', '.join(known)}")
    return [m for m in known if m in items]


@dataclass
class RefinementResult:
    """Everything one run produced: unweighted samples and their latents per method, the
    weights of weighted methods (DCTR), models, and the metrics written to ``metrics.json``."""

    samples: dict[str, np.ndarray] = field(default_factory=dict)
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, object] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    truth: np.ndarray | None = None

    @property
    def dctr_weights(self) -> np.ndarray | None:
        """The DCTR method's per-sample weights (None when it did not run)."""
        return self.weights.get("dctr")


@dataclass
class DataSplit:
    """Training rows, the truth, an independent truth for the floors, and how to score them."""

    x_train: np.ndarray
    truth: np.ndarray
    truth_ind: np.ndarray
    hist_range: list | None
    label: str


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
    params: dict | None = None,
) -> RefinementResult:
    """Run the refinement protocol; see the module docstring. Returns a
    :class:`RefinementResult` and, when ``out`` is given, writes ``samples/``, ``latents/``,
    ``models/``, ``figures/`` and ``metrics.json`` there (metrics last, every file atomically).

    ``data`` is a built-in set name (training data and two independent truth samples of
    ``n_samples`` points are generated), a file path, or an array (a ``holdout`` fraction is
    kept aside and split in two halves: the truth and the independent truth for the floor).

    ``base_family`` picks the base trained when ``base`` is None (``realnvp`` or ``wgan-gp``);
    ``critic`` is a trained critic for the latent reweighting methods (default: the WGAN-GP
    base's own, else a new one); ``w_phi`` overrides the latent importance network's settings
    (``{"m": 3.0, "inputs": "data", "fit": {"lambda1": 10.0}}``); ``overrides`` the preset's
    sections (``{"classifier": {"epochs": 20}}``); ``params`` the methods' own settings
    (``{"hmc": {"burn_in": 100}, "latentga": {"select": False}}``). Every method's needs are
    checked against the base before any training.
    ``scoring``: ``laser`` (histogram JSD / EMD in both conventions, exact EMD and energy
    distance on one large sample), ``lrw`` (the latent reweighting paper's exact EMD and k-NN
    precision / recall, ``repeats`` evaluations of ``n`` fresh points, with 97 % intervals, and
    the inference cost per delivered sample), ``all``, or ``auto``: ``lrw`` when a latent
    reweighting method is requested or the base is a WGAN-GP, else ``laser``.
    """
    method_list = parse_methods(methods)
    base_family = base.family if base is not None else base_family
    scoring = _check_arguments(method_list, base, base_family, scoring, n_samples, iterations, holdout)
    dev = resolve_device(device)
    data_name = data if isinstance(data, str) and data in DATASETS else None
    cfg = build_config(preset, data_name, base_family, w_phi, overrides, params)
    n_samples = int(n_samples)
    split = _load_split(data, data_name, cfg, n_samples, seed, key, holdout)  # validated before anything is written
    dim = split.x_train.shape[1]
    if base is not None and base.data_dim != dim:
        raise ValueError(f"base generator makes {base.data_dim}-d samples but the data is {dim}-d")

    torch.manual_seed(seed)
    np.random.seed(seed)
    ckpt = _checkpoints(out, resume)
    x_train_t = torch.as_tensor(split.x_train, device=dev)
    base, critic, timings, diagnostics = _fit_base(base, base_family, cfg, x_train_t, progress, ckpt, critic)
    ctx = RunContext(base, x_train_t, cfg, n_samples, device=dev, progress=progress, ckpt=ckpt, critic=critic,
                     iterations=iterations)
    ctx.timings.update(timings)
    ctx.diagnostics.update(diagnostics)
    z_base, x_base = ctx.base_sample()
    results = fit_methods(ctx, [m for m in method_list if m != "base"])
    res = _collect(ctx, results, z_base, x_base, split.truth)
    scores = _score(res, split, method_list, scoring, cfg["evaluation"], n_samples, seed, ctx.timings)
    rates, cost = _speeds(base, results, cfg["evaluation"])
    res.metrics = {
        "data": split.label, "dim": int(dim), "methods": method_list, "preset": preset, "seed": seed,
        "n_samples": n_samples, "n_train": int(len(split.x_train)), "n_truth": int(len(split.truth)),
        "device": str(dev), "iterations": int(iterations), "hist_range": split.hist_range, "config": cfg,
        "base_family": base_family, "scoring": scoring, "scores": scores, "timings_seconds": ctx.timings,
        "samples_per_second": rates, "inference_cost": cost, "diagnostics": ctx.diagnostics}
    if out:
        write_outputs(res, out)
    return res


def _check_arguments(method_list: list[str], base: Generator | None, base_family: str, scoring: str, n_samples,
                     iterations, holdout) -> str:
    """Refuse bad arguments and methods the base cannot serve, before any work; return the
    scoring (``auto`` resolved)."""
    if base is None and base_family not in BASE_FAMILIES:
        raise ValueError(f"base: unknown family '{base_family}' (choose from {', '.join(BASE_FAMILIES)})")
    if scoring not in ("auto", "laser", "lrw", "all"):
        raise ValueError(f"scoring must be auto, laser, lrw or all, got {scoring!r}")
    if int(n_samples) < 1:
        raise ValueError(f"n-samples must be >= 1, got {n_samples}")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must lie in (0, 1), got {holdout}")
    methods = [m for m in method_list if m != "base"]
    for name in methods:
        check_method(base if base is not None else BASE_CLASSES[base_family], name)
    if scoring != "auto":
        return scoring
    lrw = any(METHODS[m].family == "lrw" for m in methods)
    return "lrw" if (base_family == "wgan-gp" or lrw) else "laser"


def _load_split(data, data_name: str | None, cfg: dict, n_samples: int, seed: int, key: str | None,
                holdout: float) -> DataSplit:
    """Built-in sets: fresh training data and two truth samples of ``n_samples``; arrays and
    files: a seeded permutation, ``holdout`` of the rows kept aside and halved."""
    if data_name is not None:
        return DataSplit(load_data(data_name, cfg["n_train"], seed=seed),
                         load_data(data_name, n_samples, seed=seed + 1_000_001),
                         load_data(data_name, n_samples, seed=seed + 2_000_003),
                         M.PAPER_RANGES.get(data_name), data_name)
    arr = load_data(data, key=key) if isinstance(data, str) else check_array(data, name="data")
    arr = arr.astype(np.float32)
    if len(arr) < 10:
        raise ValueError(f"{data if isinstance(data, str) else 'data'}: needs at least 10 rows, got {len(arr)}")
    perm = np.random.default_rng(seed).permutation(len(arr))
    n_hold = max(2, int(round(holdout * len(arr))))
    half = n_hold // 2
    return DataSplit(arr[perm[n_hold:]], arr[perm[:half]], arr[perm[half:2 * half]], None,
                     os.path.basename(data) if isinstance(data, str) else "array")


def _checkpoints(out: str | None, resume: bool):
    """``name -> path`` under ``OUT/checkpoints`` (cleared unless resuming), or ``name -> None``."""
    if not out:
        return lambda name: None
    ckpt_dir = os.path.join(out, "checkpoints")
    if not resume and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    return lambda name: os.path.join(ckpt_dir, name)


def _fit_base(base: Generator | None, base_family: str, cfg: dict, x_train: torch.Tensor, progress: bool, ckpt,
              critic) -> tuple[Generator, object, dict, dict]:
    """The frozen base (trained when none is given) and its critic; timings and diagnostics."""
    timings: dict[str, float] = {}
    diagnostics: dict[str, dict] = {}
    dim, dev = x_train.shape[1], x_train.device
    if base is None and base_family == "wgan-gp":
        b = cfg["wgan"]
        base = WGANGenerator(b["latent_dim"], dim, b["hidden"], b["layers"]).to(dev)
        _, timings["train_base"] = timed(lambda: base.fit(
            x_train, epochs=b["epochs"], batch_size=b["batch_size"], lr=b["lr"], betas=b["betas"],
            n_critic=b["n_critic"], gp_weight=b["gp_weight"], gamma=b.get("gamma", 1.0), progress=progress,
            checkpoint=ckpt("base")), dev)
        critic = base.critic_
        diagnostics["base"] = {"final_wasserstein": base.history_[-1]["wasserstein"] if base.history_ else None}
    elif base is None:
        b = cfg["base"]
        base = RealNVPGenerator(dim, b["transforms"], b["hidden"]).to(dev)
        _, timings["train_base"] = timed(lambda: base.fit(
            x_train, epochs=b["epochs"], batch_size=b["batch_size"], lr=b["lr"], weight_decay=b["weight_decay"],
            gamma=b["gamma"], progress=progress, checkpoint=ckpt("base")), dev)
        diagnostics["base"] = {"final_nll": base.history_[-1]["nll"] if base.history_ else None}
    base = base.to(dev).freeze()
    return base, critic, timings, diagnostics


def _collect(ctx: RunContext, results: dict[str, MethodResult], z_base, x_base, truth: np.ndarray) -> RefinementResult:
    """Arrays, models and diagnostics of the base and every method, in one :class:`RefinementResult`."""
    res = RefinementResult(truth=truth)
    res.models["base"] = ctx.base
    res.samples["base"], res.latents["base"] = x_base.cpu().numpy(), z_base.cpu().numpy()
    for name, r in results.items():
        res.samples[name], res.latents[name] = r.x.detach().cpu().numpy(), r.z.detach().cpu().numpy()
        if r.weights is not None:
            res.weights[name] = r.weights.detach().cpu().numpy()
        if r.generator is not None:
            res.models[name] = r.generator
        res.models.update(r.models)
        ctx.diagnostics[name] = r.diagnostics
    res.models.update(ctx.models)
    if ctx.critic_model is not None and any(METHODS[m].family == "lrw" for m in results):
        res.models["critic"] = ctx.critic_model  # the critic the latent reweighting family started from
    return res


def _score(res: RefinementResult, split: DataSplit, method_list: list[str], scoring: str, ev: dict, n_samples: int,
           seed: int, timings: dict) -> dict:
    """The scores of every method, ``{method: {...}}``, timed as ``timings["metrics"]``."""
    scores = {}
    t0 = time.perf_counter()
    for mth in method_list:
        w, sc = res.weights.get(mth), {}
        if scoring in ("laser", "all"):
            sc.update(score_sample(split.truth, split.truth_ind, res.samples[mth], weights=w,
                                   hist_range=split.hist_range, seed=seed))
        if scoring in ("lrw", "all"):
            sc["lrw"] = score_lrw(split.truth, split.truth_ind, res.samples[mth], weights=w,
                                  n=min(ev["n"], n_samples // ev["repeats"]), repeats=ev["repeats"], k=ev["k"])
        scores[mth] = sc
    timings["metrics"] = time.perf_counter() - t0
    return scores


def _speeds(base: Generator, results: dict[str, MethodResult], ev: dict) -> tuple[dict, dict | None]:
    """Samples per second of the base and of every refined generator (and their ratio), and
    the inference cost per delivered sample of every method that returned a sampler."""
    rates = sampling_rates({"base": base, **{n: r.generator for n, r in results.items() if r.generator is not None}})
    for name in [n for n in rates if n != "base"]:
        rates[f"{name}_over_base"] = rates[name] / rates["base"]
    makers = {n: r.sampler_factory for n, r in results.items() if r.sampler_factory is not None}
    return rates, (inference_cost(base, makers, n=ev["cost_n"]) if makers else None)
