"""The networks of the introduction paper's MNIST families, for images of any size ``(C, H, W)``
with H, W >= 4, and their MLP counterparts for flat rows.

- :class:`ConvDecoder`, Eq. (5): ``z`` -> affine map to 64 channels on an ``H/4 x W/4`` grid,
  batch norm, ReLU -> 4 x 4 transposed convolution of stride 2 to 32 channels, batch norm,
  ReLU -> 4 x 4 transposed convolution of stride 2 to C channels plus one scalar bias, then the
  sigmoid (data in [0, 1]) or nothing (any other range).
- :func:`conv_critic`, Eq. (33) without its sigmoid: two 4 x 4 convolutions of stride 2 (32 and
  64 channels) with leaky ReLU (slope 0.2), batch norm after each when asked, then one affine
  map to a scalar. The gradient-penalty losses take it without batch norm: the penalty is a
  per-sample gradient, which batch statistics couple across the batch.
- :class:`ConvEncoder`, Eqs. (27)-(28): the critic's two convolutions with ReLU, then affine
  maps to the posterior's mean and log-variance.

H and W need not be multiples of 4: the grid is ``ceil(H/4) x ceil(W/4)``, the decoder's output
is cropped to ``H x W`` and the critic's and encoder's inputs are zero-padded to the grid's size.
Every module takes and returns flat rows ``(n, C*H*W)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrefine.nn import mlp

#: channels of Eq. (5) (decoder, widest first) and of Eqs. (27) and (33) (encoder and critic)
DECODER_CHANNELS = (64, 32)
ENCODER_CHANNELS = (32, 64)


def is_image(data_shape) -> bool:
    """Whether rows of ``data_shape`` are images ``(C, H, W)`` (else flat rows ``(D,)``)."""
    return len(tuple(data_shape)) == 3


def in_unit_interval(x) -> bool:
    """Whether every value of ``x`` lies in [0, 1] (pixel intensities: a sigmoid output fits)."""
    t = torch.as_tensor(x)
    return bool(len(t)) and float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def _grid(data_shape) -> tuple[int, int]:
    _, h, w = data_shape
    if h < 4 or w < 4:
        raise ValueError(f"images must be at least 4 x 4 pixels for the convolutional networks, got {h} x {w}")
    return math.ceil(h / 4), math.ceil(w / 4)


def _pad_to_grid(x: Tensor, data_shape) -> Tensor:
    """Flat rows -> ``(n, C, 4*gh, 4*gw)`` images, zero-padded at the bottom and right."""
    c, h, w = data_shape
    gh, gw = _grid(data_shape)
    img = x.reshape(len(x), c, h, w)
    return F.pad(img, (0, 4 * gw - w, 0, 4 * gh - h)) if (4 * gh, 4 * gw) != (h, w) else img


class ConvDecoder(nn.Module):
    """Eq. (5) for images of ``data_shape``; :meth:`logits` is the output before the sigmoid."""

    def __init__(self, latent_dim: int, data_shape, sigmoid: bool = True) -> None:
        super().__init__()
        self.data_shape = tuple(int(v) for v in data_shape)
        self.sigmoid = bool(sigmoid)
        c = self.data_shape[0]
        self.grid = _grid(self.data_shape)
        c1, c2 = DECODER_CHANNELS
        self.k1 = nn.Linear(latent_dim, c1 * self.grid[0] * self.grid[1])
        self.n1 = nn.BatchNorm2d(c1)
        self.k2 = nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1)
        self.n2 = nn.BatchNorm2d(c2)
        self.k3 = nn.ConvTranspose2d(c2, c, 4, stride=2, padding=1, bias=False)
        self.beta = nn.Parameter(torch.zeros(()))  # Eq. (5)'s one scalar output bias

    def logits(self, z: Tensor) -> Tensor:
        c, h, w = self.data_shape
        u = self.k1(z).reshape(len(z), DECODER_CHANNELS[0], *self.grid)
        u = F.relu(self.n2(self.k2(F.relu(self.n1(u)))))
        out = self.k3(u)[:, :, :h, :w] + self.beta
        return out.reshape(len(z), c * h * w)

    def forward(self, z: Tensor) -> Tensor:
        out = self.logits(z)
        return torch.sigmoid(out) if self.sigmoid else out


class ConvEncoder(nn.Module):
    """Eqs. (27)-(28): images -> ``(mean, log_variance)`` of ``e(z | x)``, each ``(n, latent_dim)``."""

    def __init__(self, data_shape, latent_dim: int) -> None:
        super().__init__()
        self.data_shape = tuple(int(v) for v in data_shape)
        c1, c2 = ENCODER_CHANNELS
        gh, gw = _grid(self.data_shape)
        self.features = nn.Sequential(nn.Conv2d(self.data_shape[0], c1, 4, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(c2 * gh * gw, 2 * int(latent_dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = self.head(self.features(_pad_to_grid(x, self.data_shape))).chunk(2, dim=-1)
        return mean, log_var


class MLPEncoder(nn.Module):
    """Flat rows -> ``(mean, log_variance)`` through a ReLU MLP."""

    def __init__(self, data_dim: int, latent_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(int(data_dim), 2 * int(latent_dim), int(hidden), int(layers), activation="relu")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = self.net(x).chunk(2, dim=-1)
        return mean, log_var


class _PadToGrid(nn.Module):
    def __init__(self, data_shape) -> None:
        super().__init__()
        self.data_shape = tuple(int(v) for v in data_shape)

    def forward(self, x: Tensor) -> Tensor:
        return _pad_to_grid(x, self.data_shape)


def conv_critic(data_shape, batch_norm: bool = False) -> nn.Sequential:
    """Eq. (33) without the sigmoid: flat image rows -> one scalar each, shape ``(n, 1)``."""
    c1, c2 = ENCODER_CHANNELS
    gh, gw = _grid(tuple(data_shape))
    norm = (lambda ch: nn.BatchNorm2d(ch)) if batch_norm else (lambda ch: nn.Identity())
    return nn.Sequential(_PadToGrid(data_shape),
                         nn.Conv2d(int(data_shape[0]), c1, 4, stride=2, padding=1), norm(c1), nn.LeakyReLU(0.2),
                         nn.Conv2d(c1, c2, 4, stride=2, padding=1), norm(c2), nn.LeakyReLU(0.2),
                         nn.Flatten(), nn.Linear(c2 * gh * gw, 1))
