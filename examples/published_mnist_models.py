"""Two MNIST generators that genrefine did not train: the published weights of
csinva/gan-vae-pretrained-pytorch (MIT licence), handed over as a user would hand over theirs.

- ``published_gan``: the repository's non-convolutional GAN (``mnist_gan_mlp``, 300 epochs on the
  60,000 MNIST training images): z (64) -> 256 -> 256 -> 784, ReLU, tanh output in [-1, 1],
  mapped here to [0, 1] as its own code does (``(x + 1) / 2``).
- ``published_vae``: the decoder of its VAE (``mnist_vae``, PyTorch's example VAE, 25 epochs):
  z (20) -> 400 -> 784, ReLU, sigmoid output.

The weights are read from safetensors files in $GENREFINE_PUBLISHED (default
``runs/published``); ``python benchmarks/published_mnist.py --weights DIR`` writes them there
from the published files. The modules below only mirror the published layouts so that the
state dicts fill them; genrefine sees nothing but the module.

    genrefine refine --data ../shared/data/mnist/t10k-images-idx3-ubyte.gz \\
        --base python:examples/published_mnist_models.py:published_gan --latent-dim 64 ...
"""

from __future__ import annotations

import os

import torch
from torch import nn

#: file names of the converted weights in $GENREFINE_PUBLISHED
GAN_FILE, VAE_FILE = "mnist_gan_mlp_G.safetensors", "mnist_vae.safetensors"


class PublishedGAN(nn.Module):
    """The published MLP generator, its output mapped from [-1, 1] to [0, 1]."""

    latent_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 784), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.net(z).view(-1, 1, 28, 28) + 1) / 2


class PublishedVAEDecoder(nn.Module):
    """The published VAE's decoder (its ``fc3`` and ``fc4``)."""

    latent_dim = 20

    def __init__(self) -> None:
        super().__init__()
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z)))).view(-1, 1, 28, 28)


def _weights(name: str) -> dict:
    from safetensors.torch import load_file

    path = os.path.join(os.environ.get("GENREFINE_PUBLISHED", os.path.join("runs", "published")), name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: run `python benchmarks/published_mnist.py --weights DIR` first")
    return load_file(path)


def published_gan() -> PublishedGAN:
    """Factory for ``--base python:examples/published_mnist_models.py:published_gan``."""
    gan = PublishedGAN()
    gan.net.load_state_dict(_weights(GAN_FILE))
    return gan.eval()


def published_vae() -> PublishedVAEDecoder:
    """Factory for ``--base python:examples/published_mnist_models.py:published_vae``: the decoder's
    weights out of the whole VAE's state dict (the encoder's are left unused)."""
    dec = PublishedVAEDecoder()
    state = _weights(VAE_FILE)
    dec.load_state_dict({k: v for k, v in state.items() if k.startswith(("fc3.", "fc4."))})
    return dec.eval()
