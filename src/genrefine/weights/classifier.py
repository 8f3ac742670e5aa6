"""Post-hoc classifier weights (DCTR) and their pull-back to the latent space (LaSeR Sec. 3).

A classifier ``f(x) = P(data | x)`` trained with binary cross-entropy between data and
generated samples satisfies ``f/(1-f) = (n_data p_data(x)) / (n_gen p_g(x))`` at the optimum, so

    w(x) = f(x) / (1 - f(x)) · n_gen / n_data = exp(logit f(x)) · n_gen / n_data ≈ p_data(x) / p_g(x).

For a deterministic generator, ``w(z) = w(g(z))`` is a proper function of the latent point and
``q(z) ∝ p(z) w(z)`` is the latent density whose push-forward through ``g`` is the reweighted
data density.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genrefine.generators.base import Generator
from genrefine.samplers.base import LatentTarget
from genrefine.nn import mlp
from genrefine.training import train_loop
from genrefine.validation import check_array


class DensityRatioClassifier(nn.Module):
    """MLP classifier data-vs-generated whose odds estimate the density ratio p_data / p_g.

    Defaults are the LaSeR post-hoc classifier (8 hidden layers x 96, leaky ReLU, BCE, Adam 1e-3,
    lr x 0.999 per epoch). Inputs are standardised with the statistics of the training set.

    Example:
        >>> clf = DensityRatioClassifier(2).fit(x_data, x_gen, epochs=50)
        >>> w = clf.weight(x_gen)            # ≈ p_data / p_g at x_gen, mean ≈ 1
    """

    def __init__(self, dim: int, hidden: int = 96, layers: int = 8) -> None:
        super().__init__()
        self.dim, self.hidden, self.layers = int(dim), int(hidden), int(layers)
        self.net = mlp(self.dim, 1, self.hidden, self.layers)
        self.register_buffer("loc", torch.zeros(self.dim))
        self.register_buffer("scale", torch.ones(self.dim))
        self.register_buffer("log_class_ratio", torch.zeros(()))  # log(n_gen / n_data)
        # largest log w seen on the training samples: beyond them the classifier extrapolates
        self.register_buffer("log_weight_max", torch.tensor(float("inf")))

    def logit(self, x: Tensor) -> Tensor:
        """``logit f(x)``, shape ``(n,)``."""
        return self.net((x - self.loc) / self.scale).squeeze(-1)

    def log_weight(self, x: Tensor) -> Tensor:
        """``log w(x) = logit f(x) + log(n_gen / n_data)``."""
        return self.logit(x) + self.log_class_ratio

    @torch.no_grad()
    def weight(self, x: Tensor, batch_size: int = 100_000) -> Tensor:
        """``w(x)`` in chunks, no gradients."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.loc.device)
        return torch.cat([self.log_weight(c).exp() for c in x.split(batch_size)])

    def fit(self, data, generated, epochs: int = 50, batch_size: int = 2000, lr: float = 1e-3, gamma: float = 0.999,
            weight_decay: float = 0.0, progress: bool = True, checkpoint: str | None = None) -> "DensityRatioClassifier":
        """Train with BCE: label 1 for ``data``, 0 for ``generated`` (both ``(n, dim)``)."""
        dev = self.loc.device
        xd = torch.as_tensor(check_array(data, name="data", dim=self.dim, min_rows=2), device=dev)
        xg = torch.as_tensor(check_array(generated, name="generated samples", dim=self.dim, min_rows=2), device=dev)
        x = torch.cat([xd, xg]).float()
        y = torch.cat([torch.ones(len(xd), device=dev), torch.zeros(len(xg), device=dev)])
        self.loc.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-6))
        self.log_class_ratio.fill_(math.log(len(xg) / len(xd)))
        for p in self.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        bce = nn.BCEWithLogitsLoss()

        def step(xb: Tensor, yb: Tensor) -> dict:
            loss = bce(self.logit(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"bce": loss.item()}

        self.history_ = train_loop(step, (x, y), {"classifier": self}, {"adam": opt}, epochs, batch_size, gamma,
                                   desc="classifier", progress=progress, checkpoint=checkpoint)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            self.log_weight_max.fill_(max(float(self.log_weight(c).max()) for c in x.split(100_000)))
        return self


def soft_cap(log_w: Tensor, cap: float, sharpness: float = 10.0) -> Tensor:
    """A smooth upper cap of log-weights: ``cap - softplus_β(cap - log w)`` with β = ``sharpness``.

    Never above ``cap``, differentiable (HMC can use it), and equal to ``log w`` within
    ``log(1 + e^{-β·(cap - log w)}) / β``: below ``cap - log 2`` (the largest training weight
    when the cap is twice it) that is under 1e-4 at β = 10. A plain softplus (β = 1) would
    shrink a weight of half the cap by a third, i.e. distort the very weights being sampled.
    """
    return cap - F.softplus(cap - log_w, beta=sharpness)


def latent_target(generator: Generator, classifier: DensityRatioClassifier, cap_factor: float | None = 2.0) -> LatentTarget:
    """The pulled-back target ``q(z) ∝ p(z) w(g(z))`` of a deterministic generator.

    Far from its training samples an MLP classifier's logit grows without bound, and a flow's
    ``g(z)`` can grow exponentially in ``|z|``, so ``p(z) w(g(z))`` need not even be
    normalisable: HMC chains then escape to infinity and rejection sampling has no bound.
    The weight is therefore capped smoothly (:func:`soft_cap`) at ``cap_factor`` times the
    largest weight seen on the classifier's training samples; the cap is the target's
    ``bound`` and is reported. ``cap_factor=None`` disables it.

    A stochastic generator (hidden randomness besides z) maps one z to many x, so w(g(z)) is
    not a function of z; its latent weights need OmniFold instead.
    """
    if generator.stochastic:
        raise ValueError("classifier weights pulled back through a stochastic generator are not a function of z; "
                         "use OmniFold latent weights for this generator")

    lw_max = float(classifier.log_weight_max)
    if cap_factor is None or not math.isfinite(lw_max):
        def log_weight(z: Tensor) -> Tensor:
            return classifier.log_weight(generator(z))

        bound = None
    else:
        cap = lw_max + math.log(cap_factor)

        def log_weight(z: Tensor) -> Tensor:
            return soft_cap(classifier.log_weight(generator(z)), cap)

        bound = math.exp(cap)
    return LatentTarget(prior=generator.prior, log_weight=log_weight, differentiable=generator.differentiable, bound=bound)
