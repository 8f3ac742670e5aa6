"""OmniFold latent weights for a generator whose output carries hidden randomness (LaSeR Sec. 3;
Andreassen, Komiske, Metodiev, Nachman, Thaler, Phys. Rev. Lett. 124 (2020) 182001).

A simulator ``x = g(z, ε)`` maps one latent point to many data points, so the classifier's
weight ``w(x)`` pulled back to ``z`` (``w(g(z, ε))``) is not a function of ``z``. OmniFold is an
expectation-maximisation of the data likelihood over the latent density: with ``ν₀ = 1`` on a
sample ``(z_i, x_i = g(z_i, ε_i))``, each iteration ``n`` runs

1. **step 1 (pull)**: a classifier between the data (weight 1) and the ``x_i`` carrying
   ``ν_{n-1}(z_i)`` gives ``ω_n(x_i) = ν_{n-1}(z_i) · p_data(x_i) / p^ν_g(x_i)``;
2. **step 2 (push)**: a classifier *in latent space* between the ``z_i`` carrying ``ω_n`` and
   the same ``z_i`` carrying ``ν_{n-1}`` gives ``ν_n(z) = ν_{n-1}(z) · E[ω_n | z] / ν_{n-1}(z)``,
   a proper, smooth function of ``z`` (it averages the hidden noise out).

``ν_K(z) = Π_k r_k(z)``, the product of the step-2 classifiers' ratios, is differentiable in ``z``
even when ``g`` is not: latent rejection, HMC, Langevin and the refiners can sample
``q(z) ∝ p(z) ν_K(z)``, and ``x = g(z, ε)`` with fresh noise is then the refined simulator. For a
deterministic ``g`` one iteration reproduces the direct pull-back ``w(g(z))``; with noise, more
iterations unfold it (the pull-back alone stops at the first EM step).

:func:`pullback_spread` measures how far the direct pull-back is from a function of ``z``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genrefine.generators.base import Generator
from genrefine.samplers.base import LatentTarget, weight_diagnostics
from genrefine.training import whole_number
from genrefine.weights.classifier import (LOG_WEIGHT_CLIP, DensityRatioClassifier, RatioClassifier,
                                          make_classifier, soft_cap)


class OmniFold(nn.Module):
    """OmniFold's latent weights ``ν(z)`` for a (stochastic or deterministic) generator.

    Args:
        latent_dim: the generator's latent dimension.
        data_shape: its rows' shape (``(D,)`` or an image ``(C, H, W)``): step 1's classifier.
        iterations: ``K``, the EM iterations (each: one data-space and one latent classifier).
        hidden, layers: step 1's MLP (tabular rows; images get the CNN of
            :func:`~genrefine.weights.classifier.make_classifier`).
        latent_hidden, latent_layers: step 2's MLP on ``z``.
        val_fraction, patience: every classifier's held-out rows and early stopping.
        seed: the classifiers' split seed (iteration ``k`` uses ``seed + k``).

    After :meth:`fit`: ``z_``, ``x_`` (the generated sample), ``log_weight_`` (``log ν_K(z_)``),
    ``step1_`` (the last step-1 classifier, on data space) and ``diagnostics_`` (one record per
    iteration). Example::

        >>> of = OmniFold(sim.latent_dim, sim.data_shape, iterations=4).fit(sim, x_data)
        >>> target = of.target(sim.prior)            # q(z) ∝ p(z) ν(z), differentiable in z
    """

    def __init__(self, latent_dim: int, data_shape, iterations: int = 4, hidden: int = 64, layers: int = 4,
                 latent_hidden: int = 64, latent_layers: int = 4, val_fraction: float = 0.1, patience: int = 5,
                 seed: int = 0) -> None:
        super().__init__()
        self.latent_dim = whole_number(latent_dim, "omnifold: latent_dim", 1)
        self.iterations = whole_number(iterations, "omnifold: iterations", 1)
        self.data_shape = tuple(int(s) for s in data_shape)
        self.step1_settings = {"hidden": int(hidden), "layers": int(layers), "val_fraction": val_fraction,
                               "patience": patience}
        self.latent_hidden, self.latent_layers, self.seed = int(latent_hidden), int(latent_layers), int(seed)
        self.steps = nn.ModuleList(
            DensityRatioClassifier(self.latent_dim, latent_hidden, latent_layers, val_fraction, patience, seed + k)
            for k in range(self.iterations))
        self.register_buffer("log_norm", torch.zeros(()))  # makes the prior mean of ν one
        self.register_buffer("log_weight_max", torch.tensor(float("inf")))

    def config(self) -> dict:
        """What rebuilds this module before its saved tensors are loaded into it."""
        return {"latent_dim": self.latent_dim, "data_shape": list(self.data_shape), "iterations": self.iterations,
                **self.step1_settings, "latent_hidden": self.latent_hidden, "latent_layers": self.latent_layers,
                "seed": self.seed}

    def log_weight(self, z: Tensor) -> Tensor:
        """``log ν_K(z)``, shape ``(n,)``: differentiable in ``z``."""
        return sum(step.log_weight(z) for step in self.steps) - self.log_norm

    @torch.no_grad()
    def weight(self, z: Tensor) -> Tensor:
        """``ν_K(z)`` in float32, in chunks, no gradients."""
        return torch.cat([self.log_weight(c).clamp(max=LOG_WEIGHT_CLIP).exp() for c in z.split(100_000)])

    def target(self, prior, cap_factor: float | None = 2.0) -> LatentTarget:
        """``q(z) ∝ p(z) ν_K(z)``, the weight softly capped at ``cap_factor`` times the largest
        weight on the fitted latents (as :func:`~genrefine.weights.classifier.latent_target`)."""
        lw_max = float(self.log_weight_max)
        if cap_factor is None or not math.isfinite(lw_max):
            return LatentTarget(prior=prior, log_weight=self.log_weight, differentiable=True)
        cap = lw_max + math.log(cap_factor)
        return LatentTarget(prior=prior, log_weight=lambda z: soft_cap(self.log_weight(z), cap),
                            differentiable=True, bound=math.exp(cap))

    def fit(self, generator: Generator, data: Tensor, n_generated: int | None = None, epochs: int = 30,
            batch_size: int = 2000, lr: float = 1e-3, gamma: float = 0.99, progress: bool = True,
            checkpoint: str | None = None) -> "OmniFold":
        """Run the ``K`` iterations on ``n_generated`` draws of ``generator`` (default: as many as
        data rows) against ``data`` (rows of ``data_shape``, flat). Every classifier trains for
        at most ``epochs`` with these optimiser settings; ``checkpoint``: a path prefix, one
        checkpoint per classifier."""
        if generator.latent_dim != self.latent_dim:
            raise ValueError(f"omnifold: the generator's latent dimension is {generator.latent_dim}, "
                             f"the weights were built for {self.latent_dim}")
        n = whole_number(n_generated if n_generated is not None else len(data), "omnifold: n_generated", 2)
        z, x = generator.sample_with_latents(n)
        z, x = z.detach(), x.detach()
        train = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "gamma": gamma, "progress": progress}
        log_nu = torch.zeros(n, device=z.device)
        records, step1 = [], None
        for k, step2 in enumerate(self.steps):
            tag = f"_it{k + 1}"
            step1 = make_classifier(self.data_shape, seed=self.seed + k, **self.step1_settings).to(x.device)
            step1.fit(data, x, generated_weight=log_nu.exp(), **train,
                      checkpoint=checkpoint and checkpoint + "_pull" + tag)
            log_omega = log_nu + _batched_log_weight(step1, x)
            step2.fit(z, z, data_weight=log_omega.exp(), generated_weight=log_nu.exp(), paired=True, **train,
                      checkpoint=checkpoint and checkpoint + "_push" + tag)
            log_nu = log_nu + _batched_log_weight(step2, z)
            shift = float(torch.logsumexp(log_nu, 0)) - math.log(n)  # keep the sample mean of ν at one
            log_nu = log_nu - shift
            self.log_norm += shift
            records.append(_iteration_record(k + 1, step1, step2, log_omega, log_nu))
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        self.log_weight_max.fill_(float(log_nu.max()))
        self.z_, self.x_, self.log_weight_ = z, x, log_nu
        # the last data-space classifier (a refiner's data-space rejection starts from it), kept out
        # of this module's saved state: the latent weights are the product of ``steps`` alone
        object.__setattr__(self, "step1_", step1)
        self.diagnostics_ = {"iterations": records, "n_generated": n}
        return self


@torch.no_grad()
def _batched_log_weight(clf: RatioClassifier, x: Tensor) -> Tensor:
    """``log w(x)`` of a fitted classifier, clipped as :meth:`RatioClassifier.weight` clips."""
    return torch.cat([clf.log_weight(c) for c in x.split(clf.eval_batch)]).clamp(max=LOG_WEIGHT_CLIP)


def _iteration_record(k: int, step1: RatioClassifier, step2: RatioClassifier, log_omega: Tensor,
                      log_nu: Tensor) -> dict:
    """What one iteration reports: both classifiers' held-out checks and the weights' spread."""
    keep = ("auc", "bce", "best_epoch", "epochs_run")
    return {"iteration": k,
            "pull": {key: step1.diagnostics_[key] for key in keep},
            "push": {key: step2.diagnostics_[key] for key in keep},
            "event_weights": weight_diagnostics(log_omega.exp()),
            "latent_weights": weight_diagnostics(log_nu.exp())}


@torch.no_grad()
def pullback_spread(generator: Generator, classifier: RatioClassifier, n: int = 1000, copies: int = 8) -> dict:
    """How far the direct pull-back ``w(g(z, ε))`` is from a function of ``z``.

    ``n`` latent points, each mapped ``copies`` times (fresh hidden noise each time):
    ``noise_fraction`` is the share of the variance of ``log w`` that lies among the copies of
    one ``z`` (0 for a deterministic generator, 1 when ``w`` does not depend on ``z`` at all);
    ``weight_cv_within_z`` the mean coefficient of variation of ``w`` among them.
    """
    z = generator.prior.sample((int(n),))
    zz = z.repeat_interleave(int(copies), dim=0)
    lw = torch.cat([classifier.log_weight(generator.generate(c)) for c in zz.split(100_000)])
    lw = lw.clamp(max=LOG_WEIGHT_CLIP).double().reshape(int(n), int(copies))
    within, total = float(lw.var(1).mean()), float(lw.var())
    w = lw.exp()
    cv = float((w.std(1) / w.mean(1).clamp_min(1e-300)).mean())
    return {"latents": int(n), "copies": int(copies), "log_weight_std": math.sqrt(total),
            "log_weight_std_within_z": math.sqrt(within), "noise_fraction": within / total if total > 0 else 0.0,
            "weight_cv_within_z": cv}
