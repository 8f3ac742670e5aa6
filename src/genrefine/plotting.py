"""Figures a person reads: the layout of LaSeR Figs. 3-5 (truth, base, HMC, LaSeR, DCTR in
data space, top row, and latent space, bottom row)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TITLES = {"truth": "Truth", "base": "Base", "dctr": "DCTR (weighted)", "rejection": "Rejection",
          "hmc": "HMC", "laser": "LaSeR (GAN)", "laser-flow": "LaSeR (flow)", "latentrs": "latentRS",
          "latentga": "latentGA", "latentrsga": "latentRS+GA", "drs": "DRS", "mhgan": "MH-GAN", "sir": "SIR",
          "dot": "DOT", "drs-dctr": "DRS (DCTR)", "mhgan-dctr": "MH-GAN (DCTR)", "sir-dctr": "SIR (DCTR)"}
LASER_COLUMNS = ("truth", "base", "hmc", "laser", "laser-flow", "rejection", "dctr")


def _hist(ax, x, w, rng, bins=100, title=None):
    ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=rng, weights=w, cmap="viridis", rasterized=True)
    ax.set_aspect("auto")
    if title:
        ax.set_title(title, fontsize=10)


def _savefig(fig, path: str) -> None:
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def refinement_figure(res, out_dir: str, columns=None) -> list[str]:
    """Data-space and latent-space 2-D histograms of every method; returns the files written.

    ``columns`` defaults to the LaSeR figures' order followed by every other method run.

    Only the first two coordinates are drawn (data and latents of higher dimension are
    projected). The truth's latent is ``g⁻¹(truth)`` when the base generator is invertible.
    """
    os.makedirs(out_dir, exist_ok=True)
    base = res.models.get("base")
    if columns is None:
        columns = list(LASER_COLUMNS) + [m for m in res.samples if m not in LASER_COLUMNS]
    cols = [c for c in columns if c == "truth" or c in res.samples]
    truth = res.truth
    lo, hi = np.percentile(truth[:, :2], [0.5, 99.5], axis=0)
    pad = 0.15 * (hi - lo)
    drange = [[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]]
    zrange = [[-4, 4], [-4, 4]]
    truth_latent = None
    if base is not None and getattr(base, "invertible", False):
        import torch

        with torch.no_grad():
            truth_latent = base.inverse(torch.as_tensor(truth[:200_000], device=base.device)).cpu().numpy()
    fig, axes = plt.subplots(2, len(cols), figsize=(2.6 * len(cols), 5.4), squeeze=False)
    for j, c in enumerate(cols):
        w = res.dctr_weights if c == "dctr" else None
        if c == "truth":
            _hist(axes[0, j], truth[:, :2], None, drange, title=TITLES[c])
            if truth_latent is not None:
                _hist(axes[1, j], truth_latent[:, :2], None, zrange)
            else:
                axes[1, j].axis("off")
        else:
            _hist(axes[0, j], res.samples[c][:, :2], w, drange, title=TITLES.get(c, c))
            _hist(axes[1, j], res.latents[c][:, :2], w, zrange)
        axes[0, j].set_xlabel("$x_1$"); axes[0, j].set_ylabel("$x_2$")
        axes[1, j].set_xlabel("$z_1$"); axes[1, j].set_ylabel("$z_2$")
    label = res.metrics.get("data", "data") if res.metrics else "data"
    fig.suptitle(f"{label}: data space (top) and latent space (bottom), {len(truth):,} points per panel")
    fig.tight_layout()
    path = os.path.join(out_dir, "refinement.png")
    _savefig(fig, path)
    return [path]
