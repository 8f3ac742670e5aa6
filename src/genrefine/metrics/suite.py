"""Every score that fits the data's dimension, each beside its truth-against-truth floor, and
a ranking of methods by one of them ("which method to use").

The floor of a score is the same score between the truth and a second, independent truth
sample of the same size (LaSeR Sec. 4.2): what a perfect generator would get at that sample
size. A value at its floor is indistinguishable from the truth at that resolution.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from genrefine.metrics.c2st import c2st_auc
from genrefine.metrics.distances import energy_distance, exact_emd
from genrefine.metrics.features import FeatureNet
from genrefine.metrics.frechet import frechet_distance
from genrefine.metrics.histogram import hist_emd, hist_jsd, marginal_jsd, resolve_range
from genrefine.metrics.precision_recall import precision_recall
from genrefine.validation import check_array, check_weights

__all__ = ["DEFAULT_SIZES", "SCORE_DIRECTIONS", "rank_methods", "score_suite"]

#: how each score reads: "lower" is better, "higher" is better, or "half" (closest to 0.5)
SCORE_DIRECTIONS = {
    "energy": "lower", "exact_emd": "lower", "precision": "higher", "recall": "higher", "c2st_auc": "half",
    "frechet_features": "lower", "precision_features": "higher", "recall_features": "higher",
    "hist_jsd": "lower", "hist_emd": "lower", "marginal_jsd": "lower",
}

#: rows per score (each capped by the smallest of the three samples). Exact EMD is O(n^3);
#: k-NN precision/recall uses the latent-reweighting paper's n = 2048 (appendix Sec. C).
DEFAULT_SIZES = {"energy": 5000, "exact_emd": 2000, "pr": 2048, "c2st": 10_000, "features": 10_000,
                 "hist": 200_000}


#: most disjoint blocks of sample rows the energy distance (the usual ranking score) averages
#: over, each against the same truth rows: the floor's expectation with less sample noise. On
#: saved samples of 4-5 methods (500 truth rows, 2000 sample rows: 4 blocks) the method best
#: against 20,000 fresh truth rows was picked more often (docs/guide.md, "How the ranking reads")
ENERGY_BLOCKS = 8


def _badness(value: float, direction: str) -> float:
    return {"lower": value, "higher": -value, "half": abs(value - 0.5)}[direction]


def weighted_precision_recall(t: np.ndarray, s: np.ndarray, w, rng: np.random.Generator,
                              k: int = 3) -> tuple[float, float]:
    """k-NN precision and recall of ``s`` (importance weights ``w`` or None) against ``t``.

    Precision takes the weights directly (weighted fraction of covered sample points).
    Recall needs the sample's own k-NN balls, which weights do not define: it uses the
    distinct points of a multinomial resample of ``len(s)`` draws with probabilities ``w``
    (the support the weights keep at this sample size; duplicates would shrink the balls to
    zero). Fewer than ``k + 1`` distinct points cover nothing: recall 0.
    """
    if w is None:
        p, r = precision_recall(t, s, k=k)
        return p, r
    p = precision_recall(t, s, k=k, weights_fake=w)[0]
    keep = np.unique(rng.choice(len(s), len(s), replace=True, p=w / w.sum()))
    r = precision_recall(t, s[keep], k=k)[1] if len(keep) > k else 0.0
    return p, r


def _check_inputs(truth, truth_independent, sample, data_shape, weights):
    t = check_array(truth, name="truth", min_rows=10)
    d = t.shape[1]
    ti = check_array(truth_independent, name="truth_independent", min_rows=10, dim=d)
    s = check_array(sample, name="sample", min_rows=10, dim=d)
    w = None if weights is None else check_weights(weights, name="weights", n=len(s)).astype(np.float64)
    shape = (d,) if data_shape is None else tuple(int(v) for v in data_shape)
    if int(np.prod(shape)) != d or len(shape) not in (1, 3):
        raise ValueError(f"data_shape: expected (D,) or (C, H, W) with {d} entries in all, got {data_shape!r}")
    return t, ti, s, w, shape


def _features_fn(features, shape, truth, seed: int) -> Callable | None:
    if features is None:
        return FeatureNet(shape, seed=seed).fit(truth).features if len(shape) == 3 else None
    fn = features.features if hasattr(features, "features") else features
    if not callable(fn):
        raise TypeError(f"features: expected a FeatureNet or a callable (n, D) -> (n, k), got {type(features).__name__}")
    return fn


def _sizes(sizes: Mapping[str, int] | None) -> dict[str, int]:
    """:data:`DEFAULT_SIZES` with the entries of ``sizes`` (integers >= 10) in their place."""
    sz = dict(DEFAULT_SIZES)
    for key, v in (sizes or {}).items():
        if key not in DEFAULT_SIZES:
            raise ValueError(f"sizes: unknown key {key!r}; known: {', '.join(DEFAULT_SIZES)}")
        if int(v) != v or int(v) < 10:
            raise ValueError(f"sizes[{key!r}]: expected an integer >= 10, got {v}")
        sz[key] = int(v)
    return sz


def score_suite(truth, truth_independent, sample, data_shape=None, weights=None, features=None, seed: int = 0,
                sizes: Mapping[str, int] | None = None, device=None,
                floors: Mapping[str, Mapping] | None = None) -> dict[str, dict]:
    """Score ``sample`` against ``truth``, each score with its floor (same score between
    ``truth`` and ``truth_independent`` at the same ``n``).

    Scores (names as returned; direction in :data:`SCORE_DIRECTIONS`):

    - ``energy``: :func:`energy_distance` (V-statistic; distances by matrix products,
      ``mm=True``), on ``sizes["energy"]`` rows; the mean over up to :data:`ENERGY_BLOCKS`
      disjoint blocks of that many sample rows, each against the same truth rows (``blocks``
      in the result when more than one);
    - ``exact_emd``: exact Wasserstein-1 (:func:`exact_emd`), on ``sizes["exact_emd"]`` rows;
    - ``precision``, ``recall``: k-NN (k = 3) precision/recall, on ``sizes["pr"]`` rows;
    - ``c2st_auc``: classifier two-sample test held-out AUC (0.5 = indistinguishable);
    - ``frechet_features``, ``precision_features``, ``recall_features``: Frechet distance and
      k-NN precision/recall in the features of ``features`` (a fitted :class:`FeatureNet` or
      any ``f(x) -> (n, k)``), on ``sizes["features"]`` rows. Computed whenever ``features``
      is given; for images (``data_shape`` ``(C, H, W)``) without one, an autoencoder
      :class:`FeatureNet` (seed ``seed``) is trained on ``truth`` first (tens of seconds):
      to score several methods in the same features, fit one on the truth and pass it;
    - ``hist_jsd``, ``hist_emd``: only when ``D == 2``: 40 x 40 bins over the truth's range
      (5% padding; points beyond it in the border bins), probability convention
      (:func:`hist_jsd`, :func:`hist_emd`);
    - ``marginal_jsd``: for tabular rows of any ``D``, the mean JSD of the 40-bin histograms of
      each coordinate (:func:`marginal_jsd`), on ``sizes["hist"]`` rows.

    ``weights`` are importance weights of ``sample`` (e.g. DCTR weights). Energy, exact EMD,
    Frechet, C2ST AUC, precision and the histograms take them directly; recall cannot (it
    needs the sample's own k-NN balls) and uses the distinct points of a seeded multinomial
    resample by the weights.

    Rows are drawn without replacement, seeded by ``(seed, score)`` alone: every method scored
    with the same truth, ``seed`` and ``sizes`` (entries of :data:`DEFAULT_SIZES`) meets the
    same truth rows and floors.

    ``floors``: an earlier result of this function for the same ``truth``,
    ``truth_independent``, ``seed``, ``sizes`` and ``features`` (e.g. the base's); its
    floors are reused where the ``n`` matches instead of recomputed (they would come out
    identical), which halves the cost of scoring each further method.

    Returns:
        ``{name: {"value": float, "floor": float, "n": int}}`` (``"blocks": int`` too for a
        block mean).
    """
    t, ti, s, w, shape = _check_inputs(truth, truth_independent, sample, data_shape, weights)
    sz = _sizes(sizes)
    cap = min(len(t), len(ti), len(s))
    prev, out = dict(floors or {}), {}

    def score(key, idx, names, value_fn, floor_fn, transform=None, blocks=1):
        # rows drawn from streams of their own per score: the truth rows (and so the floor)
        # depend on (seed, score, n) only, never on the sample, so every method shares them
        n = min(sz[key], cap)
        rt, rs = np.random.default_rng([seed, idx, 0]), np.random.default_rng([seed, idx, 1])
        a, b = t[rt.choice(len(t), n, replace=False)], ti[rt.choice(len(ti), n, replace=False)]
        k = max(1, min(int(blocks), len(s) // n))  # disjoint blocks of n sample rows
        if transform is not None:
            a, b = (check_array(transform(v), name="features output", min_rows=n) for v in (a, b))
        values = _block_mean(value_fn, a, s, w, rs.choice(len(s), k * n, replace=False).reshape(k, n), transform, rs)
        reuse = all(m in prev and prev[m].get("n") == n for m in names)
        fl = [prev[m]["floor"] for m in names] if reuse else floor_fn(a, b)
        for m, v, f in zip(names, values, fl):
            out[m] = {"value": float(v), "floor": float(f), "n": int(n), **({"blocks": int(k)} if k > 1 else {})}

    score("energy", 0, ["energy"], lambda a, c, wc, r: [energy_distance(a, c, weights_y=wc, mm=True)],
          lambda a, b: [energy_distance(a, b, mm=True)], blocks=ENERGY_BLOCKS)
    score("exact_emd", 1, ["exact_emd"], lambda a, c, wc, r: [exact_emd(a, c, weights_y=wc)],
          lambda a, b: [exact_emd(a, b)])
    score("pr", 2, ["precision", "recall"], weighted_precision_recall, lambda a, b: precision_recall(a, b, k=3))
    score("c2st", 3, ["c2st_auc"], lambda a, c, wc, r: [c2st_auc(a, c, weights_y=wc, seed=seed, device=device)],
          lambda a, b: [c2st_auc(a, b, seed=seed, device=device)])
    feat = _features_fn(features, shape, t, seed)
    if feat is not None:
        score("features", 4, ["frechet_features"], lambda a, c, wc, r: [frechet_distance(a, c, weights_y=wc)],
              lambda a, b: [frechet_distance(a, b)], transform=feat)
        score("features", 5, ["precision_features", "recall_features"], weighted_precision_recall,
              lambda a, b: precision_recall(a, b, k=3), transform=feat)
    _histogram_scores(score, shape)
    return out


def _block_mean(value_fn: Callable, a: np.ndarray, s: np.ndarray, w, blocks: np.ndarray, transform,
                rs: np.random.Generator) -> np.ndarray:
    """``value_fn(a, block, weights, rs)`` averaged over the blocks of sample rows (row indices
    of ``s``, one block a row of ``blocks``), each against the same truth rows ``a``."""
    total = 0.0
    for j in blocks:
        c, wc = s[j], (None if w is None else w[j])
        if transform is not None:
            c = check_array(transform(c), name="features output", min_rows=len(j))
        total = total + np.asarray(value_fn(a, c, wc, rs), dtype=np.float64)
    return total / len(blocks)


def _histogram_scores(score: Callable, shape: tuple[int, ...]) -> None:
    """The binned scores through ``score_suite``'s ``score``: the 2-D histograms for points in
    the plane, the per-coordinate (marginal) histograms for tabular rows of any dimension."""
    if shape == (2,):
        def hist_pair(a, c, wc):
            # points beyond the truth's range go to the border bins: dropping them would hide the
            # mass a sample puts outside it (and leave nothing to compare when all of it is there)
            kw = {"bins": 40, "range": resolve_range(None, a), "convention": "prob", "outside": "clip"}
            return [hist_jsd(a, c, weights_y=wc, **kw), hist_emd(a, c, weights_y=wc, **kw)]
        score("hist", 6, ["hist_jsd", "hist_emd"], lambda a, c, wc, r: hist_pair(a, c, wc),
              lambda a, b: hist_pair(a, b, None))
    if len(shape) == 1:
        score("hist", 7, ["marginal_jsd"], lambda a, c, wc, r: [marginal_jsd(a, c, weights_y=wc)],
              lambda a, b: [marginal_jsd(a, b)])


def rank_methods(scores: Mapping[str, Mapping[str, Mapping]], key: str = "energy", base: str = "base") -> dict:
    """Order methods by one score, best first, for "which method to use".

    ``scores`` maps a method name to its :func:`score_suite` result. "Best" follows
    :data:`SCORE_DIRECTIONS` (lower for distances, higher for precision/recall, closest to
    0.5 for the C2ST AUC). Methods without ``key`` are left out.

    ``gap_closed`` measures each method against the base on the scale from the base
    (0) to the truth-against-truth floor (1): ``1 - (b(v) - b(floor)) / (b(base) - b(floor))``
    with ``b`` the score's badness (``v``, ``-v`` or ``|v - 0.5|``); negative means worse
    than the base. None when there is no base or the base is already at its floor.

    Returns:
        ``{"key", "direction", "ranking": [{"method", "value", "floor", "n", "gap_closed"}, ...],
        "best": name, "base": base's value or None, "best_beats_base": bool or None,
        "at_floor": the methods at or beyond their floor, best first}``. Methods at the floor
        are indistinguishable from the truth at this sample size: their order is noise.
    """
    if key not in SCORE_DIRECTIONS:
        raise ValueError(f"key: unknown score {key!r}; known: {', '.join(SCORE_DIRECTIONS)}")
    direction = SCORE_DIRECTIONS[key]
    have = {m: sc[key] for m, sc in scores.items() if key in sc}
    if not have:
        raise ValueError(f"scores: no method has the score {key!r}")
    bad = {m: _badness(r["value"], direction) for m, r in have.items()}
    base_rec = have.get(base)
    gap0 = None
    if base_rec is not None:
        gap0 = bad[base] - _badness(base_rec["floor"], direction)
    ranking = []
    for m in sorted(have, key=lambda m: (bad[m], m)):
        gap = bad[m] - _badness(have[m]["floor"], direction)
        closed = None if gap0 is None or gap0 <= 0 else 1.0 - gap / gap0
        ranking.append({"method": m, "value": have[m]["value"], "floor": have[m]["floor"],
                        "n": have[m].get("n"), "gap_closed": closed})
    best = ranking[0]["method"]
    at_floor = [r["method"] for r in ranking if bad[r["method"]] <= _badness(r["floor"], direction)]
    return {"key": key, "direction": direction, "ranking": ranking, "best": best,
            "base": None if base_rec is None else base_rec["value"],
            "best_beats_base": None if base_rec is None else bad[best] < bad[base], "at_floor": at_floor}
