"""Figures for any dimension: the dispatcher draws what fits D (2-D refinement figure, pair
plots, image grids, 2-D latent plane), writes non-empty PNGs, and labels every axis."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from genrefine import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """Record, for every figure saved, its title and the labels of its visible axes."""
    seen = []
    save = plotting._savefig

    def spy(fig, path):
        axes = [ax for ax in fig.axes if ax.axison]
        seen.append({"path": os.path.basename(path), "title": fig._suptitle.get_text() if fig._suptitle else "",
                     "labels": [(ax.get_xlabel(), ax.get_ylabel(), len(ax.get_xticks()) > 0) for ax in axes]})
        return save(fig, path)

    monkeypatch.setattr(plotting, "_savefig", spy)
    return seen


def _result(d, n=800, latent_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, d)).astype(np.float32)
    samples = {m: (rng.normal(size=(n, d)) * s + o).astype(np.float32)
               for m, s, o in (("base", 1.4, 0.3), ("dctr", 1.4, 0.3), ("rejection", 1.1, 0.1))}
    latents = {m: rng.normal(size=(n, latent_dim)).astype(np.float32) for m in samples}
    latents["dctr"] = latents["base"]
    weights = {"dctr": np.exp(-0.5 * latents["base"][:, 0]).astype(np.float32)}
    return SimpleNamespace(truth=truth, samples=samples, latents=latents, weights=weights, models={},
                           metrics={"data": f"toy {d}-d"})


def _assert_pngs(paths, drawn, names):
    assert sorted(os.path.basename(p) for p in paths) == sorted(names)
    for p in paths:
        with open(p, "rb") as fh:
            head = fh.read(8)
        assert head == PNG_MAGIC and os.path.getsize(p) > 5000
    for fig in drawn:
        assert fig["title"], f"{fig['path']}: no title"
        for xl, yl, has_xticks in fig["labels"]:
            assert yl, f"{fig['path']}: an axis without a y label"
            assert xl or not has_xticks, f"{fig['path']}: an axis with ticks but no x label"


def test_figures_for_2d_keeps_the_refinement_figure(tmp_path, drawn):
    paths = plotting.figures_for(_result(2), str(tmp_path), data_shape=(2,))
    _assert_pngs(paths, drawn, ["refinement.png", "latent.png"])


def test_figures_for_16d_pair_plots_and_latent_plane(tmp_path, drawn):
    paths = plotting.figures_for(_result(16), str(tmp_path))
    _assert_pngs(paths, drawn, ["pairs_base.png", "pairs_dctr.png", "pairs_rejection.png", "latent.png"])
    assert "4 of 16" in drawn[0]["title"]
    # a pair plot draws the lower triangle and diagonal of a 4 x 4 grid: 10 panels
    assert len(drawn[0]["labels"]) == 10


def test_figures_for_images_grid_no_pixel_histograms(tmp_path, drawn):
    res = _result(64, latent_dim=3)  # 3-d latents: no latent figure
    paths = plotting.figures_for(res, str(tmp_path), data_shape=(1, 8, 8))
    _assert_pngs(paths, drawn, ["images.png"])
    assert [lab[1] for lab in drawn[0]["labels"]] == ["Truth", "Base", "DCTR (weighted)", "Rejection"]
    assert not (tmp_path / "refinement.png").exists()
    with pytest.raises(ValueError, match="data_shape"):
        plotting.figures_for(res, str(tmp_path), data_shape=(1, 8, 9))


def test_colour_images_and_direct_calls(tmp_path, drawn):
    rng = np.random.default_rng(1)
    imgs = {"truth": rng.random((20, 3 * 6 * 6)), "base": rng.random((20, 3 * 6 * 6))}
    p = plotting.image_grid(imgs, (3, 6, 6), str(tmp_path / "rgb.png"), n=5)
    p2 = plotting.latent_figure({"base": rng.normal(size=(300, 2))}, str(tmp_path / "z.png"),
                                weights=rng.random(300))
    _assert_pngs([p, p2], drawn, ["rgb.png", "z.png"])
    with pytest.raises(ValueError, match="latents"):
        plotting.latent_figure({"base": rng.normal(size=(30, 3))}, str(tmp_path / "bad.png"))
