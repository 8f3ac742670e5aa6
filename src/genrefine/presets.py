"""Hyper-parameter presets.

``paper`` is LaSeR Sec. 4.1 (480k training points, base flow 12 x (3 x 48), 20 x (3 x 60) for
the rings; classifier 8 x 96 for 50 epochs; refiner GAN 7 x 100 for 200 epochs; HMC with 100
chains, ε = 0.004, 50 leapfrog steps, 3000 burn-in). ``quick`` keeps the architectures and
trims data and epochs so that ``genrefine refine`` with every method finishes in under ten
minutes per 2-D set on two CPU cores; numbers measured with it are in docs/.
"""

from __future__ import annotations

import copy

from genrefine.samplers.rejection import DATA_STUDENT_STEPS, LATENT_STUDENT_STEPS

# --- the introduction paper's families (generators/), for images (its MNIST networks, Eq. (5)
# and (33)) and flat rows (MLPs); the latent dimension is 2 as in that paper, 100 for the
# latent reweighting paper's hinge-GP MNIST base (w_φ's 400 units are 4 x the latent dimension).
# Optimiser settings are the papers' (VAE: Adam 1e-3, weight decay 1e-5, batches of 64; DCGAN:
# Adam 2e-4, β = (0.5, 0.999); WGAN: RMSprop 5e-5, clip 0.01; OT-Flow: the toy loss weights).
# "images": the values used instead when the rows are images (epochs: what fits 10 minutes of
# training on 2 cores for 8,000 MNIST rows, docs/zoo.md).
# The GANs' latent for images: with the introduction paper's 2-d latent the DCGAN and both WGANs
# collapsed on MNIST (recall 0 in independent features), and no reweighting brings back modes a
# generator does not make; at the latent-reweighting paper's 100 the WGAN-GP kept recall 0.55
# and its refinement raised precision (docs/images.md). The VAE's 2-d latent on MNIST draws a
# few typical digits (recall 3% in independent features); with 16 it covers the data (recall
# 78%, Frechet distance 69 against 267) and its refinement has room to act (docs/images.md).
# `--latent-dim 2` gives the paper's families, and the VAE's Fig. 8 encoded latents.
IMAGE_GAN_LATENT = 100
IMAGE_VAE_LATENT = 16
FAMILY_SECTIONS = {
    "vae": {"latent_dim": 2, "hidden": 128, "layers": 3, "likelihood": "auto", "epochs": 20, "batch_size": 64,
            "lr": 1e-3, "weight_decay": 1e-5, "gamma": 1.0, "images": {"epochs": 30, "latent_dim": IMAGE_VAE_LATENT}},
    "dcgan": {"latent_dim": 2, "hidden": 128, "layers": 3, "epochs": 20, "batch_size": 64, "lr": 2e-4,
              "betas": [0.5, 0.999], "n_critic": 1, "gamma": 1.0, "images": {"epochs": 12, "latent_dim": IMAGE_GAN_LATENT}},
    "wgan-clip": {"latent_dim": 2, "hidden": 128, "layers": 3, "epochs": 20, "batch_size": 64, "lr": 5e-5,
                  "n_critic": 5, "clip": 0.01, "gamma": 1.0,
                  "images": {"epochs": 25, "lr": 2e-4, "latent_dim": IMAGE_GAN_LATENT}},
    "hinge-gp": {"latent_dim": 100, "hidden": 128, "layers": 3, "epochs": 20, "batch_size": 64, "lr": 5e-4,
                 "betas": [0.5, 0.9], "n_critic": 5, "gp_weight": 1.0, "gamma": 1.0, "images": {"epochs": 15}},
    "ot-flow": {"width": 32, "rank": 10, "steps": 8, "epochs": 10, "batch_size": 256, "lr": 1e-2,
                "transport": 0.01, "hjb": 0.05, "weight_decay": 0.0, "gamma": 0.9},
}

