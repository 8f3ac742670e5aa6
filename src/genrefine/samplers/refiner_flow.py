"""A refiner normalizing flow ``z = Φ(y)`` trained by weighted maximum likelihood.

    L = - Σ_i w_i log q_Φ(z_i) / Σ_i w_i,

whose minimiser over the flow family is the weighted latent density ``q(z) ∝ p(z) w(z)``.
A neural spline flow (zuko ``NSF``: rational-quadratic splines, flexible enough to carve the
holes and gaps that w puts into the latent space) is the default. Unlike the GAN refiner it
has an explicit density, so ``RefinedGenerator(flow, RefinerFlow)`` is again a flow.
"""

from __future__ import annotations

import torch
import zuko
from torch import Tensor

from genrefine.generators.base import Generator, register_family
from genrefine.training import train_loop
from genrefine.validation import check_array, check_weights


@register_family("refiner_flow")
class RefinerFlow(Generator):
    """``z = Φ(y) = T⁻¹(y)``, ``y ~ N(0, I)``, with ``T`` a zuko NSF (latent -> auxiliary).

    ``passes=2`` makes each transform a coupling layer: sampling inverts it in two network passes
    whatever the latent dimension (a fully autoregressive NSF, ``passes=None``, needs one pass
    per dimension: 106 s instead of 2.5 s for 10,000 samples of a 64-d latent, one thread). In
    two dimensions the two are the same network.

    Example:
        >>> phi = RefinerFlow(latent_dim=2).fit(z, w, epochs=30)
        >>> z_refined = phi.sample(100_000); logq = phi.log_prob(z_refined)
    """

    invertible = True

    def __init__(self, latent_dim: int, transforms: int = 4, hidden: tuple[int, ...] | list[int] = (64, 64), bins: int = 8,
                 passes: int | None = 2) -> None:
        super().__init__(latent_dim=latent_dim, data_dim=latent_dim)
        self.transforms, self.hidden, self.bins = int(transforms), [int(h) for h in hidden], int(bins)
        self.passes = None if passes is None else int(passes)
        self.flow = zuko.flows.NSF(features=latent_dim, transforms=self.transforms, hidden_features=self.hidden,
                                   bins=self.bins, passes=self.passes)

    def config(self) -> dict:
        return {"latent_dim": self.data_dim, "transforms": self.transforms, "hidden": self.hidden, "bins": self.bins,
                "passes": self.passes}

    @classmethod
    def from_config(cls, cfg: dict, user=None) -> "RefinerFlow":
        """A config saved before ``passes`` existed was fully autoregressive (``passes=None``)."""
        return super().from_config({"passes": None, **cfg}, user)

    def forward(self, y: Tensor) -> Tensor:
        return self.flow().transform.inv(y)

    def inverse(self, z: Tensor) -> Tensor:
        return self.flow().transform(z)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.flow().log_prob(z)

    def fit(self, z, w, epochs: int = 50, batch_size: int = 2000, lr: float = 1e-3, weight_decay: float = 0.0,
            gamma: float = 0.9, progress: bool = True, checkpoint: str | None = None) -> "RefinerFlow":
        """Weighted maximum likelihood on latent points ``z`` (n, N) with weights ``w`` (n,)."""
        dev = self.device
        z = torch.as_tensor(check_array(z, name="latent points", dim=self.data_dim, min_rows=2), device=dev).float()
        w = torch.as_tensor(check_weights(w, name="latent weights", n=len(z)), device=dev).float()
        w = w / w.mean()
        for p in self.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam(self.flow.parameters(), lr=lr, weight_decay=weight_decay)

        def step(zb: Tensor, wb: Tensor) -> dict:
            loss = -(wb * self.flow().log_prob(zb)).sum() / wb.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"weighted_nll": loss.item()}

        self.history_ = train_loop(step, (z, w), {"refiner": self}, {"adam": opt}, epochs, batch_size, gamma,
                                   desc="refiner flow", progress=progress, checkpoint=checkpoint)
        return self.freeze()
