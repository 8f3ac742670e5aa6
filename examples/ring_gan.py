"""A user's own 2-D GAN: eight Gaussians on a ring, a small MLP generator trained briefly
with the non-saturating GAN loss. Like most small GANs with a 2-d latent it bridges the
modes and can drop one; genrefine refines it without retraining.

    genrefine refine --data ring8.npy --base python:examples/ring_gan.py:trained_generator --latent-dim 2 ...
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def ring_data(n: int, seed: int = 0, modes: int = 8, radius: float = 2.0, std: float = 0.05) -> np.ndarray:
    """``n`` points from ``modes`` Gaussians of width ``std`` evenly spaced on a circle."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, modes, n)
    angle = 2 * math.pi * k / modes
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype(np.float32)


class RingGenerator(nn.Module):
    """g(z): (n, 2) -> (n, 2), three hidden layers of 128 ReLU units."""

    latent_dim = 2

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def train_gan(data: np.ndarray, steps: int = 3000, batch_size: int = 256, lr: float = 1e-3,
              seed: int = 0) -> RingGenerator:
    """Non-saturating GAN training of a :class:`RingGenerator` on ``data``."""
    torch.manual_seed(seed)
    g = RingGenerator()
    d = nn.Sequential(nn.Linear(2, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.9))
    x = torch.as_tensor(data)
    bce = nn.functional.binary_cross_entropy_with_logits
    for _ in range(int(steps)):
        real = x[torch.randint(0, len(x), (batch_size,))]
        fake = g(torch.randn(batch_size, 2))
        loss_d = bce(d(real), torch.ones(batch_size, 1)) + bce(d(fake.detach()), torch.zeros(batch_size, 1))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = bce(d(g(torch.randn(batch_size, 2))), torch.ones(batch_size, 1))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return g.eval()


def trained_generator() -> RingGenerator:
    """Factory for ``--base python:examples/ring_gan.py:trained_generator``."""
    return train_gan(ring_data(50_000, seed=0))
