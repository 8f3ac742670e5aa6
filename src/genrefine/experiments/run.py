"""Refinement end to end (what ``genrefine refine`` runs): fit or take a base generator, run
every requested method from the registry (:mod:`genrefine.methods`) on one shared
:class:`~genrefine.methods.RunContext`, score everything against held-out truth, rank the
methods, and write the results into a run directory
(:class:`~genrefine.experiments.rundir.RunDirectory`: locked, recorded, replaced all at once).

Two families of methods share the run:

- LaSeR (Sec. 3 of the LaSeR paper): DCTR classifier weights pulled back to the latent space,
  sampled by rejection, HMC, Langevin (DDLS) or a refiner network (``dctr``, ``rejection``,
  ``hmc``, ``ddls``, ``laser``, ``laser-flow``);
- latent reweighting (Issenhuth et al.) and its baselines: a latent importance network
  against a Wasserstein critic (``latentrs``, ``latentga``, ``latentrsga``), the
  discriminator's density ratios (``drs``, ``mhgan``, ``sir``; ``*-dctr`` with the DCTR
  classifier's instead) and discriminator optimal transport (``dot``).

Data of any dimension: flat rows ``(n, D)`` with a ``data_shape`` (``(D,)`` or ``(C, H, W)``).
Everything that can be checked before training is (arguments, device, settings, data,
dimension and shape against the base, the rows the scores need, memory for the samples,
the output directory); no output is written unless every sample and weight is finite.
"""

from __future__ import annotations

import contextlib
import inspect
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from genrefine import distributed
from genrefine import metrics as M
from genrefine.data import DATASETS, FINITE_SIZES, load_flat
from genrefine.data.files import to_flat
from genrefine.experiments.config import build_config
from genrefine.experiments.outputs import write_outputs
from genrefine.experiments.result import RefinementResult
from genrefine.experiments.rundir import CHECKPOINTS, RunDirectory, fingerprint, make_record
from genrefine.experiments.scoring import (SCORINGS, check_score_rows, inference_cost, rank_run, sampling_rates,
                                           score_lrw, score_methods_suite, score_sample)
from genrefine.generators import FAMILIES, AdversarialGenerator, Generator
from genrefine.methods import METHODS, MethodResult, RunContext, check_method, fit_methods
from genrefine.timing import timed
from genrefine.validation import MIN_DATA_ROWS, resolve_device

#: training rows the base's energy-distance monitor compares fresh samples with, each epoch
MONITOR_ROWS = 1000
#: base families ``run_refinement`` can train, by name: every registered family with a preset section
BASE_CLASSES: dict[str, type[Generator]] = {name: cls for name, cls in FAMILIES.items() if cls.preset_section}
BASE_FAMILIES = tuple(BASE_CLASSES)
#: the methods of a default run: every LaSeR method for a flow base, every latent reweighting
#: method for an adversarial base (it brings its critic)
LASER_DEFAULT = ("base", "dctr", "rejection", "hmc", "laser", "laser-flow")
LRW_DEFAULT = ("base", "latentrs", "latentga", "latentrsga", "drs", "mhgan", "sir", "dot")
DEFAULT_METHODS = {"realnvp": LASER_DEFAULT, "ot-flow": LASER_DEFAULT,
                   **{name: LRW_DEFAULT for name, cls in FAMILIES.items() if issubclass(cls, AdversarialGenerator)}}
#: candidates of a default run on a user's generator, kept where the generator serves them
#: (:func:`default_methods`): no method here needs gradients but HMC
USER_METHODS = ("base", "dctr", "rejection", "sir-dctr", "hmc", "laser", "laser-flow")
#: a default run on a generator with hidden randomness: the direct pull-back (rejection) beside
#: OmniFold's latent weights, sampled and refined
STOCHASTIC_METHODS = ("base", "dctr", "rejection", "omnifold", "rejection-omnifold", "hmc-omnifold", "laser-omnifold")


