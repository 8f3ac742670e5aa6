"""A user's own image generator: the introduction paper's Eq. (5) (Ruthotto & Haber,
Example 2), a 2-d latent mapped to a 28 x 28 image, trained briefly as a VAE decoder.

    z (2) -> linear 64*7*7, batch norm, ReLU -> transposed conv 4x4/2 to 32 x 14 x 14,
    batch norm, ReLU -> transposed conv 4x4/2 to 1 x 28 x 28 -> sigmoid

It stands for "a model the user brings": genrefine sees only the module (``as_generator``).
The encoder is Sec. 4.2's: two 4x4 stride-2 convolutions (32, 64 channels), then linear maps
to the mean and log-variance of the Gaussian posterior; the likelihood is Bernoulli.

    genrefine refine --data ../shared/data/mnist/t10k-images-idx3-ubyte.gz \\
        --base python:examples/mnist_eq5.py:trained_generator --latent-dim 2 ...
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F


class Eq5Generator(nn.Module):
    """g(z): (n, 2) -> (n, 1, 28, 28) in [0, 1], the generator of Eq. (5)."""

    latent_dim = 2

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.fc = nn.Linear(latent_dim, 64 * 7 * 7)
        self.bn1 = nn.BatchNorm2d(64)
        self.up1 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.up2 = nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.fc(z).view(-1, 64, 7, 7)))
        h = F.relu(self.bn2(self.up1(h)))
        return torch.sigmoid(self.up2(h))


class Eq5Encoder(nn.Module):
    """e(z | x): two 4x4 stride-2 convolutions, then the posterior's mean and log-variance."""

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 4, stride=2, padding=1)
        self.c2 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.head = nn.Linear(64 * 7 * 7, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.c2(F.relu(self.c1(x.view(-1, 1, 28, 28)))))
        mu, logvar = self.head(h.flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-8, 8)


def train_vae(images: torch.Tensor, epochs: int = 5, batch_size: int = 128, lr: float = 2e-3,
              seed: int = 0) -> Eq5Generator:
    """Train the Eq. (5) decoder as a VAE (Bernoulli likelihood) on ``images`` (n, 1, 28, 28)
    in [0, 1]; returns the decoder in eval mode."""
    torch.manual_seed(seed)
    dec, enc = Eq5Generator(), Eq5Encoder()
    opt = torch.optim.Adam([*dec.parameters(), *enc.parameters()], lr=lr)
    x_all = images.reshape(-1, 1, 28, 28).float()
    for _ in range(int(epochs)):
        for idx in torch.randperm(len(x_all)).split(batch_size):
            x = x_all[idx]
            mu, logvar = enc(x)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            rec = F.binary_cross_entropy(dec(z), x, reduction="sum") / len(x)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
            opt.zero_grad(set_to_none=True)
            (rec + kl).backward()
            opt.step()
    return dec.eval()


def trained_generator() -> Eq5Generator:
    """Factory for ``--base python:examples/mnist_eq5.py:trained_generator``: the decoder
    trained for a few epochs on the MNIST file named by $GENREFINE_MNIST (default: the
    project's ../shared/data/mnist test images)."""
    from genrefine.data import load_array

    path = os.environ.get("GENREFINE_MNIST", os.path.join("..", "shared", "data", "mnist",
                                                          "t10k-images-idx3-ubyte.gz"))
    images = torch.as_tensor(load_array(path)).reshape(-1, 1, 28, 28)
    return train_vae(images, epochs=int(os.environ.get("GENREFINE_MNIST_EPOCHS", "3")))
