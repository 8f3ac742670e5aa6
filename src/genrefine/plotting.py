"""Figures a person reads, chosen by the data's dimension (:func:`figures_for`):

- D = 2: :func:`refinement_figure`, the layout of LaSeR Figs. 3-5 (truth, base, HMC, LaSeR,
  DCTR in data space, top row, and latent space, bottom row);
- tabular D > 2: :func:`pair_plot` of the leading coordinates, one file per method, the
  method's 2-D histograms under the truth's density contours and the 1-D marginals of
  truth, base and method on the diagonal;
- images (``data_shape`` ``(C, H, W)``; colour for C = 3, else the first channel): :func:`image_grid`, truth, base and every
  method row by row;
- a 2-D latent space (any data): :func:`latent_figure`, the weights over the latent plane
  and the latents of every method.

Every function writes one PNG (atomically) and returns its path; every axis is labelled and
every figure has a title saying what it shows. Weighted methods (DCTR) are drawn with their
weights (histograms) or by a seeded weighted draw (images).
"""

from __future__ import annotations

import os
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TITLES = {"truth": "Truth", "base": "Base", "dctr": "DCTR (weighted)", "rejection": "Rejection",
          "hmc": "HMC", "laser": "LaSeR (GAN)", "laser-flow": "LaSeR (flow)", "latentrs": "latentRS",
          "latentga": "latentGA", "latentrsga": "latentRS+GA", "drs": "DRS", "mhgan": "MH-GAN", "sir": "SIR",
          "dot": "DOT", "drs-dctr": "DRS (DCTR)", "mhgan-dctr": "MH-GAN (DCTR)", "sir-dctr": "SIR (DCTR)",
          "ddls": "DDLS"}
LASER_COLUMNS = ("truth", "base", "hmc", "laser", "laser-flow", "rejection", "dctr")


def _title(name: str) -> str:
    return TITLES.get(name, name)


def _hist(ax, x, w, rng, bins=100, title=None):
    ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=rng, weights=w, cmap="viridis", rasterized=True)
    ax.set_aspect("auto")
    if title:
        ax.set_title(title, fontsize=10)


