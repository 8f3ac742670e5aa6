"""The LaSeR refiner GAN ``z = Φ(y)``: an unweighted generator of the weighted latent space.

Trained on weighted latents ``(z_i, w_i)`` with the weighted binary cross-entropy of
Backes et al. (LaSeR Ref. [98]): the discriminator's real term is weighted,

    L_D = - Σ_i w_i log D(z_i) / Σ_i w_i - E_y log(1 - D(Φ(y))) + (γ/2) Σ_i w_i |∇D(z_i)|² / Σ_i w_i,
    L_Φ = - E_y log D(Φ(y)),

so at the optimum ``Φ(y)`` with ``y ~ N(0, I_L)`` is distributed as ``q(z) ∝ p(z) w(z)``.
Paper defaults (Sec. 4.1): L = 4, generator and discriminator MLPs 7 x 100 leaky ReLU,
Adam(1e-4, β = (0.5, 0.9)), lr x 0.999 per epoch, 4 discriminator updates per generator
update. Three additions make it converge fast and precisely (see docs/laser.md):

- residual start: ``Φ(y) = y[:N] + MLP(y)`` with a zero last layer, so training starts at
  the base latent p(z) and only has to move the mass that w moves;
- an exponential moving average of the generator's parameters, used for sampling;
- coupled auxiliary noise (common random numbers): the training latents ``z_i`` are prior
  draws, so ``y_i = (z_i, ε_i)`` with ``ε_i ~ N(0, I_{L-N})`` is an exact draw of
  ``N(0, I_L)``. Feeding the fake batch these ``y_i`` leaves every expectation in the loss
  unchanged, but while ``Φ`` is near the identity the real and fake batches sit on the same
  points, so the discriminator sees the weights' signal without the sampling noise of two
  independent batches. Without it the discriminator cannot resolve the small weight
  differences of a good base model (measured: its loss never leaves 2 log 2).
- an R1 gradient penalty on the (weighted) real latents (Mescheder et al. 2018), off by
  default: the weights' signal is small and a penalty strong enough to matter flattens it.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genrefine.generators.base import Generator, register_family
from genrefine.training import mlp, train_loop
from genrefine.validation import check_array, check_weights


@register_family("refiner_gan")
class RefinerGAN(Generator):
    """``z = Φ(y)``, ``y ~ N(0, I_aux_dim)``: a latent-space generator trained by weighted BCE.

    Example:
        >>> phi = RefinerGAN(latent_dim=2).fit(z, w, epochs=20)
        >>> z_refined = phi.sample(100_000)
    """

    def __init__(self, latent_dim: int, aux_dim: int = 4, hidden: int = 100, layers: int = 7, residual: bool = True) -> None:
        super().__init__(latent_dim=aux_dim, data_dim=latent_dim)
        self.aux_dim, self.hidden, self.layers = int(aux_dim), int(hidden), int(layers)
        self.residual = bool(residual) and self.aux_dim >= latent_dim
        self.net = mlp(self.aux_dim, latent_dim, self.hidden, self.layers)
        if self.residual:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def config(self) -> dict:
        return {"latent_dim": self.data_dim, "aux_dim": self.aux_dim, "hidden": self.hidden,
                "layers": self.layers, "residual": self.residual}

    def forward(self, y: Tensor) -> Tensor:
        out = self.net(y)
        return out + y[:, : self.data_dim] if self.residual else out

    def fit(self, z, w, epochs: int = 200, batch_size: int = 2000, lr: float = 1e-4, betas=(0.5, 0.9),
            gamma: float = 0.999, n_critic: int = 4, r1: float = 0.0, ema: float = 0.99, coupled: bool = True,
            disc_hidden: int = 100, disc_layers: int = 7, lr_d: float | None = None, progress: bool = True,
            checkpoint: str | None = None) -> "RefinerGAN":
        """Train on latent points ``z`` (n, N) with weights ``w`` (n,); returns self, frozen.

        ``z`` must be draws of this refiner's target prior p(z) when ``coupled`` (the LaSeR
        setting: z_i ~ p, x_i = g(z_i), w_i = w(x_i)).
        ``lr_d`` is the discriminator's learning rate (default: ``lr``).
        """
        dev = self.device
        z = torch.as_tensor(check_array(z, name="latent points", dim=self.data_dim, min_rows=2), device=dev).float()
        w = torch.as_tensor(check_weights(w, name="latent weights", n=len(z)), device=dev).float()
        w = w / w.mean()
        disc = mlp(self.data_dim, 1, disc_hidden, disc_layers).to(dev)

        def D(v: Tensor) -> Tensor:
            return disc(v).squeeze(-1)
        self.__dict__["discriminator_"] = disc  # kept for inspection, not part of the saved model
        for p in self.parameters():
            p.requires_grad_(True)
        avg = copy.deepcopy(self.net)
        for p in avg.parameters():
            p.requires_grad_(False)
        opt_g = torch.optim.Adam(self.net.parameters(), lr=lr, betas=tuple(betas))
        opt_d = torch.optim.Adam(disc.parameters(), lr=lr if lr_d is None else lr_d, betas=tuple(betas))
        calls = [0]
        coupled = coupled and self.residual

        def aux(zb: Tensor) -> Tensor:
            eps = torch.randn(len(zb), self.aux_dim - (self.data_dim if coupled else 0), device=dev)
            return torch.cat([zb, eps], 1) if coupled else eps

        def step(zb: Tensor, wb: Tensor) -> dict:
            y = aux(zb)
            with torch.no_grad():
                fake = self(y)
            zr = zb.requires_grad_(r1 > 0)
            d_real = D(zr)
            d_fake = D(fake)
            wn = wb / wb.sum()
            loss_d = (wn * F.softplus(-d_real)).sum() + F.softplus(d_fake).mean()
            if r1 > 0:
                (grad,) = torch.autograd.grad(d_real.sum(), zr, create_graph=True)
                loss_d = loss_d + 0.5 * r1 * (wn * grad.pow(2).sum(-1)).sum()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            logs = {"loss_d": loss_d.item()}
            calls[0] += 1
            if calls[0] % n_critic == 0:
                loss_g = F.softplus(-D(self(y))).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                with torch.no_grad():
                    for pa, p in zip(avg.parameters(), self.net.parameters()):
                        pa.lerp_(p, 1 - ema)
                logs["loss_g"] = loss_g.item() * n_critic  # averaged over all calls by the loop
            return logs

        self.history_ = train_loop(step, (z, w), {"refiner": self, "discriminator": disc, "ema": avg},
                                   {"generator": opt_g, "discriminator": opt_d}, epochs, batch_size, gamma,
                                   desc="LaSeR refiner GAN", progress=progress, checkpoint=checkpoint)
        self.net.load_state_dict(avg.state_dict())
        return self.freeze()
