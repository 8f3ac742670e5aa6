"""The one MLP builder every network in genrefine uses (classifiers, critics, refiners,
students, latent importance networks)."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, out_dim: int, hidden: int, layers: int, activation: str = "leaky_relu",
        slope: float = 0.01) -> nn.Sequential:
    """``layers`` hidden layers of ``hidden`` units, linear output.

    ``activation`` is ``"leaky_relu"`` (negative slope ``slope``) or ``"relu"``.

    Example:
        >>> net = mlp(2, 1, hidden=64, layers=3)        # 2 -> 64 -> 64 -> 64 -> 1
    """
    if activation not in ("leaky_relu", "relu"):
        raise ValueError(f"activation must be 'leaky_relu' or 'relu', got {activation!r}")
    for name, v, low in (("in_dim", in_dim, 1), ("out_dim", out_dim, 1), ("hidden", hidden, 1), ("layers", layers, 0)):
        if int(v) != v or int(v) < low:
            raise ValueError(f"mlp: {name} must be an integer >= {low}, got {v}")
    mods: list[nn.Module] = []
    d = int(in_dim)
    for _ in range(int(layers)):
        mods += [nn.Linear(d, int(hidden)), nn.LeakyReLU(slope) if activation == "leaky_relu" else nn.ReLU()]
        d = int(hidden)
    mods.append(nn.Linear(d, int(out_dim)))
    return nn.Sequential(*mods)
