"""Variational autoencoder (Kingma and Welling; the introduction paper's Sec. 4): a decoder
``x = g(z)`` and an encoder ``e(z | x) = N(μ(x), diag σ²(x))`` trained on the evidence lower
bound, one Monte Carlo draw per row:

    ELBO(x) = E_{z ~ e(z|x)} log p(x | z) - KL(e(z | x) || N(0, I)).

Images get the paper's networks (Eq. (5) decoder, Eqs. (27)-(28) encoder), flat rows MLPs.
``likelihood="bernoulli"`` (Eq. (4), data in [0, 1]; the decoder's sigmoid is the mean) or
``"gaussian"`` (one learned noise scale for every value; the decoder's output is the mean).
As a generator, ``g(z)`` is the decoder's mean, the images the paper shows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrefine.generators.base import Generator, register_family
from genrefine.generators.monitor import EnergyMonitor
from genrefine.generators.nets import ConvDecoder, ConvEncoder, MLPEncoder, in_unit_interval, is_image
from genrefine.nn import mlp
from genrefine.training import train_loop
from genrefine.validation import check_array

LIKELIHOODS = ("bernoulli", "gaussian")


@register_family("vae")
class VAEGenerator(Generator):
    """VAE of the module docstring; :meth:`encode` gives the posterior means (the paper's Fig. 8).

    Example:
        >>> g = VAEGenerator(2, 784, data_shape=(1, 28, 28)).fit(x, epochs=50)
        >>> images = g.sample(64); z = g.encode(x[:1000])
    """

    preset_section = "vae"
    arch_keys = ("latent_dim", "hidden", "layers", "likelihood")

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: int = 128, layers: int = 3,
                 data_shape=None, likelihood: str = "bernoulli") -> None:
        super().__init__(latent_dim, data_dim, data_shape=data_shape)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
        self.hidden, self.layers, self.likelihood = int(hidden), int(layers), likelihood
        if is_image(self.data_shape):
            self.net = ConvDecoder(self.latent_dim, self.data_shape, sigmoid=False)  # logits or means
            self.encoder = ConvEncoder(self.data_shape, self.latent_dim)
        else:
            self.net = mlp(self.latent_dim, self.data_dim, self.hidden, self.layers, activation="relu")
            self.encoder = MLPEncoder(self.data_dim, self.latent_dim, self.hidden, self.layers)
        self.log_noise = nn.Parameter(torch.zeros(()))  # the Gaussian likelihood's log σ

    @classmethod
    def build(cls, data_shape, x, latent_dim: int = 2, hidden: int = 128, layers: int = 3,
              likelihood: str = "auto") -> "VAEGenerator":
        """``likelihood="auto"``: Bernoulli for data in [0, 1], else Gaussian."""
        if likelihood == "auto":
            likelihood = "bernoulli" if in_unit_interval(x) else "gaussian"
        return cls(latent_dim, int(math.prod(data_shape)), hidden, layers, data_shape, likelihood)

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "data_dim": self.data_dim, "hidden": self.hidden, "layers": self.layers,
                "data_shape": list(self.data_shape), "likelihood": self.likelihood}

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    @torch.no_grad()
    def encode(self, x) -> Tensor:
        """Posterior means ``μ(x)`` of rows ``x`` (n, data_dim)."""
        x = torch.as_tensor(check_array(x, name="rows to encode", dim=self.data_dim, min_rows=1), device=self.device)
        return self.encoder(x.float())[0]

    def negative_elbo(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-row ``(-E log p(x|z), KL)`` with one reparameterised draw ``z ~ e(z|x)``."""
        mean, log_var = self.encoder(x)
        z = mean + (0.5 * log_var).exp() * torch.randn_like(mean)
        out = self.net(z)
        if self.likelihood == "bernoulli":
            recon = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        else:
            sigma = self.log_noise.exp()
            recon = (0.5 * ((x - out) / sigma).pow(2) + self.log_noise + 0.5 * math.log(2 * math.pi)).sum(-1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1)
        return recon, kl

    def fit(self, data, epochs: int = 50, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-5,
            gamma: float = 1.0, progress: bool = True, checkpoint: str | None = None, monitor=None) -> "VAEGenerator":
        """Maximise the ELBO on ``data`` (n, data_dim) with Adam (the paper: lr 1e-3, weight decay
        1e-5, batches of 64, 50 epochs); ``monitor``: held-out rows whose energy distance to
        fresh samples is logged each epoch. Bernoulli data must lie in [0, 1]."""
        x = torch.as_tensor(check_array(data, name="training data", dim=self.data_dim, min_rows=2),
                            device=self.device).float()
        if self.likelihood == "bernoulli" and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ValueError(f"the Bernoulli likelihood needs data in [0, 1], got values in "
                             f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; use likelihood='gaussian'")
        for p in self.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)

        def step(xb: Tensor) -> dict:
            recon, kl = self.negative_elbo(xb)
            loss = (recon + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"neg_elbo": loss.item(), "kl": kl.mean().item()}

        watch = EnergyMonitor(self, monitor) if monitor is not None else None
        self.history_ = train_loop(step, (x,), {"vae": self}, {"adam": opt}, epochs, batch_size, gamma,
                                   desc="VAE base", progress=progress, checkpoint=checkpoint, on_epoch_end=watch)
        return self.freeze()
