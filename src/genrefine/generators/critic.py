"""The scalar critic ``D(x)`` every adversarial family and the latent reweighting methods share,
and the gradient penalty of WGAN-GP (Gulrajani et al. 2017).

Flat rows get a ReLU MLP; image rows ``(C, H, W)`` the discriminator of the introduction paper's
Eq. (33) without its sigmoid (:func:`~genrefine.generators.nets.conv_critic`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrefine.generators.nets import conv_critic, is_image
from genrefine.nn import mlp


class Critic(nn.Module):
    """A scalar critic / discriminator ``D(x)`` on flat rows, output shape ``(n,)``.

    ``data_shape`` of an image selects the convolutional critic (``hidden`` and ``layers`` are
    then unused); ``batch_norm`` adds Eq. (33)'s batch norm to it (not for gradient penalties).
    """

    def __init__(self, data_dim: int, hidden: int = 512, layers: int = 3, data_shape=None,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.data_dim, self.hidden, self.layers = int(data_dim), int(hidden), int(layers)
        self.data_shape = tuple(int(v) for v in data_shape) if data_shape is not None else (self.data_dim,)
        self.batch_norm = bool(batch_norm)
        if is_image(self.data_shape):
            self.net = conv_critic(self.data_shape, self.batch_norm)
        else:
            self.net = mlp(self.data_dim, 1, self.hidden, self.layers, activation="relu")

    def config(self) -> dict:
        cfg = {"data_dim": self.data_dim, "hidden": self.hidden, "layers": self.layers}
        if is_image(self.data_shape):
            cfg.update(data_shape=list(self.data_shape), batch_norm=self.batch_norm)
        return cfg

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP penalty ``E (|∇D(x̂)| - 1)²`` at random interpolates ``x̂`` of real and fake."""
    n = min(len(real), len(fake))
    eps = torch.rand(n, 1, device=real.device)
    xh = (eps * real[:n] + (1 - eps) * fake[:n]).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
    return (grad.norm(dim=-1) - 1).pow(2).mean()