# --- OmniFold's latent weights (weights/omnifold.py) for generators with hidden randomness: K EM
# iterations, each a data-space classifier (step 1) and a latent one (step 2), smaller than the
# DCTR classifier (each is trained K times) and stopped early on held-out rows.
OMNIFOLD = {"iterations": 4, "hidden": 64, "layers": 4, "latent_hidden": 64, "latent_layers": 4, "epochs": 30,
            "batch_size": 2000, "lr": 1e-3, "gamma": 0.99, "patience": 5, "generated_per_data": 1}

PRESETS: dict[str, dict] = {
    "quick": {
        "n_train": 100_000,
        "base": {"transforms": 12, "hidden": [48, 48, 48], "epochs": 60, "batch_size": 2000, "lr": 1e-3,
                 "weight_decay": 1e-5, "gamma": 0.999},
        # twice as many generated samples as data rows (they are free): measured on the four
        # benchmark bases, two seeds each, DCTR's JSD cut rose by 2.5-9 points (double_donut
        # 42.6 -> 45.1%, checkerboard 55.6 -> 64.3%) for ~30 s more; 75 epochs on 1x did as
        # well only on the checkerboard, and 4x for 25 epochs was worse (docs/laser.md)
        # calibrate_cells: the weights rescaled on up to 40 k-means cells of the data (one per 500
        # rows at most) so every cell gets the data's mass; off on the papers' 2-D sets (below).
        # temper: weights w^β, β chosen on held-out rows (weights/tempering.py); auto: the closest
        # β for images, and for tabular rows the full weights unless they score worse than none.
        # features: auto classifies images on the code of an autoencoder of the training images
        # (weights/feature_classifier.py: a hinge-GP MNIST base's precision +0.055 where the
        # pixel CNN's tempered weights gave +0.007-0.014; docs/images.md), never cell-calibrated
        "classifier": {"hidden": 96, "layers": 8, "epochs": 50, "batch_size": 2000, "lr": 1e-3, "gamma": 0.999,
                       "generated_per_data": 2, "calibrate_cells": 40, "temper": "auto", "features": "auto",
                       # members K > 1: K classifiers (seeds seed..seed+K-1) on the same split,
                       # their logits averaged (weights/ensemble.py): steadier weights for images
                       "members": 1,
                       # seed: the classifier's own draws (held-out split, the rows the tempering
                       # and sharpening are chosen on, members' seeds), apart from the run's --seed
                       "seed": 0,
                       # sharpen p > 1: the samplers of the DCTR latent target draw from
                       # p(z) min(w, c)^p, c the weights' sharpen_quantile (samplers/rejection.py
                       # sharpened): precision first, for images; 1 keeps the data's density;
                       # auto: p chosen on held-out rows (weights/sharpening.py)
                       "sharpen": 1.0, "sharpen_quantile": 0.99},
        # resample-move: one chain per sample from SIR starts, ε tuned on 1000 chains, 2 HMC
        # iterations per sample (nearly independent samples; see HMCSampler.adapt_chains)
        "hmc": {"paper": False, "n_chains": "n", "adapt_chains": 1000, "burn_in": 50, "thin": 2,
                "sir_pool_size": 1_000_000},
        # generator 3 x 48 instead of the paper's 7 x 100: 3 x 64 gave the same JSD on gaussians4 as
        # 7 x 100 (0.0039 vs 0.0037 at 40x40 bins), and with the rejection step below 3 x 48 did as
        # well as 3 x 64 (share of DCTR's JSD cut over two draws: gaussians4 76/73% vs 73/69%,
        # checkerboard 54/52% vs 52/52%) at ~8% less time per refined sample on 2 threads (0.308 vs 0.336 s per 200k)
        # + discriminator rejection: the 7 x 100 discriminator distilled into a 4 x 48 student, bound
        # at its 95th percentile (acceptance ~0.9); measured share of DCTR's JSD cut on two
        # classifiers: gaussians4 57 -> 76%, rings3 68 -> 87%. 4 x 48 kept the gain of 4 x 64
        # (gaussians4 70% vs 70%, checkerboard 58% vs 54%) at 2/3 of its cost; 4 x 32, 3 x 48
        # and 6 x 32 lost 3-6 points (docs/laser.md)
        # aux_dim None: the latent's dimension + 2 (the paper's 4 on a 2-d latent); below the
        # latent's dimension the residual start is off and the GAN collapsed onto one mode on a
        # 6-d latent (energy 4.47 against the base's 0.70; with 8: 0.19, docs/guide.md)
        "laser": {"aux_dim": None, "hidden": 48, "layers": 3, "epochs": 30, "batch_size": 1000, "lr": 2e-3,
                  "betas": [0.5, 0.9], "gamma": 0.9, "n_critic": 4, "r1": 0.0, "ema": 0.99,
                  "drs_hidden": 48, "drs_layers": 4, "drs": {"quantile": 0.95, "n": 400_000, "steps": LATENT_STUDENT_STEPS},
                  # last correction in data space (samplers/data_rejection.py): the DCTR classifier trained
                  # on for 5 epochs against the refined samples, distilled into a 3 x 32 student, bound at
                  # its median (the residual is excess mass, which a low bound removes at acceptance
                  # 0.96-0.99; every rejection there wastes a base pass). On the saved Table 3 models,
                  # share of DCTR's JSD cut: gaussians4 66-69 -> 78-80%, checkerboard 71 -> 90%; 4 x 48 at
                  # the 95th percentile gained 2-5 points more but ran at 0.56-0.68x the base (docs/laser.md).
                  # "boost": the median bound only thins, never raises, and on the checkerboard that moved
                  # broad mass the wrong way (EMD share about -3%); the raising factor exp(max(0, s - b))
                  # is folded into the latent step (bound at its 99th percentile, lowered to keep the
                  # latent acceptance >= 0.7): on saved Table 3 models, three refits each, JSD share
                  # gaussians4 75.5 -> 79.4%, checkerboard 83.6 -> 88.6%, EMD share checkerboard -3 -> 60%;
                  # Table 3 with it: 85 / 106 / 102 / 85% of DCTR's JSD cut, EMD 90-309% (docs/laser.md)
                  # Distillation steps: at 3000 steps the 3 x 32 data student reached a correlation of only
                  # 0.78-0.93 with its classifier, and the in-run JSD share swung with it (checkerboard,
                  # seed 1: 54% in one run, 77% in another). With 20,000 steps (latent students 10,000) the
                  # correlation is 0.995-0.999 and LaSeR, base + DCTR + LaSeR runs at the same seed, moved
                  # 54 -> 100% (checkerboard seed 1), 79 -> 86% (gaussians4), 105 -> 108% (double_donut),
                  # for about 40 s more training per set (rings3 alone on 2 cores: 387 -> 430 s) and nothing at
                  # sampling time (docs/laser.md)
                  "data_rejection": {"epochs": 5, "quantile": 0.5, "hidden": 32, "layers": 3, "steps": DATA_STUDENT_STEPS,
                                     "boost": {"quantile": 0.99, "min_acceptance": 0.7, "n": 400_000,
                                               "steps": LATENT_STUDENT_STEPS}}},
        "laser-flow": {"transforms": 4, "hidden": [64, 64], "bins": 16, "epochs": 20, "batch_size": 1000, "lr": 3e-3,
                       "gamma": 0.85},
        # the latent rejection sampler's own settings (samplers/rejection.py); bound None: estimated
        "rejection": {"bound": None, "safety": 1.1, "pilot_size": 100_000, "batch_size": 100_000, "max_rounds": 1000,
                      "max_proposals": 1_000_000_000},
        # DDLS (Che et al. 2020): unadjusted Langevin on the same DCTR latent target as HMC, one
        # chain per sample; ε = 0.01 keeps the O(ε) bias of the stationary variance near 1% on
        # unit-scale latent structure (ε / 4σ²). Not tuned on the benchmarks. Chains start from
        # an importance-resampled prior sample ("prior" is the paper's start: chains from the
        # prior keep its share of every mode, samplers/ddls.py).
        "ddls": {"step_size": 0.01, "n_steps": 200, "init": "sir", "sir_pool_size": None},
        "omnifold": OMNIFOLD,
        **{k: copy.deepcopy(v) for k, v in FAMILY_SECTIONS.items()},
    },
    "paper": {
        "n_train": 480_000,
        "base": {"transforms": 12, "hidden": [48, 48, 48], "epochs": 100, "batch_size": 2000, "lr": 1e-3,
                 "weight_decay": 1e-5, "gamma": 0.999},
        "classifier": {"hidden": 96, "layers": 8, "epochs": 50, "batch_size": 2000, "lr": 1e-3, "gamma": 0.999,
                       "calibrate_cells": 40, "temper": "auto", "features": "auto", "members": 1, "seed": 0,
                       "sharpen": 1.0, "sharpen_quantile": 0.99},
        "hmc": {"paper": True},
        "laser": {"aux_dim": None, "hidden": 100, "layers": 7, "epochs": 200, "batch_size": 2000, "lr": 1e-4,
                  "betas": [0.5, 0.9], "gamma": 0.999, "n_critic": 4, "r1": 0.0, "ema": 0.999},
        "laser-flow": {"transforms": 6, "hidden": [128, 128], "bins": 8, "epochs": 100, "batch_size": 2000,
                       "lr": 1e-3, "gamma": 0.99},
        "rejection": {"bound": None, "safety": 1.1, "pilot_size": 100_000, "batch_size": 100_000, "max_rounds": 1000,
                      "max_proposals": 1_000_000_000},
        "ddls": {"step_size": 0.01, "n_steps": 1000, "init": "sir", "sir_pool_size": None},
        "omnifold": OMNIFOLD,
        **{k: copy.deepcopy(v) for k, v in FAMILY_SECTIONS.items()},
    },
}