def _savefig(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _field(res, name: str, default=None):
    """``res.name`` or ``res[name]``: results are typed objects or plain mappings."""
    if isinstance(res, Mapping):
        return res.get(name, default)
    return getattr(res, name, default)


def _weights_of(res) -> dict:
    """Per-method sample weights: ``res.weights`` (a dict) or the older ``res.dctr_weights``."""
    w = _field(res, "weights")
    if isinstance(w, Mapping):
        return dict(w)
    dw = _field(res, "dctr_weights")
    return {} if dw is None else {"dctr": dw}


def _padded_range(x: np.ndarray, q: float = 0.5, pad: float = 0.15) -> list[list[float]]:
    """Per column: the ``q`` to ``100 - q`` percentiles widened by ``pad`` of their span."""
    lo, hi = np.percentile(x, [q, 100 - q], axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return [[float(a - pad * s), float(b + pad * s)] for a, b, s in zip(lo, hi, span)]


def refinement_figure(res, out_dir: str, columns=None) -> list[str]:
    """Data-space and latent-space 2-D histograms of every method; returns the files written.

    ``columns`` defaults to the LaSeR figures' order followed by every other method run.

    Only the first two coordinates are drawn (data and latents of higher dimension are
    projected): for data with D != 2 use :func:`figures_for`. The truth's latent is
    ``g⁻¹(truth)`` when the base generator is invertible.
    """
    os.makedirs(out_dir, exist_ok=True)
    samples, latents, weights = res.samples, res.latents, _weights_of(res)
    base = (_field(res, "models") or {}).get("base")
    if columns is None:
        columns = list(LASER_COLUMNS) + [m for m in samples if m not in LASER_COLUMNS]
    cols = [c for c in columns if c == "truth" or c in samples]
    truth = res.truth
    drange = _padded_range(truth[:, :2])
    zrange = [[-4, 4], [-4, 4]]
    truth_latent = None
    if base is not None and getattr(base, "invertible", False):
        import torch

        with torch.no_grad():
            truth_latent = base.inverse(torch.as_tensor(truth[:200_000], device=base.device)).cpu().numpy()
    fig, axes = plt.subplots(2, len(cols), figsize=(2.6 * len(cols), 5.4), squeeze=False)
    for j, c in enumerate(cols):
        if c == "truth":
            _hist(axes[0, j], truth[:, :2], None, drange, title=_title(c))
            if truth_latent is not None:
                _hist(axes[1, j], truth_latent[:, :2], None, zrange)
            else:
                axes[1, j].axis("off")
        else:
            w = weights.get(c)
            _hist(axes[0, j], samples[c][:, :2], w, drange, title=_title(c))
            _hist(axes[1, j], latents[c][:, :2], w, zrange)
        axes[0, j].set_xlabel("$x_1$"); axes[0, j].set_ylabel("$x_2$")
        axes[1, j].set_xlabel("$z_1$"); axes[1, j].set_ylabel("$z_2$")
    metrics = _field(res, "metrics") or {}
    label = metrics.get("data", "data")
    fig.suptitle(f"{label}: data space (top) and latent space (bottom), {len(truth):,} points per panel")
    fig.tight_layout()
    return [_savefig(fig, os.path.join(out_dir, "refinement.png"))]


def latent_figure(latents: Mapping[str, np.ndarray], path: str, weights=None, weight_latents=None,
                  method_weights: Mapping[str, np.ndarray] | None = None, title: str | None = None,
                  bins: int = 60) -> str:
    """A 2-D latent space: the weights over the plane and where each method's latents lie.

    First panel (when ``weights`` is given): the mean weight ``w(z)`` of the points
    ``weight_latents`` (default ``latents["base"]``) in hexagonal cells, colour = w (scale
    capped at the 99th percentile of the cells). Then one 2-D histogram per entry of
    ``latents`` (shape ``(n, 2)`` each), weighted by ``method_weights[name]`` where given
    (a weighted method such as DCTR). All panels share the range of the latents.
    """
    lat = {k: np.asarray(v) for k, v in latents.items()}
    if not lat or any(v.ndim != 2 or v.shape[1] != 2 for v in lat.values()):
        raise ValueError("latents: latent_figure needs (n, 2) latents for every method")
    if weights is not None:
        zw = np.asarray(lat.get("base") if weight_latents is None else weight_latents)
        w = np.asarray(weights, dtype=np.float64)
        if zw is None or zw.ndim != 2 or zw.shape != (len(w), 2):
            raise ValueError(f"weight_latents: expected shape ({len(w)}, 2) to match the weights")
    zrange = _padded_range(np.concatenate(list(lat.values())), pad=0.1)
    panels = (["weights"] if weights is not None else []) + list(lat)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.2), squeeze=False)
    for ax, name in zip(axes[0], panels):
        if name == "weights":
            hb = ax.hexbin(zw[:, 0], zw[:, 1], C=w, reduce_C_function=np.mean, gridsize=30, cmap="magma",
                           extent=(*zrange[0], *zrange[1]), mincnt=1)
            vals = np.ma.compressed(hb.get_array())
            if len(vals):
                hb.set_clim(0.0, float(np.percentile(vals, 99)))
            fig.colorbar(hb, ax=ax, label="mean weight $w(z)$")
            ax.set_title("weights $w(z)$", fontsize=10)
        else:
            _hist(ax, lat[name], (method_weights or {}).get(name), zrange, bins=bins, title=_title(name))
        ax.set_xlim(zrange[0]); ax.set_ylim(zrange[1])
        ax.set_xlabel("$z_1$"); ax.set_ylabel("$z_2$")
    fig.suptitle(title or "latent space: weights and the latents each method samples")
    fig.tight_layout()
    return _savefig(fig, path)