def method_names() -> tuple[str, ...]:
    """``base`` and every registered method, in the run's canonical order."""
    return ("base", *METHODS)


def default_methods(base) -> list[str]:
    """The methods of a default run on ``base`` (a generator, or a family name): the family's
    own set for the flows and the adversarial families (:data:`DEFAULT_METHODS`), else those of :data:`USER_METHODS` that the
    generator can serve (no gradient method when it is not differentiable, only data-space
    weights when it carries hidden randomness)."""
    family = base if isinstance(base, str) else getattr(base, "family", None)
    if getattr(base, "stochastic", False):
        return list(STOCHASTIC_METHODS)
    if family in DEFAULT_METHODS:
        return list(DEFAULT_METHODS[family])
    base = FAMILIES.get(base, base) if isinstance(base, str) else base  # a family's class declares what it serves
    keep = []
    for name in USER_METHODS:
        try:
            if name == "base" or check_method(base, name):
                keep.append(name)
        except ValueError:
            continue
    return keep


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
class DataSplit:
    """Training rows, the truth, an independent truth for the floors, and how to score them."""

    x_train: np.ndarray
    truth: np.ndarray
    truth_ind: np.ndarray
    hist_range: list | None
    label: str
    data_shape: tuple[int, ...]
    held_out: bool  # the truth was kept aside from the data (files, arrays, finite sets)


