"""Scores of a run: the LaSeR histogram scores with their floors, the latent reweighting paper's
exact EMD and k-NN precision / recall with 97 % intervals, the any-dimension suite
(:func:`~genrefine.metrics.score_suite`), the ranking that says which method to use, the rows
each scoring needs (checked before training), sampling rates and the inference cost per
delivered sample."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from genrefine import metrics as M
from genrefine.generators.base import Generator
from genrefine.metrics import FeatureNet, exact_emd, rank_methods, score_suite
from genrefine.metrics.precision_recall import mean_interval, precision_recall

#: scorings a run can ask for (``auto`` is resolved by the run)
SCORINGS = ("auto", "laser", "lrw", "all", "suite")
#: fewest rows of each sample any score is computed on (k-NN balls with k = 3 need a few more)
MIN_SCORE_ROWS = 10


def check_score_rows(scoring: str, n_truth: int, n_samples: int, ev: dict, dim: int, from_file: bool) -> None:
    """Refuse, before any training, a scoring the data cannot serve: histogram scorings need
    2-D data; every scoring needs ``MIN_SCORE_ROWS`` rows in each truth half and in each
    method's samples; ``lrw`` needs ``n x repeats`` rows of each, with ``n = min(evaluation.n,
    n_samples // repeats)`` (as :func:`score_lrw` is called by the run). ``n_truth`` is the
    rows of each truth half; ``from_file``: the truth is held out of the data (not drawn)."""
    if scoring in ("laser", "all") and dim != 2:
        raise ValueError(f"scoring {scoring}: histogram scores need 2-D data, this data is {dim}-D; "
                         "use --scoring suite (any dimension) or auto")
    if n_samples < MIN_SCORE_ROWS:
        raise ValueError(f"n-samples: scoring needs at least {MIN_SCORE_ROWS} samples per method, got {n_samples}")
    more_truth = ("raise --holdout (the held-out fraction) or give more rows" if from_file
                  else "raise --n-samples")
    if n_truth < MIN_SCORE_ROWS:
        raise ValueError(f"data: scoring needs at least {MIN_SCORE_ROWS} held-out truth rows per half, the split "
                         f"gives {n_truth}; {more_truth}")
    if scoring not in ("lrw", "all"):
        return
    repeats = int(ev["repeats"])
    n = min(int(ev["n"]), n_samples // repeats)
    if n < MIN_SCORE_ROWS:
        raise ValueError(f"scoring lrw: {repeats} evaluations of n = {n} points (n-samples {n_samples} // repeats); "
                         f"raise --n-samples to at least {MIN_SCORE_ROWS * repeats} or lower evaluation.repeats "
                         "(--set evaluation.repeats=K)")
    if n_truth < n * repeats:
        fit = max(n_truth // repeats, 0)
        raise ValueError(f"scoring lrw: {repeats} evaluations of n = {n} fresh truth points need {n * repeats} "
                         f"held-out rows per half, the data gives {n_truth}; lower the evaluation size "
                         f"(--set evaluation.n={fit}, or --n-samples {fit * repeats}), "
                         "or use --scoring suite (it scores on the rows there are)")


def score_methods_suite(truth: np.ndarray, truth_ind: np.ndarray, samples: dict, weights: dict, methods: list[str],
                        data_shape, seed: int = 0, device=None) -> dict:
    """:func:`score_suite` for every method against the same truth rows: one
    :class:`~genrefine.metrics.FeatureNet` fitted on ``truth`` for images, passed to every
    method; the first method's floors (the base's, when it ran) reused by the others."""
    shape = tuple(int(v) for v in data_shape)
    features = FeatureNet(shape, seed=seed, device=device).fit(truth) if len(shape) == 3 else None
    scores, floors = {}, None
    for m in methods:
        scores[m] = score_suite(truth, truth_ind, samples[m], data_shape=shape, weights=weights.get(m),
                                features=features, seed=seed, device=device, floors=floors)
        floors = floors or scores[m]
    return scores


def ranking_key(scoring: str, data_shape) -> str:
    """The score a run ranks its methods by: the exact EMD of the latent reweighting protocol
    (``lrw``), the features' Frechet distance for images (``suite``), else the energy distance."""
    if scoring == "lrw":
        return "exact_emd"
    if scoring == "suite" and len(tuple(data_shape)) == 3:
        return "frechet_features"
    return "energy"


def rank_run(scores: dict, scoring: str, data_shape, weighted_only=()) -> dict:
    """Every method of a run ordered by :func:`ranking_key` (best first, on held-out truth), with
    the share of the base's distance to its floor that each closes, and the method to use:
    ``{"key", "direction", "ranking", "best", "base", "best_beats_base", "recommended"}``.

    ``recommended`` is the best method that hands back a generator: the base itself when no
    such method beats it at this resolution. Methods in ``weighted_only`` (weighted samples,
    no generator: ``dctr``, ``omnifold``) are ranked but never recommended."""
    key = ranking_key(scoring, data_shape)
    if scoring == "lrw":  # the mean over evaluations, beside the mean of the floors
        view = {m: {key: {"value": s["lrw"]["emd"]["mean"], "floor": s["lrw"]["emd"]["floor"]["mean"],
                          "n": s["lrw"]["n"] * s["lrw"]["repeats"]}} for m, s in scores.items()}
    else:
        view = scores
    if key == "frechet_features" and not any(key in s for s in view.values()):
        key = "c2st_auc"
    out = rank_methods(view, key=key)
    out["recommended"] = next((r["method"] for r in out["ranking"] if r["method"] not in set(weighted_only)),
                              out["best"])
    return out


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
    out["energy"] = M.score_with_error(M.energy_distance, t[:nd], s[pick], ti[:nd],
                                       weights_y=None if w is None else w[pick])
    out["energy"]["n"] = int(nd)
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


def sampling_rates(gens: dict[str, Generator], n: int = 200_000, repeats: int = 5) -> dict[str, float]:
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
