"""A WGAN-GP base generator: an MLP ``x = G(z)`` trained against a Wasserstein critic with a
gradient penalty (Gulrajani et al. 2017), as in the public WGAN-GP toy experiments that DOT and
the latent reweighting paper (Issenhuth et al.) start from.

The toy script's settings: G and D are MLPs with 3 hidden ReLU layers of 512 units, a 2-d
Gaussian latent, 5 critic steps per generator step, batch 256, Adam(1e-4, β = (0.5, 0.9)) and a
penalty weight of 0.1 ("smaller lambda seems to help for toy tasks"). The ``quick`` preset
trades width for steps; what was measured is in docs/latent_reweighting.md.

The critic is kept (``critic_``) and saved beside the generator: the latent importance
network, DOT and the density-ratio baselines all start from it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrefine.generators.base import Generator, register_family
from genrefine.nn import mlp
from genrefine.training import train_loop
from genrefine.validation import check_array


class Critic(nn.Module):
    """A scalar critic / discriminator ``D(x)``: ReLU MLP, output shape ``(n,)``."""

    def __init__(self, data_dim: int, hidden: int = 512, layers: int = 3) -> None:
        super().__init__()
        self.data_dim, self.hidden, self.layers = int(data_dim), int(hidden), int(layers)
        self.net = mlp(self.data_dim, 1, self.hidden, self.layers, activation="relu")

    def config(self) -> dict:
        return {"data_dim": self.data_dim, "hidden": self.hidden, "layers": self.layers}

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP penalty ``E (|∇D(x̂)| - 1)²`` at random interpolates ``x̂`` of real and fake."""
    n = min(len(real), len(fake))
    eps = torch.rand(n, 1, device=real.device)
    xh = (eps * real[:n] + (1 - eps) * fake[:n]).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
    return (grad.norm(dim=-1) - 1).pow(2).mean()


@register_family("wgan-gp")
class WGANGenerator(Generator):
    """MLP generator ``x = G(z)``, ``z ~ N(0, I)``; :meth:`fit` trains it as a WGAN-GP.

    Example:
        >>> gen = WGANGenerator(latent_dim=2, data_dim=2, hidden=512, layers=3)
        >>> gen.fit(x_train, epochs=100)          # gen.critic_ is the trained critic
        >>> x = gen.sample(10_000)
    """

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: int = 512, layers: int = 3,
                 data_shape=None) -> None:
        super().__init__(latent_dim, data_dim, data_shape=data_shape)
        self.hidden, self.layers = int(hidden), int(layers)
        self.net = mlp(self.latent_dim, self.data_dim, self.hidden, self.layers, activation="relu")

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "data_dim": self.data_dim, "hidden": self.hidden, "layers": self.layers,
                "data_shape": list(self.data_shape)}

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)

    def fit(self, x, epochs: int = 100, batch_size: int = 256, lr: float = 1e-4, betas=(0.5, 0.9),
            n_critic: int = 5, gp_weight: float = 0.1, critic_hidden: int | None = None,
            critic_layers: int | None = None, gamma: float = 1.0, progress: bool = True,
            checkpoint: str | None = None) -> "WGANGenerator":
        """Train on data ``x`` (n, data_dim) as a WGAN-GP; one critic step per batch, one
        generator step every ``n_critic`` batches. Sets ``critic_`` and ``history_``; returns
        self, frozen. The critic's size defaults to the generator's."""
        dev = self.device
        x = torch.as_tensor(check_array(x, name="training data", dim=self.data_dim, min_rows=2), device=dev).float()
        critic = Critic(self.data_dim, critic_hidden or self.hidden, critic_layers or self.layers).to(dev)
        for p in self.parameters():
            p.requires_grad_(True)
        opt_g = torch.optim.Adam(self.net.parameters(), lr=lr, betas=tuple(betas))
        opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=tuple(betas))
        calls = [0]

        def step(xb: Tensor) -> dict:
            z = torch.randn(len(xb), self.latent_dim, device=dev)
            with torch.no_grad():
                fake = self(z)
            w_dist = critic(xb).mean() - critic(fake).mean()
            loss_d = -w_dist + gp_weight * gradient_penalty(critic, xb, fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            logs = {"wasserstein": w_dist.item()}
            calls[0] += 1
            if calls[0] % n_critic == 0:
                for p in critic.parameters():
                    p.requires_grad_(False)
                loss_g = -critic(self(torch.randn(len(xb), self.latent_dim, device=dev))).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                for p in critic.parameters():
                    p.requires_grad_(True)
            return logs

        self.history_ = train_loop(step, (x,), {"generator": self, "critic": critic},
                                   {"generator": opt_g, "critic": opt_d}, epochs, batch_size, gamma,
                                   desc="WGAN-GP base", progress=progress, checkpoint=checkpoint)
        for p in critic.parameters():
            p.requires_grad_(False)
        self.__dict__["critic_"] = critic.eval()  # not a submodule: saved on its own
        return self.freeze()