def _density_contours(ax, xi, yi, rng, bins):
    """Contours of a 2-D histogram at 10%, 30% and 60% of its peak (the truth's shape)."""
    h, ex, ey = np.histogram2d(xi, yi, bins=bins, range=rng)
    if h.max() <= 0:
        return
    cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
    ax.contour(cx, cy, h.T, levels=h.max() * np.array([0.1, 0.3, 0.6]), colors="white", linewidths=0.7)


def pair_plot(truth, sample, path: str, name: str = "sample", base=None, weights=None, dims: int = 4,
              bins: int = 40, max_points: int = 50_000) -> str:
    """Pair plot of the first ``dims`` coordinates of tabular data: ``sample`` against the truth.

    Below the diagonal, panel (i, j): the sample's (weighted) 2-D histogram of
    ``(x_j, x_i)`` with the truth's density contours in white (10/30/60% of the peak). On the
    diagonal: 1-D histograms of ``x_i``: truth (grey, filled), base (orange line, when
    ``base`` is given) and the sample (blue line). Ranges: the truth's 0.5-99.5 percentiles,
    widened by 15%. At most ``max_points`` rows of each array are drawn (the first ones).
    """
    t = np.asarray(truth)[:max_points]
    s = np.asarray(sample)[:max_points]
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[:max_points]
    b = None if base is None else np.asarray(base)[:max_points]
    k = min(int(dims), t.shape[1])
    if k < 1:
        raise ValueError(f"dims: a pair plot needs at least 1 coordinate, got {k}")
    rng = _padded_range(t[:, :k])
    fig, axes = plt.subplots(k, k, figsize=(2.3 * k, 2.3 * k), squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                edges = np.linspace(*rng[i], bins + 1)
                ax.hist(t[:, i], bins=edges, density=True, color="0.75", label="truth")
                if b is not None:
                    ax.hist(b[:, i], bins=edges, density=True, histtype="step", color="tab:orange", label="base")
                ax.hist(s[:, i], bins=edges, weights=w, density=True, histtype="step", color="tab:blue",
                        label=_title(name))
                ax.set_ylabel("density")
                if i == 0:
                    ax.legend(fontsize=7, loc="upper right")
            else:
                ax.hist2d(s[:, j], s[:, i], bins=bins, range=[rng[j], rng[i]], weights=w, cmap="viridis",
                          rasterized=True)
                _density_contours(ax, t[:, j], t[:, i], [rng[j], rng[i]], bins)
                ax.set_ylabel(f"$x_{{{i + 1}}}$")
            ax.set_xlabel(f"$x_{{{j + 1}}}$")
    fig.suptitle(f"{_title(name)}: pair plot of the first {k} of {t.shape[1]} coordinates "
                 f"(colour: {_title(name)}, white contours: truth)")
    fig.tight_layout()
    return _savefig(fig, path)


def _as_images(x: np.ndarray, shape: tuple[int, int, int], lo: float, hi: float) -> np.ndarray:
    """Rows (n, C*H*W) -> (n, H, W[, 3]) in [0, 1] on the truth's value range [lo, hi]: colour for
    3 channels, else the first channel in grey."""
    imgs = np.clip((np.asarray(x, dtype=np.float64).reshape(-1, *shape) - lo) / max(hi - lo, 1e-12), 0, 1)
    return imgs.transpose(0, 2, 3, 1) if shape[0] == 3 else imgs[:, 0]


def image_grid(images: Mapping[str, np.ndarray], data_shape, path: str, n: int = 10, weights=None,
               title: str | None = None, seed: int = 0) -> str:
    """Rows of ``n`` images per entry of ``images`` (flat ``(m, C*H*W)`` arrays), in order:
    e.g. truth, base, then each refined method. ``weights`` maps a name to sample weights
    (DCTR): that row shows a seeded draw with probabilities proportional to the weights.
    Grey levels / colours share the value range of the first entry (the truth), so rows
    compare directly.
    """
    shape = tuple(int(v) for v in data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape: image_grid needs (C, H, W), got {data_shape!r}")
    names = list(images)
    if not names:
        raise ValueError("images: nothing to draw")
    ref = np.asarray(images[names[0]])
    lo, hi = float(ref.min()), float(ref.max())
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(names), 1, figsize=(1.0 * n, 1.15 * len(names) + 0.6), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        x = np.asarray(images[name])
        w = None if weights is None or name not in weights else np.asarray(weights[name], dtype=np.float64)
        pick = rng.choice(len(x), n, p=w / w.sum()) if w is not None else np.arange(min(n, len(x)))
        imgs = _as_images(x[pick], shape, lo, hi)
        pad = np.ones((imgs.shape[1], 2) + imgs.shape[3:])  # white gap between images
        row = np.concatenate([np.concatenate([im, pad], axis=1) for im in imgs], axis=1)
        ax.imshow(row, cmap=None if shape[0] == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([]); ax.set_yticks([])
        ax.set_ylabel(_title(name), rotation=0, ha="right", va="center", fontsize=10)
    shown = "" if shape[0] in (1, 3) else ", the first shown"
    axes[-1, 0].set_xlabel(f"{n} samples per row ({shape[1]} x {shape[2]} pixels, {shape[0]} channel(s){shown})")
    fig.suptitle(title or "images: truth, base and refined samples, one row each")
    fig.tight_layout()
    return _savefig(fig, path)


def figures_for(result_like, out_dir: str, data_shape=None, dims: int = 4) -> list[str]:
    """Every figure that fits the data's dimension; returns the files written.

    ``result_like`` carries ``truth`` (n, D), ``samples`` and ``latents`` (dicts by method,
    flat rows), optionally ``weights`` (dict by method) or ``dctr_weights``, ``models`` and
    ``metrics`` (attributes, or keys of a mapping). ``data_shape`` defaults to ``(D,)``.

    - D = 2 (tabular): ``refinement.png`` (:func:`refinement_figure`, data and latent planes);
    - images (C, H, W): ``images.png`` (:func:`image_grid`: truth, base, methods);
    - tabular D > 2: ``pairs_<method>.png`` for the base and each method (:func:`pair_plot`);
    - 2-D latents (any D): ``latent.png`` (:func:`latent_figure`; weights panel from the
      first weighted method, at its latents).

    No 2-D histogram of two data columns is drawn unless D = 2.
    """
    truth = np.asarray(_field(result_like, "truth"))
    samples = dict(_field(result_like, "samples") or {})
    latents = dict(_field(result_like, "latents") or {})
    weights = _weights_of(result_like)
    d = truth.shape[1]
    shape = (d,) if data_shape is None else tuple(int(v) for v in data_shape)
    if int(np.prod(shape)) != d:
        raise ValueError(f"data_shape: {shape} does not hold {d} values per row")
    os.makedirs(out_dir, exist_ok=True)
    order = ["base"] + [m for m in samples if m != "base"] if "base" in samples else list(samples)
    paths = []
    if shape == (2,):
        paths += refinement_figure(result_like, out_dir)
    elif len(shape) == 3:
        paths.append(image_grid({"truth": truth, **{m: samples[m] for m in order}}, shape,
                                os.path.join(out_dir, "images.png"), weights=weights))
    else:
        for m in order:
            paths.append(pair_plot(truth, samples[m], os.path.join(out_dir, f"pairs_{m}.png"), name=m,
                                   base=samples.get("base") if m != "base" else None,
                                   weights=weights.get(m), dims=dims))
    lat2 = {m: latents[m] for m in order if m in latents and np.ndim(latents[m]) == 2 and np.shape(latents[m])[1] == 2}
    if lat2:
        wname = next((m for m in order if m in weights and m in lat2 and len(weights[m]) == len(lat2[m])), None)
        paths.append(latent_figure(lat2, os.path.join(out_dir, "latent.png"),
                                   weights=None if wname is None else weights[wname],
                                   weight_latents=None if wname is None else lat2[wname],
                                   method_weights={m: w for m, w in weights.items() if m in lat2}))
    return paths