# --- latent reweighting (Issenhuth et al.) on a WGAN-GP base; see docs/latent_reweighting.md.
# The public WGAN-GP toy script: 3 x 512 ReLU MLPs, 2-d latent, 5 critic steps per generator
# step, batch 256, Adam(1e-4, (0.5, 0.9)), penalty 0.1, 100k generator steps. Quick: 3 x 128,
# lr 1e-3 decaying x 0.96 per epoch, ~4,700 generator steps (60 epochs of 100k points): the
# best base per minute measured on 2 cores (the decay alone took the 25 Gaussians' EMD from
# 0.116 to 0.093, floor 0.051, and put the swiss roll at its floor).
# For images (the section's "images" values, in the image GANs' usual setting): batches of 64,
# Adam 2e-4, penalty weight 10, 15 epochs.
WGAN_IMAGES = {"epochs": 15, "batch_size": 64, "lr": 2e-4, "gamma": 1.0, "gp_weight": 10.0, "latent_dim": IMAGE_GAN_LATENT}
WGAN = {
    "quick": {"latent_dim": 2, "hidden": 128, "layers": 3, "epochs": 60, "batch_size": 256, "lr": 1e-3,
              "gamma": 0.96, "betas": [0.5, 0.9], "n_critic": 5, "gp_weight": 0.1, "images": WGAN_IMAGES},
    "paper": {"latent_dim": 2, "hidden": 512, "layers": 3, "epochs": 1280, "batch_size": 256, "lr": 1e-4,
              "gamma": 1.0, "betas": [0.5, 0.9], "n_critic": 5, "gp_weight": 0.1, "images": WGAN_IMAGES},
}
LRW = {
    "quick": {
        "critic": {"hidden": 128, "layers": 3, "fit": {"epochs": 5, "lr": 1e-3, "gp_weight": 0.1}},
        # w_φ is kept only if it beats w ≈ 1 on held-out check parts, cross-fitted on three folds
        # (docs/decisions/latent_importance.md). The quick preset's candidates are the classifier
        # ratio calibrated on 40 k-means cells (distilled into w_φ) and transport weights (5 passes
        # of exact W1-optimal bounded reweightings of 1000-row chunks, regressed in latent space). It plays no game
        # (epochs=0): on the Table 1 sets no epoch of the game ever passed the check, and playing
        # it cost about a third of the fit. The paper preset (below) also plays the game.
        "w_phi": {"hidden": None, "layers": 4, "m": 3.0,
                  "fit": {"epochs": 0, "lambda1": 10.0, "lambda2": 3.0, "lr_w": 3e-4, "lr_d": 4e-4,
                          "betas": [0.5, 0.5], "n_critic": 1, "gp_weight": 10.0, "warmup": 500,
                          "patience": 5, "inputs": "data", "ema": 0.995, "smoothed_ratio": [0.0], "calibrate": 40,
                          "transport": 5, "transport_chunk": 1000, "crossfit": 3}},
        # Appendix E: N and ε by grid search on EMD (here on held-out training data); N = 0 (no
        # ascent) is in the grid, so a w_φ or critic whose gradient moves points the wrong way is
        # left alone (measured: every ascent on the sharp distilled w_φ of the 25 Gaussians raised
        # the EMD, docs/latent_reweighting.md item 17)
        "latentga": {"n_steps": 10, "step_size": 0.05, "select": True, "grid_steps": [0, 2, 5, 10, 50],
                     "grid_eps": [0.01, 0.05, 0.1]},
        "latentrsga": {"n_steps": 10, "step_size": 0.05, "select": True, "grid_steps": [0, 2, 5, 10, 50],
                       "grid_eps": [0.01, 0.05, 0.1]},
        # calibrate: Platt-scale the fine-tuned critic's logit on held-out rows (the paper has no
        # such step; its sets keep the protocol, get_preset)
        "discriminator": {"epochs": 3, "lr": 1e-4, "gp_weight": 0.1, "calibrate": True},
        "dot_critic": {"epochs": 3, "lr": 1e-4, "gp_weight": 0.1},
        "dot": {"n_steps": 10, "step_size": 0.01, "select": True, "grid_steps": [0, 2, 5, 10, 50],
                "grid_eps": [0.01, 0.05, 0.1]},
        "sir": {"n_candidates": 10},
        "mhgan": {"chain_length": 10},
        "drs": {"gamma_quantile": 0.95},
    },
}
# the paper preset plays Alg. 1's game too (an EMA of a data-space player h(G(z)), stopped after
# five epochs without a new best validation EMD) and offers the blurred (s = 0.1) ratio as well
LRW["paper"] = copy.deepcopy(LRW["quick"])
LRW["paper"]["w_phi"]["fit"].update(epochs=30, smoothed_ratio=[0.0, 0.1])
EVALUATION = {"n": 2000, "repeats": 10, "k": 3, "cost_n": 50_000}

