"""The convolutional network behind the image classifier: the discriminator of Eq. (33) of
the introduction paper (Ruthotto & Haber), without its batch normalisation and sigmoid.

    v1 = leaky_relu_0.2(C1 x + c1)          C1: 4x4 stencils, stride 2, channels[0] channels
    v2 = leaky_relu_0.2(C2 v1 + c2)         C2: 4x4 stencils, stride 2, channels[1] channels
    logit(x) = d^T v2 + δ

Each stride-2 layer (padding 1) halves the image: 28x28 -> 14x14 -> 7x7, so with the paper's
(32, 64) channels ``d`` has 64·7·7 entries, as in Eq. (33). Batch normalisation is left out:
a density-ratio classifier's logit must be a function of ``x`` alone (in training mode it
would depend on the rest of the batch), and its held-out loss must be that of the function
trained. The network takes *flat* rows ``(n, C·H·W)`` and reshapes them to ``data_shape``.
"""

from __future__ import annotations

from torch import Tensor, nn

KERNEL, STRIDE, PADDING, SLOPE = 4, 2, 1, 0.2


class ConvNet(nn.Module):
    """Flat rows ``(n, C·H·W)`` -> ``(n, out_dim)`` through stride-2 convolutions and a linear map.

    Example:
        >>> net = ConvNet((1, 28, 28), channels=(32, 64))   # Eq. (33): 28 -> 14 -> 7, then linear
        >>> net(torch.rand(5, 784)).shape
        torch.Size([5, 1])
    """

    def __init__(self, data_shape: tuple[int, int, int], channels: tuple[int, ...] = (32, 64), out_dim: int = 1) -> None:
        super().__init__()
        c, h, w = (int(s) for s in data_shape)
        channels = tuple(int(k) for k in channels)
        if not channels or any(k < 1 for k in channels):
            raise ValueError(f"channels: expected one or more positive integers, got {channels}")
        mods: list[nn.Module] = []
        for k in channels:
            if h < 2 or w < 2:
                raise ValueError(f"data_shape {tuple(data_shape)}: images are too small for {len(channels)} "
                                 f"stride-2 convolutions (each halves H and W); use fewer channels entries")
            mods += [nn.Conv2d(c, k, KERNEL, STRIDE, PADDING), nn.LeakyReLU(SLOPE)]
            c, h, w = k, (h + 2 * PADDING - KERNEL) // STRIDE + 1, (w + 2 * PADDING - KERNEL) // STRIDE + 1
        self.data_shape = tuple(int(s) for s in data_shape)
        self.features = nn.Sequential(*mods)
        self.head = nn.Linear(c * h * w, int(out_dim))

    def forward(self, x: Tensor) -> Tensor:
        v = self.features(x.reshape(len(x), *self.data_shape))
        return self.head(v.flatten(1))
