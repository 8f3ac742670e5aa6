"""The refined generator ``x = g(Φ(y))`` and the refinement pipeline pieces."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from genrefine.generators.base import Generator, register_family


@register_family("refined")
class RefinedGenerator(Generator):
    """``x = base(refiner(y))`` with ``y ~ refiner.prior``: itself a :class:`Generator`.

    It samples, saves and loads like any generator, and can be refined again (its latent
    space is the refiner's auxiliary space, and its prior the refiner's: a standard normal,
    thinned by the refiner's rejection step when it has one). When both parts are invertible it has an exact
    density: ``log p(x) = log p_base(x) + log q_Φ(z) - log p(z)`` with ``z = base⁻¹(x)``.

    Example:
        >>> refined = RefinedGenerator(base, RefinerGAN(2).fit(z, w))
        >>> x = refined.sample(100_000); save_generator(refined, "models/laser")
    """

    def __init__(self, base: Generator, refiner: Generator) -> None:
        if refiner.data_dim != base.latent_dim:
            raise ValueError(f"refiner outputs {refiner.data_dim}-d latents but the base generator takes {base.latent_dim}-d")
        super().__init__(latent_dim=refiner.latent_dim, data_dim=base.data_dim, own_prior=False)  # the refiner's prior is ours
        self.base, self.refiner = base, refiner
        self.invertible = base.invertible and refiner.invertible
        self.differentiable = base.differentiable and refiner.differentiable
        self.stochastic = base.stochastic or refiner.stochastic

    @property
    def prior(self) -> Distribution:
        """The refiner's latent distribution (with its rejection step, if it has one)."""
        return self.refiner.prior

    @torch.no_grad()
    def sample_with_latents(self, n: int, batch_size: int = 50_000) -> tuple[Tensor, Tensor]:
        """``(y, base(refiner(y)))`` with ``y`` from :attr:`prior`; the refiner's pass is not repeated."""
        y, z = self.refiner.sample_with_latents(n, batch_size)
        return y, self.base.generate(z, batch_size)

    @property
    def prior_loc(self) -> Tensor:  # type: ignore[override]
        return self.refiner.prior_loc

    @property
    def prior_scale(self) -> Tensor:  # type: ignore[override]
        return self.refiner.prior_scale

    @property
    def depth(self) -> int:
        """How many refinements are stacked on the original base generator."""
        return 1 + (self.base.depth if isinstance(self.base, RefinedGenerator) else 0)

    def config(self) -> dict:
        from genrefine.checkpoint import generator_spec

        return {"base": generator_spec(self.base), "refiner": generator_spec(self.refiner)}

    @classmethod
    def from_config(cls, cfg: dict) -> "RefinedGenerator":
        from genrefine.checkpoint import build_generator

        return cls(build_generator(cfg["base"]), build_generator(cfg["refiner"]))

    def forward(self, y: Tensor) -> Tensor:
        return self.base(self.refiner(y))

    @torch.no_grad()
    def base_latent(self, y: Tensor) -> Tensor:
        """The point in the original base generator's latent space that ``y`` maps to."""
        z = self.refiner.generate(y)
        return self.base.base_latent(z) if isinstance(self.base, RefinedGenerator) else z

    def inverse(self, x: Tensor) -> Tensor:
        if not self.invertible:
            raise ValueError("this refined generator is not invertible (its refiner or base is not)")
        return self.refiner.inverse(self.base.inverse(x))

    def log_prob(self, x: Tensor) -> Tensor:
        if not self.invertible:
            raise ValueError("this refined generator has no explicit density (its refiner or base is not invertible)")
        z = self.base.inverse(x)
        return self.base.log_prob(x) + self.refiner.log_prob(z) - self.base.prior.log_prob(z)
