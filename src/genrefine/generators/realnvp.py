"""Real NVP base flow (Dinh et al. 2016) built on zuko, trained by maximum likelihood.

``x = g(z) = σ · T⁻¹(z) + μ`` where ``T`` is zuko's RealNVP transform (data -> latent) and
``μ, σ`` standardise the training data, so one set of hyper-parameters serves data of any
scale. ``g`` is invertible with an explicit density:
``log p(x) = log N(T((x-μ)/σ); 0, I) + log|det J_T| - Σ log σ``.
"""

from __future__ import annotations

import numpy as np
import torch
import zuko
from torch import Tensor, nn

from genrefine.generators.base import Generator, register_family
from genrefine.training import train_loop, whole_number


@register_family("realnvp")
class RealNVPGenerator(Generator):
    """Real NVP flow: ``transforms`` affine coupling blocks, each an MLP of ``hidden`` units
    per layer (leaky ReLU), alternating masks.

    Example:
        >>> g = RealNVPGenerator(2, transforms=12, hidden=(48, 48, 48)).fit(x, epochs=100)
        >>> x_new = g.sample(10_000); z = g.inverse(x_new); logp = g.log_prob(x_new)
    """

    invertible = True
    preset_section = "base"
    arch_keys = ("transforms", "hidden")
    # measured on 2 cores, raw sample(200k): 12 x (3 x 48) 0.224 s in chunks of 8192 against
    # 0.250 s in chunks of 50k; 20 x (3 x 60) 0.58 s against 1.33 s
    chunk_size = 8192

    def __init__(self, data_dim: int, transforms: int = 12, hidden: tuple[int, ...] | list[int] = (48, 48, 48),
                 data_shape=None) -> None:
        whole_number(data_dim, "data_dim", 1)
        whole_number(transforms, "transforms", 1)
        if not len(hidden):
            raise ValueError("hidden: expected at least one hidden layer width")
        for h in hidden:
            whole_number(h, "hidden width", 1)
        super().__init__(latent_dim=data_dim, data_dim=data_dim, data_shape=data_shape)
        self.transforms = int(transforms)
        self.hidden = [int(h) for h in hidden]
        self.flow = zuko.flows.RealNVP(features=data_dim, transforms=self.transforms,
                                       hidden_features=self.hidden, activation=nn.LeakyReLU)
        self.register_buffer("data_loc", torch.zeros(data_dim))
        self.register_buffer("data_scale", torch.ones(data_dim))

    @classmethod
    def build(cls, data_shape, x, transforms: int = 12, hidden=(48, 48, 48)) -> "RealNVPGenerator":
        return cls(int(np.prod(data_shape)), transforms, hidden, data_shape=data_shape)

    def config(self) -> dict:
        return {"data_dim": self.data_dim, "transforms": self.transforms, "hidden": self.hidden,
                "data_shape": list(self.data_shape)}

    def forward(self, z: Tensor) -> Tensor:
        return self.flow().transform.inv(z) * self.data_scale + self.data_loc

    def inverse(self, x: Tensor) -> Tensor:
        """``z = g⁻¹(x)``."""
        return self.flow().transform((x - self.data_loc) / self.data_scale)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density of the flow at ``x``, shape ``(n,)``."""
        return self.flow().log_prob((x - self.data_loc) / self.data_scale) - self.data_scale.log().sum()

    def fit(self, data, epochs: int = 100, batch_size: int = 2000, lr: float = 1e-3, weight_decay: float = 1e-5,
            gamma: float = 0.999, progress: bool = True, checkpoint: str | None = None) -> "RealNVPGenerator":
        """Maximum likelihood on ``data`` (n, d): Adam(lr, weight_decay), lr x gamma per epoch."""
        x = self.training_rows(data, standardise=True)
        opt = torch.optim.Adam(self.flow.parameters(), lr=lr, weight_decay=weight_decay)

        def step(xb: Tensor) -> dict:
            loss = -self.log_prob(xb).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"nll": loss.item()}

        self.history_ = train_loop(step, (x,), {"flow": self}, {"adam": opt}, epochs, batch_size, gamma,
                                   desc="base flow", progress=progress, checkpoint=checkpoint)
        return self.freeze()
