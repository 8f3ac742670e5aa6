"""Adversarial base families: ``x = G(z)``, ``z ~ N(0, I)``, trained against a critic ``D``.

One generator network per row layout: a ReLU MLP for flat rows, the introduction paper's
Eq. (5) decoder for images (:mod:`genrefine.generators.nets`); the critic likewise
(:class:`~genrefine.generators.critic.Critic`). The families differ only in their losses:

============  ==============================================================  ===============
family        critic loss / generator loss                                    critic extras
============  ==============================================================  ===============
``dcgan``     BCE on logits: -log σ(D(x)) - log(1 - σ(D(G(z)))) / -log σ(D(G(z)))  batch norm
``wgan-clip`` -(E D(x) - E D(G(z))) / -E D(G(z)) (Arjovsky et al.)           weights in [-c, c], RMSprop
``wgan-gp``   -(E D(x) - E D(G(z))) + λ GP / -E D(G(z)) (Gulrajani et al.)
``hinge-gp``  E relu(1 - D(x)) + E relu(1 + D(G(z))) + λ GP / -E D(G(z))
============  ==============================================================  ===============

One critic step per batch and one generator step every ``n_critic`` batches. The trained
critic is kept (``critic_``) and saved beside the generator: the latent importance network,
DOT and the density-ratio baselines start from it.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from genrefine.generators.base import Generator, register_family
from genrefine.generators.critic import Critic, gradient_penalty
from genrefine.generators.monitor import EnergyMonitor
from genrefine.generators.nets import ConvDecoder, in_unit_interval, is_image
from genrefine.nn import mlp
from genrefine.training import train_loop
from genrefine.validation import check_array


class AdversarialGenerator(Generator):
    """Base of the GAN families; a subclass sets its losses and :attr:`fit_defaults`.

    Example:
        >>> gen = WGANGenerator(latent_dim=2, data_dim=2, hidden=512, layers=3)
        >>> gen.fit(x_train, epochs=100)          # gen.critic_ is the trained critic
        >>> x = gen.sample(10_000)
    """

    #: training settings a ``fit`` argument left at None takes
    fit_defaults: ClassVar[dict] = {"lr": 1e-4, "betas": (0.5, 0.9), "n_critic": 5, "gp_weight": 0.0, "clip": 0.0}
    #: Eq. (33)'s batch norm in the image critic
    critic_batch_norm: ClassVar[bool] = False
    optimizer: ClassVar[str] = "adam"
    arch_keys = ("latent_dim", "hidden", "layers")

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: int = 512, layers: int = 3,
                 data_shape=None, sigmoid: bool = True) -> None:
        super().__init__(latent_dim, data_dim, data_shape=data_shape)
        self.hidden, self.layers, self.sigmoid = int(hidden), int(layers), bool(sigmoid)
        if is_image(self.data_shape):
            self.net = ConvDecoder(self.latent_dim, self.data_shape, sigmoid=self.sigmoid)
        else:
            self.net = mlp(self.latent_dim, self.data_dim, self.hidden, self.layers, activation="relu")

    @classmethod
    def build(cls, data_shape, x, latent_dim: int = 2, hidden: int = 128, layers: int = 3) -> "AdversarialGenerator":
        """Image outputs pass a sigmoid when the data lie in [0, 1]."""
        return cls(latent_dim, int(math.prod(data_shape)), hidden, layers, data_shape, sigmoid=in_unit_interval(x))

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "data_dim": self.data_dim, "hidden": self.hidden, "layers": self.layers,
                "data_shape": list(self.data_shape), "sigmoid": self.sigmoid}

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)

    # --- the family's losses -------------------------------------------------------------
    def critic_loss(self, critic: Critic, real: Tensor, fake: Tensor, gp_weight: float) -> tuple[Tensor, dict]:
        raise NotImplementedError

    def generator_loss(self, critic: Critic, fake: Tensor) -> Tensor:
        return -critic(fake).mean()

    # --- training ------------------------------------------------------------------------
    def new_critic(self, hidden: int | None = None, layers: int | None = None) -> Critic:
        """An untrained critic for this generator's rows (its size defaults to the generator's)."""
        return Critic(self.data_dim, hidden or self.hidden, layers or self.layers, data_shape=self.data_shape,
                      batch_norm=self.critic_batch_norm).to(self.device)

    def _optimizers(self, critic: Critic, lr: float, betas) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        if self.optimizer == "rmsprop":
            return (torch.optim.RMSprop(self.net.parameters(), lr=lr), torch.optim.RMSprop(critic.parameters(), lr=lr))
        return (torch.optim.Adam(self.net.parameters(), lr=lr, betas=tuple(betas)),
                torch.optim.Adam(critic.parameters(), lr=lr, betas=tuple(betas)))

    def fit(self, x, epochs: int = 100, batch_size: int = 256, lr: float | None = None, betas=None,
            n_critic: int | None = None, gp_weight: float | None = None, clip: float | None = None,
            critic_hidden: int | None = None, critic_layers: int | None = None, gamma: float = 1.0,
            progress: bool = True, checkpoint: str | None = None, monitor=None) -> "AdversarialGenerator":
        """Train on data ``x`` (n, data_dim); settings left at None take :attr:`fit_defaults`.
        ``monitor``: held-out rows whose energy distance to fresh samples is logged each epoch
        (``history_[i]["energy"]``). Sets ``critic_`` and ``history_``; returns self, frozen."""
        given = {"lr": lr, "betas": betas, "n_critic": n_critic, "gp_weight": gp_weight, "clip": clip}
        s = {**self.fit_defaults, **{k: v for k, v in given.items() if v is not None}}
        dev = self.device
        x = torch.as_tensor(check_array(x, name="training data", dim=self.data_dim, min_rows=2), device=dev).float()
        critic = self.new_critic(critic_hidden, critic_layers)
        for p in self.parameters():
            p.requires_grad_(True)
        opt_g, opt_d = self._optimizers(critic, s["lr"], s["betas"])
        step = self._step(critic, opt_g, opt_d, s)
        watch = EnergyMonitor(self, monitor) if monitor is not None else None
        self.history_ = train_loop(step, (x,), {"generator": self, "critic": critic},
                                   {"generator": opt_g, "critic": opt_d}, epochs, batch_size, gamma,
                                   desc=f"{self.family} base", progress=progress, checkpoint=checkpoint,
                                   on_epoch_end=watch)
        for p in critic.parameters():
            p.requires_grad_(False)
        self.__dict__["critic_"] = critic.eval()  # not a submodule: saved on its own
        return self.freeze()

    def _step(self, critic: Critic, opt_g, opt_d, s: dict):
        """One batch: a critic step, and a generator step every ``n_critic`` batches."""
        calls, dev = [0], self.device

        def step(xb: Tensor) -> dict:
            z = torch.randn(len(xb), self.latent_dim, device=dev)
            with torch.no_grad():
                fake = self(z)
            loss_d, logs = self.critic_loss(critic, xb, fake, s["gp_weight"])
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if s["clip"]:
                with torch.no_grad():
                    for p in critic.parameters():
                        p.clamp_(-s["clip"], s["clip"])
            calls[0] += 1
            if calls[0] % s["n_critic"] == 0:
                for p in critic.parameters():
                    p.requires_grad_(False)
                loss_g = self.generator_loss(critic, self(torch.randn(len(xb), self.latent_dim, device=dev)))
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                for p in critic.parameters():
                    p.requires_grad_(True)
            return logs

        return step


def _wasserstein(critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
    return critic(real).mean() - critic(fake).mean()


@register_family("dcgan")
class DCGANGenerator(AdversarialGenerator):
    """DCGAN (Radford et al.; the introduction paper's Sec. 5.1): the non-saturating BCE losses,
    a critic with batch norm, Adam(2e-4, β = (0.5, 0.999)), one critic step per generator step."""

    preset_section = "dcgan"

    fit_defaults = {"lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1, "gp_weight": 0.0, "clip": 0.0}
    critic_batch_norm = True

    def critic_loss(self, critic, real, fake, gp_weight):
        dr, df = critic(real), critic(fake)
        loss = F.binary_cross_entropy_with_logits(dr, torch.ones_like(dr)) + \
            F.binary_cross_entropy_with_logits(df, torch.zeros_like(df))
        return loss, {"critic_loss": loss.item()}

    def generator_loss(self, critic, fake):
        d = critic(fake)
        return F.binary_cross_entropy_with_logits(d, torch.ones_like(d))


@register_family("wgan-clip")
class WGANClipGenerator(AdversarialGenerator):
    """WGAN with weight clipping (Arjovsky et al.; the introduction paper's Sec. 5.2): the critic's
    weights kept in [-0.01, 0.01], RMSprop(5e-5), five critic steps per generator step."""

    preset_section = "wgan-clip"

    fit_defaults = {"lr": 5e-5, "betas": (0.5, 0.9), "n_critic": 5, "gp_weight": 0.0, "clip": 0.01}
    critic_batch_norm = True
    optimizer = "rmsprop"

    def critic_loss(self, critic, real, fake, gp_weight):
        w_dist = _wasserstein(critic, real, fake)
        return -w_dist, {"wasserstein": w_dist.item()}


@register_family("wgan-gp")
class WGANGenerator(AdversarialGenerator):
    """WGAN-GP (Gulrajani et al. 2017), the base of the latent reweighting paper's toy
    experiments: Adam(1e-4, β = (0.5, 0.9)), five critic steps per generator step, penalty
    weight 0.1 (the public toy script's "smaller lambda seems to help for toy tasks")."""

    preset_section = "wgan"

    fit_defaults = {"lr": 1e-4, "betas": (0.5, 0.9), "n_critic": 5, "gp_weight": 0.1, "clip": 0.0}

    def critic_loss(self, critic, real, fake, gp_weight):
        w_dist = _wasserstein(critic, real, fake)
        return -w_dist + gp_weight * gradient_penalty(critic, real, fake), {"wasserstein": w_dist.item()}


@register_family("hinge-gp")
class HingeGPGenerator(AdversarialGenerator):
    """The hinge loss with a gradient penalty, the latent reweighting paper's MNIST base (Sec.
    4.3.1; its settings are not given): Adam(5e-4, β = (0.5, 0.9)), five critic steps per
    generator step, penalty weight 1. With one critic step, or a penalty weight of 10, the
    generator ran away on the moons and on 8 x 8 digits (docs/zoo.md)."""

    preset_section = "hinge-gp"

    fit_defaults = {"lr": 5e-4, "betas": (0.5, 0.9), "n_critic": 5, "gp_weight": 1.0, "clip": 0.0}

    def critic_loss(self, critic, real, fake, gp_weight):
        dr, df = critic(real), critic(fake)
        loss = F.relu(1 - dr).mean() + F.relu(1 + df).mean()
        return loss + gp_weight * gradient_penalty(critic, real, fake), {"critic_loss": loss.item()}