#: per-data-set overrides (the paper's larger flow for the three rings)
DATA_OVERRIDES: dict[str, dict[str, dict]] = {
    "rings3": {"base": {"transforms": 20, "hidden": [60, 60, 60]}},
    # the introduction paper's real NVP for the moons (its Sec. 3.1): 6 coupling layers, networks
    # of two hidden layers of 128 (leaky ReLU 0.01), Adam on batches of 256 for 20,000 steps
    # (here 50 epochs of the 100k training rows: 19,500 steps)
    "moons": {"base": {"transforms": 6, "hidden": [128, 128], "batch_size": 256, "epochs": 50, "gamma": 1.0}},
}
#: the papers' 2-D benchmark sets: their classifier and discriminator are the papers' own, uncalibrated
PAPER_SETS = ("gaussians4", "double_donut", "rings3", "moons", "swissroll", "gaussians25")


def get_preset(name: str, data_name: str | None = None, base_family: str = "realnvp") -> dict:
    """A deep copy of preset ``name`` with the overrides for ``data_name`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (choose from: {', '.join(PRESETS)})")
    cfg = copy.deepcopy(PRESETS[name])
    cfg["wgan"] = copy.deepcopy(WGAN[name])
    cfg["lrw"] = copy.deepcopy(LRW[name])
    cfg["evaluation"] = dict(EVALUATION)
    for section, values in DATA_OVERRIDES.get(data_name or "", {}).items():
        cfg[section].update(values)
    if data_name in PAPER_SETS:
        cfg["classifier"]["calibrate_cells"] = 0
        cfg["lrw"]["discriminator"]["calibrate"] = False
    return cfg