def _open_run(stack: contextlib.ExitStack, out: str | None, record: dict | None, resume: bool):
    """``(run directory, ckpt)``: the run directory ``out`` entered on ``stack`` (rank 0's only,
    under torchrun; None without ``out``) and ``ckpt(name)``, the path of a training checkpoint
    (None without ``out``). Under torchrun rank 0 owns the directory, an error opening it
    reaches every rank, and the other ranks only read its checkpoints, when resuming."""
    runs: list[RunDirectory] = []

    def open_run() -> str | None:  # what the checkpoints belong to: resume refuses another data set or options
        if out is None:
            return None
        runs.append(stack.enter_context(RunDirectory(out, record, resume=resume)))
        return os.path.join(runs[0].path, CHECKPOINTS)

    root = distributed.from_rank0(open_run)
    if runs:
        return runs[0], (lambda name: os.path.join(runs[0].checkpoints, name))  # created on first use
    return None, ((lambda name: os.path.join(root, name)) if root is not None else (lambda name: None))


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
    data_shape=None,
    settings: dict | None = None,
) -> RefinementResult:
    """Run the refinement protocol; see the module docstring. Returns a
    :class:`RefinementResult` and, when ``out`` is given, writes ``samples/``, ``latents/``,
    ``models/``, ``figures/`` and ``metrics.json`` into the run directory ``out`` (all at
    once, after every check; ``OUT/checkpoints`` for ``resume``, ``OUT/run.json`` its record).

    ``data`` is a built-in set name (a synthetic 2-D set: training data and two independent
    truth samples of ``n_samples`` points are drawn; a finite set such as ``digits``: split
    like a file), a file path (.npy/.npz/.csv/MNIST IDX), or an array ``(n, D)``, ``(n, H, W)``
    or ``(n, C, H, W)`` (a ``holdout`` fraction is kept aside and split in two halves: the
    truth and the independent truth for the floors). ``data_shape`` states the layout of one
    row (``(D,)`` or ``(C, H, W)``); by default it is read off the data, or taken from the
    base when the data is flat. A base whose rows are flat takes the data's image shape.

    ``base``: any :class:`Generator` of the data's dimension (a user's model through
    :func:`~genrefine.generators.as_generator`); when None a ``base_family`` (``realnvp`` or
    ``wgan-gp``) is trained. ``critic`` is a trained critic for the latent reweighting methods
    (default: the WGAN-GP base's own, else a new one); ``w_phi`` overrides the latent
    importance network's settings (``{"m": 3.0, "inputs": "data", "fit": {"lambda1": 10.0}}``);
    ``overrides`` the preset's sections (``{"classifier": {"epochs": 20}}``); ``params`` the
    methods' own settings (``{"hmc": {"burn_in": 100}}``); ``settings`` the checked override
    path of ``--set`` / ``--config`` (:func:`genrefine.settings.apply_settings`). Every
    method's needs are checked against the base before any training.

    ``scoring``: ``laser``, ``lrw``, ``all``, ``suite`` or ``auto`` (:func:`_resolve_scoring`).

    ``metrics.json`` (``result.metrics``): the run's header (:func:`_header`), then ``scores``
    (``{method: ...}``), ``ranking`` (:func:`~genrefine.experiments.scoring.rank_run`),
    ``failed``, ``timings_seconds``, ``samples_per_second``, ``inference_cost``, ``diagnostics``.
    """
    method_list = parse_methods(methods)
    base_family = base.family if base is not None else base_family
    _check_arguments(method_list, base, base_family, scoring, n_samples, iterations, holdout)
    dev = check_device(device)
    data_name = data if isinstance(data, str) and data in DATASETS else None
    cfg = build_config(preset, data_name, base_family, w_phi, overrides, params, settings)
    n_samples = int(n_samples)
    split = _load_split(data, data_name, cfg, n_samples, seed, key, holdout, data_shape)
    split.data_shape = _match_base(base, split.data_shape, split.x_train.shape[1])
    dim = split.x_train.shape[1]
    scoring = _resolve_scoring(scoring, method_list, base, base_family, dim)
    check_score_rows(scoring, len(split.truth), n_samples, cfg["evaluation"], dim, split.held_out)
    check_memory(len(method_list), n_samples, dim, _latent_dim(base, base_family, cfg, dim))
    options = dict(methods=method_list, preset=preset, seed=seed, n_samples=n_samples, iterations=int(iterations),
                   scoring=scoring, base_family=base_family, config=cfg)
    record = _record(split, base, critic, holdout=holdout, key=key, **options) if out is not None else None
    first = distributed.rank_and_size()[0] == 0
    with contextlib.ExitStack() as stack:
        run, ckpt = _open_run(stack, out, record, resume)
        res = _refine(split, method_list, cfg, base, base_family, critic, n_samples, dev, seed, iterations,
                      progress and first, ckpt, scoring)
        res.metrics = {**_header(split, device=str(dev), **options), **res.metrics}
        if run is not None:
            write_outputs(res, run.staging)
            run.commit()
    return res


def _header(split: DataSplit, **options) -> dict:
    """The head of ``metrics.json``: ``data``, ``dim``, ``data_shape``, ``n_train``, ``n_truth``,
    ``hist_range`` from the split, then ``options`` (``methods``, ``preset``, ``seed``,
    ``n_samples``, ``device``, ``iterations``, ``config``, ``base_family``, ``scoring``)."""
    return {"data": split.label, "dim": int(split.x_train.shape[1]), "data_shape": list(split.data_shape),
            "n_train": int(len(split.x_train)), "n_truth": int(len(split.truth)), "hist_range": split.hist_range,
            **options}


