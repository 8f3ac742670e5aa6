"""Figures of a trained base, after the introduction paper (drawn by :func:`base_figures`):

- ``training.png``: the energy distance to the data per epoch (its Fig. 11) beside the
  family's own losses;
- ``density.png`` (an invertible base on 2-D data; its Figs. 5-6): the model's density with
  samples over it, and the data mapped back to the latent space;
- ``encoded.png`` (a VAE with a 2-d latent; its Fig. 8): the posterior means of the data;
- ``interpolation.png`` (images; its Fig. 10): decoded images along straight lines between
  latent points (a 2-d latent: a sweep of the plane).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from genrefine.plotting import _as_images, _savefig, plt


def training_figure(history: list[dict], path: str, family: str = "base") -> str | None:
    """Energy distance per epoch (left) and the logged losses (right); None without a monitor."""
    energy = [(h["epoch"], h["energy"]) for h in history if "energy" in h]
    if not energy:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(*zip(*energy), marker="o", ms=3)
    a.set(xlabel="epoch", ylabel="energy distance to the data", title="distance of g(Z) to X (Fig. 11)")
    a.set_yscale("log")
    for key in sorted({k for h in history for k in h} - {"epoch", "seconds", "energy"}):
        b.plot([h["epoch"] for h in history if key in h], [h[key] for h in history if key in h], label=key)
    b.set(xlabel="epoch", ylabel="value", title="training losses")
    b.legend(fontsize=8)
    fig.suptitle(f"{family} base: training")
    fig.tight_layout()
    return _savefig(fig, path)


@torch.no_grad()
def density_figure(base, truth: np.ndarray, path: str, n: int = 200) -> str:
    """log density on a grid with 2000 samples over it; the data's latents ``g⁻¹(x)``."""
    lo, hi = np.percentile(truth, [0.5, 99.5], axis=0)
    pad = 0.2 * (hi - lo)
    gx, gy = (np.linspace(lo[i] - pad[i], hi[i] + pad[i], n, dtype=np.float32) for i in range(2))
    grid = torch.as_tensor(np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2), device=base.device)
    logp = base.log_prob(grid).reshape(n, n).cpu().numpy()
    x = base.sample(2000).cpu().numpy()
    z = base.inverse(torch.as_tensor(truth[:20000], device=base.device)).cpu().numpy()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    a.imshow(np.exp(logp), origin="lower", extent=(gx[0], gx[-1], gy[0], gy[-1]), aspect="auto", cmap="viridis")
    a.scatter(x[:, 0], x[:, 1], s=1, c="w", alpha=0.4)
    a.set(xlabel="x1", ylabel="x2", title="model density, samples in white")
    b.hist2d(z[:, 0], z[:, 1], bins=80, range=[[-4, 4], [-4, 4]], cmap="viridis")
    b.set(xlabel="z1", ylabel="z2", title="data mapped to the latent space, g⁻¹(x)")
    fig.suptitle(f"{base.family} base: density and inverse")
    fig.tight_layout()
    return _savefig(fig, path)


def encoded_figure(base, truth: np.ndarray, path: str) -> str:
    """Posterior means ``μ(x)`` of up to 5000 data rows over the prior's 1, 2, 3 σ circles."""
    z = base.encode(truth[:5000]).cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(z[:, 0], z[:, 1], s=2, alpha=0.5)
    for r in (1, 2, 3):
        ax.add_patch(plt.Circle((0, 0), r, fill=False, ls="--", color="grey"))
    ax.set(xlabel="z1", ylabel="z2", title=f"{base.family}: data encoded to the latent plane (posterior means)")
    ax.set_aspect("equal")
    return _savefig(fig, path)


@torch.no_grad()
def interpolation_figure(base, data_shape, path: str, rows: int = 8, steps: int = 10, seed: int = 0) -> str:
    """Images decoded along lines in the latent space: a 2-d latent sweeps [-2, 2]², a larger
    one interpolates between ``rows`` pairs of prior draws."""
    d = base.latent_dim
    t = torch.linspace(0, 1, steps)[:, None]
    if d == 2:
        v = torch.linspace(-2, 2, steps)
        z = torch.stack(torch.meshgrid(v.flip(0), v, indexing="ij"), -1).reshape(-1, 2)[:, [1, 0]]
        rows = steps
    else:
        g = torch.Generator().manual_seed(seed)
        a, b = torch.randn(rows, d, generator=g), torch.randn(rows, d, generator=g)
        z = (a[:, None] * (1 - t) + b[:, None] * t).reshape(-1, d)
    x = base.generate(z.to(base.device)).cpu().numpy()
    lo, hi = float(x.min()), float(x.max())
    imgs = _as_images(x, tuple(data_shape), lo, hi)
    imgs = imgs.reshape(rows, steps, *imgs.shape[1:])
    canvas = np.concatenate([np.concatenate(list(r), axis=1) for r in imgs], axis=0)
    fig, ax = plt.subplots(figsize=(steps * 0.9, rows * 0.9 + 0.5))
    ax.imshow(canvas, cmap="gray" if data_shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]); ax.set_yticks([])
    what = "a sweep of the latent plane [-2, 2]²" if d == 2 else f"{rows} straight lines between prior draws"
    ax.set_title(f"{base.family}: decoded along {what}")
    return _savefig(fig, path)


def base_figures(base, history, truth: np.ndarray, data_shape, out_dir: str) -> list[str]:
    """Every figure of the module docstring that fits ``base`` and the data; the files written."""
    paths = [training_figure(history or [], os.path.join(out_dir, "training.png"), base.family)]
    if getattr(base, "invertible", False) and hasattr(base, "log_prob") and truth.shape[1] == 2:
        paths.append(density_figure(base, truth, os.path.join(out_dir, "density.png")))
    if hasattr(base, "encode") and base.latent_dim == 2:
        paths.append(encoded_figure(base, truth, os.path.join(out_dir, "encoded.png")))
    if len(tuple(data_shape)) == 3 and tuple(data_shape)[0] in (1, 3):
        paths.append(interpolation_figure(base, data_shape, os.path.join(out_dir, "interpolation.png")))
    return [p for p in paths if p]