def _refine(split: DataSplit, method_list: list[str], cfg: dict, base, base_family: str, critic, n_samples: int,
            dev: torch.device, seed: int, iterations: int, progress: bool, ckpt, scoring: str) -> RefinementResult:
    """Train (or take) the base, fit every method, check the outputs finite, score and rank."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    x_train_t = torch.as_tensor(split.x_train, device=dev)
    base, critic, timings, diagnostics = _fit_base(base, base_family, cfg, x_train_t, progress, ckpt, critic,
                                                   split.data_shape)
    ctx = RunContext(base, x_train_t, cfg, n_samples, device=dev, progress=progress, ckpt=ckpt, critic=critic,
                     iterations=iterations, seed=seed)
    ctx.timings.update(timings)
    ctx.diagnostics.update(diagnostics)
    z_base, x_base = ctx.base_sample()
    warn_scale_mismatch(split.x_train, x_base)
    # a method that refuses its input (degenerate weights, a sampler past its budget) is left out
    # and recorded, the others go on (each on its own random stream)
    results = fit_methods(ctx, [m for m in method_list if m != "base"], skip_failures=True)
    failed = dict(ctx.diagnostics.get("failed", {}))
    res = _collect(ctx, results, z_base, x_base, split.truth)
    res.data_shape = split.data_shape
    check_finite_outputs(res)
    scored = [m for m in method_list if m not in failed]
    scores = _score(res, split, scored, scoring, cfg["evaluation"], n_samples, seed, ctx.timings, dev)
    rates, cost = _speeds(base, results, cfg["evaluation"], split.x_train.shape[1], n_samples, scoring)
    weighted_only = [m for m in scored if m in METHODS and METHODS[m].sampled_by]
    res.metrics = {"scores": scores, "ranking": rank_run(scores, scoring, split.data_shape, weighted_only),
                   "failed": failed,
                   "timings_seconds": ctx.timings, "samples_per_second": rates, "inference_cost": cost,
                   "diagnostics": ctx.diagnostics}
    return res


#: how far the generator's outputs may be from the data's spread and centre before the run says
#: they are on different scales (a generator in [0, 255] against 8-bit images read as [0, 1])
SCALE_MISMATCH = 10.0


def warn_scale_mismatch(x_data, x_gen, rows: int = 10_000) -> None:
    """Warn (one line) when the generator's outputs and the data rows are on different scales:
    their overall spreads differ by more than :data:`SCALE_MISMATCH` times, or their means by
    more than that many data spreads. Refinement reweights samples; it cannot rescale them."""
    d = torch.as_tensor(x_data[:rows]).double().cpu()
    g = torch.as_tensor(x_gen[:rows]).double().cpu()
    sd_d, sd_g = float(d.std()), float(g.std())
    if not (sd_d > 0 and sd_g > 0):
        return
    gap = abs(float(g.mean()) - float(d.mean())) / sd_d
    if max(sd_g / sd_d, sd_d / sd_g) > SCALE_MISMATCH or gap > SCALE_MISMATCH:
        warnings.warn(f"the generator's outputs and the data are on different scales (spread {sd_g:.3g} against "
                      f"{sd_d:.3g}, means {float(g.mean()):.3g} against {float(d.mean()):.3g}); check their units "
                      "(8-bit images in a file are read divided by 255): reweighting cannot rescale samples",
                      stacklevel=2)


def _check_arguments(method_list: list[str], base: Generator | None, base_family: str, scoring: str, n_samples,
                     iterations, holdout) -> None:
    """Refuse bad arguments and methods the base cannot serve, before any work."""
    if base is not None and not isinstance(base, Generator):
        raise TypeError(f"base must be a genrefine Generator (wrap a model with as_generator), got {type(base).__name__}")
    if base is None and base_family not in BASE_FAMILIES:
        raise ValueError(f"base: unknown family '{base_family}' (choose from {', '.join(BASE_FAMILIES)})")
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    for name, value in (("n-samples", n_samples), ("iterations", iterations)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout < 1:
        raise ValueError(f"holdout must lie in (0, 1), got {holdout!r}")
    for name in (m for m in method_list if m != "base"):
        check_method(base if base is not None else BASE_CLASSES[base_family], name)


def check_device(device) -> torch.device:
    """``device`` as a torch device that exists here (``cpu``, ``cuda``, ``cuda:N``, ``auto``);
    anything else is one ValueError line."""
    hint = "use cpu, cuda, cuda:N or auto"
    try:
        dev = resolve_device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: unknown device {device!r}; {hint}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: {device!r} is not supported; {hint}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {device!r} does not exist (this machine has {torch.cuda.device_count()} "
                         "CUDA devices)")
    return dev


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: ``MemAvailable`` of ``/proc/meminfo``
    (free plus reclaimable cache) where the kernel reports it, else the free pages by
    ``os.sysconf``; None when neither can be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_methods: int, n_samples: int, dim: int, latent_dim: int, option: str = "--n-samples") -> None:
    """Refuse, before any training, a run whose sample arrays cannot fit in memory: every
    method keeps ``n_samples`` float32 samples and latents, ``methods x n_samples x (D +
    latent_dim) x 4`` bytes in all. ``option`` names what to lower."""
    need = int(n_methods) * int(n_samples) * (int(dim) + int(latent_dim)) * 4
    avail = available_memory()
    if avail is None or need <= avail:
        return
    most = avail // max(1, int(n_methods) * (int(dim) + int(latent_dim)) * 4)
    raise ValueError(f"{option.lstrip('-')}: {n_methods} methods x {n_samples:,} samples x ({dim} + {latent_dim} latent) "
                     f"values x 4 bytes = {need / 2**30:.1f} GiB, more than the {avail / 2**30:.1f} GiB of memory "
                     f"available; lower {option} to at most {most:,}" + (" or run fewer methods" if n_methods > 1 else ""))


def model_fingerprint(model) -> dict:
    """What a resumed run checks of a given model: its family, settings and a SHA-256 of its
    tensors (a function without weights: its settings only)."""
    h = hashlib.sha256()
    state = model.state_dict() if isinstance(model, torch.nn.Module) else {}
    for k in sorted(state):
        h.update(k.encode())
        h.update(fingerprint(state[k]).encode())
    try:
        config = json.loads(json.dumps(model.config(), default=str)) if hasattr(model, "config") else None
    except (TypeError, ValueError):
        config = None
    return {"family": getattr(model, "family", type(model).__name__), "config": config, "tensors": h.hexdigest()}


def _record(split: DataSplit, base, critic, **options) -> dict:
    """The run directory's record: fingerprints of the three data splits, the options, the
    layout of a row, and the given base and critic (:func:`model_fingerprint`)."""
    options.update(data_shape=list(split.data_shape), base=None if base is None else model_fingerprint(base),
                   critic=None if critic is None else model_fingerprint(critic))
    return make_record({"train": split.x_train, "truth": split.truth, "truth_ind": split.truth_ind}, options)


def _latent_dim(base, base_family: str, cfg: dict, dim: int) -> int:
    if base is not None:
        return int(base.latent_dim)
    return int(cfg[BASE_CLASSES[base_family].preset_section].get("latent_dim", dim))


def _wraps_user_model(base) -> bool:
    if base is None:
        return False
    from genrefine.generators.base import generator_spec, spec_wraps_user_model

    try:
        return bool(spec_wraps_user_model(generator_spec(base)))
    except Exception:  # a generator whose config cannot be read: judge by its family
        return base.family in ("module", "callable")


def _resolve_scoring(scoring: str, method_list: list[str], base, base_family: str, dim: int) -> str:
    """The scores a run gives: ``laser`` (2-D: histogram JSD / EMD in both conventions, exact
    EMD and energy distance), ``lrw`` (the latent reweighting paper's exact EMD and k-NN
    precision / recall, ``repeats`` evaluations of ``n`` fresh points with 97 % intervals, and
    the inference cost), ``all`` (both), ``suite`` (:func:`~genrefine.metrics.score_suite`, any
    dimension, each score with its floor; a feature network trained on the truth for images).

    ``auto``: the any-dimension suite for D != 2 or a user's model; for the built-in 2-D
    benchmarks what their papers report (``lrw`` with a latent reweighting method or a WGAN-GP
    base, else ``laser``), so their metrics keep their keys."""
    if scoring != "auto":
        return scoring
    if dim != 2 or _wraps_user_model(base):
        return "suite"
    lrw = any(METHODS[m].family == "lrw" for m in method_list if m != "base")
    return "lrw" if (base_family == "wgan-gp" or lrw) else "laser"


def _load_split(data, data_name: str | None, cfg: dict, n_samples: int, seed: int, key: str | None,
                holdout: float, data_shape) -> DataSplit:
    """Synthetic built-in sets: fresh training data and two truth samples of ``n_samples``;
    finite built-in sets, files and arrays: a seeded permutation, ``holdout`` of the rows kept
    aside and halved."""
    if data_name is not None and data_name not in FINITE_SIZES:
        x, shape = load_flat(data_name, cfg["n_train"], seed, data_shape=data_shape)
        return DataSplit(x, load_flat(data_name, n_samples, seed + 1_000_001)[0],
                         load_flat(data_name, n_samples, seed + 2_000_003)[0],
                         M.PAPER_RANGES.get(data_name), data_name, shape, False)
    if isinstance(data, str):
        arr, shape = load_flat(data, None, seed, key=key, data_shape=data_shape)
        label = data_name or os.path.basename(data)
    elif isinstance(data, (np.ndarray, torch.Tensor, list, tuple)):
        arr, shape = to_flat(data, data_shape, name="data")
        label = "array"
    else:
        raise TypeError(f"data must be a built-in set name, a file path or an array, got {type(data).__name__}")
    arr = arr.astype(np.float32, copy=False)
    if len(arr) < MIN_DATA_ROWS:
        raise ValueError(f"{label if isinstance(data, str) else 'data'}: needs at least {MIN_DATA_ROWS} rows (some are "
                         f"held out as truth, in two halves of at least 2), got {len(arr)}")
    perm = np.random.default_rng(seed).permutation(len(arr))
    n_hold = max(4, int(round(holdout * len(arr))))
    half = n_hold // 2
    return DataSplit(arr[perm[n_hold:]], arr[perm[:half]], arr[perm[half:2 * half]], None, label, shape, True)


def _match_base(base, shape: tuple[int, ...], dim: int) -> tuple[int, ...]:
    """The layout of a row both the data and the base agree on; one ValueError line when the
    base makes rows of another dimension or image shape. Flat rows on one side take the other
    side's image shape (a flat base is told the data's, as its ``data_shape``)."""
    if base is None:
        return shape
    bshape = tuple(int(v) for v in getattr(base, "data_shape", (base.data_dim,)))
    if base.data_dim != dim:
        raise ValueError(f"base generator makes {base.data_dim}-d samples (rows of shape {bshape}) but the data is "
                         f"{dim}-d (rows of shape {tuple(shape)})")
    if bshape == tuple(shape):
        return tuple(shape)
    if len(shape) == 1:
        return bshape
    if len(bshape) == 1:
        base.data_shape = tuple(shape)  # what the classifier, scores and figures read
        return tuple(shape)
    raise ValueError(f"base generator makes rows of shape {bshape} but the data's rows have shape {tuple(shape)}")


def _fit_base(base: Generator | None, base_family: str, cfg: dict, x_train: torch.Tensor, progress: bool, ckpt,
              critic, data_shape) -> tuple[Generator, object, dict, dict]:
    """The frozen base (trained when none is given, by its family's preset section) and its
    critic (an adversarial family's own when none is given); timings and diagnostics."""
    timings: dict[str, float] = {}
    diagnostics: dict[str, dict] = {}
    if base is None:
        cls = BASE_CLASSES[base_family]
        section = dict(cfg[cls.preset_section])
        images = section.pop("images", {})  # the section's own values for image rows
        if len(tuple(data_shape)) == 3:
            section.update(images)
        arch = {k: section.pop(k) for k in cls.arch_keys if k in section}
        base = cls.build(tuple(data_shape), x_train, **arch).to(x_train.device)
        if "monitor" in inspect.signature(base.fit).parameters:  # Fig. 11's energy distance, per epoch
            section["monitor"] = x_train[:MONITOR_ROWS]
        _, timings["train_base"] = timed(lambda: base.fit(x_train, progress=progress, checkpoint=ckpt("base"),
                                                          **section), x_train.device)
        critic = getattr(base, "critic_", None) if critic is None else critic
        diagnostics["base"] = {"family": base_family, "final": dict(base.history_[-1]) if base.history_ else None,
                               "history": base.history_}
    base = base.to(x_train.device).freeze()
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
        if r.sampler_factory is not None:
            res.samplers[name] = r.sampler_factory
        res.models.update(r.models)
        ctx.diagnostics[name] = r.diagnostics
    res.models.update(ctx.models)
    if ctx.critic_model is not None and any(METHODS[m].family == "lrw" for m in results):
        res.models["critic"] = ctx.critic_model  # the critic the latent reweighting family started from
    return res


def check_finite_outputs(res: RefinementResult) -> None:
    """Refuse (one ValueError line naming the method) samples, latents or weights that are not
    finite, and weights that are negative or all zero: they are never scored or written."""
    for name in res.samples:
        for what, arr in (("samples", res.samples[name]), ("latents", res.latents.get(name))):
            if arr is None:
                continue
            bad = ~np.isfinite(arr).all(axis=tuple(range(1, arr.ndim)))
            if bad.any():
                raise ValueError(f"method {name}: {int(bad.sum())} of {len(arr)} {what} are NaN or inf; nothing was "
                                 "written (see its diagnostics, or lower its step sizes)")
        w = res.weights.get(name)
        if w is not None and (not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0):
            raise ValueError(f"method {name}: its weights are not finite non-negative numbers with a positive sum "
                             f"({int((~np.isfinite(w)).sum())} NaN or inf of {len(w)}); nothing was written")


def _score(res: RefinementResult, split: DataSplit, method_list: list[str], scoring: str, ev: dict, n_samples: int,
           seed: int, timings: dict, dev: torch.device) -> dict:
    """The scores of every method, ``{method: {...}}``, timed as ``timings["metrics"]``."""
    t0 = time.perf_counter()
    if scoring == "suite":
        scores = score_methods_suite(split.truth, split.truth_ind, res.samples, res.weights, method_list,
                                     split.data_shape, seed=seed, device=dev)
        timings["metrics"] = time.perf_counter() - t0
        return scores
    scores = {}
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


def _speeds(base: Generator, results: dict[str, MethodResult], ev: dict, dim: int, n_samples: int,
            scoring: str) -> tuple[dict, dict | None]:
    """Samples per second of the base and of every refined generator (and their ratio), and,
    for the latent reweighting protocol (scoring ``lrw`` or ``all``), the inference cost per
    delivered sample of its methods. Timed on as many samples as the run delivers (at least
    1,000), at most 200,000 and at most about 80 MB of float32 rows per call."""
    fits = 20_000_000 // (dim + base.latent_dim)
    n = int(max(1_000, min(200_000, n_samples, fits)))
    gens = {"base": base, **{name: r.generator for name, r in results.items() if r.generator is not None}}
    rates = sampling_rates(gens, n=n)
    for name in [k for k in rates if k != "base"]:
        rates[f"{name}_over_base"] = rates[name] / rates["base"]
    if scoring not in ("lrw", "all"):
        return rates, None
    # the protocol's cost table (its methods only, as before the plug-ins: timing HMC chains
    # on cost_n samples, five times over, would cost more than the run)
    makers = {name: r.sampler_factory for name, r in results.items()
              if r.sampler_factory is not None and METHODS[name].family == "lrw"}
    return rates, (inference_cost(base, makers, n=int(min(ev["cost_n"], max(1_000, fits)))) if makers else None)
