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


#: bytes the largest activation of one chunk may take: the rows of a chunk flow through every
#: layer before the next chunk starts, so on a CPU they stay in the core's cache (measured, one
#: thread: a 3 x 128 MLP generator draws 1M samples in 0.78 s in chunks of 4096 and 2.1 s in
#: chunks of 50,000; docs/throughput.md). A GPU only needs chunks large enough to fill it.
CHUNK_BYTES = {"cpu": 2 << 20, "cuda": 256 << 20}
#: the fewest and most rows a chunk holds: the per-call overhead of each operation must stay
#: small against its work (families of many small operations set their own ``chunk_size``:
#: a 12-coupling real NVP runs 1.7x slower in chunks of 1024 than of 8192)
CHUNK_ROWS = {"cpu": (256, 65_536), "cuda": (1024, 1 << 20)}


def largest_activation(module: nn.Module, x) -> int:
    """The most values any leaf submodule of ``module`` outputs per row of ``x`` (at least the
    row width of ``module(x)`` itself), measured by one forward pass in eval mode without
    gradients (the module's mode is restored)."""
    import torch

    sizes = [0]

    def hook(_mod, _inputs, out) -> None:
        if torch.is_tensor(out):
            sizes.append(out.numel() // max(len(x), 1))

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    modes = [(m, m.training) for m in module.modules()]  # each submodule's own mode, restored as it was
    module.eval()  # no batch-norm statistics updated, no dropout drawn
    try:
        with torch.no_grad():
            out = module(x)
    finally:
        for m, mode in modes:
            m.training = mode
        for h in handles:
            h.remove()
    if torch.is_tensor(out):
        sizes.append(out.numel() // max(len(x), 1))
    return max(sizes)


def rows_per_chunk(values_per_row: int, device, element_bytes: int = 4) -> int:
    """Rows per chunk so that an activation of ``values_per_row`` values a row fits
    :data:`CHUNK_BYTES` of ``device``, within :data:`CHUNK_ROWS`."""
    kind = "cuda" if str(getattr(device, "type", device)).startswith("cuda") else "cpu"
    low, high = CHUNK_ROWS[kind]
    rows = CHUNK_BYTES[kind] // max(1, int(values_per_row) * int(element_bytes))
    return int(min(high, max(low, rows)))


def mlp_bounds(net: nn.Sequential, center, half):
    """Guaranteed bounds ``(lo, hi)`` of ``net(z)`` over the boxes ``center ± half``, for a
    network of ``nn.Linear``, ``nn.ReLU`` and ``nn.LeakyReLU`` layers (what :func:`mlp` builds).

    Each value is carried as an affine form of the box's unit coordinates ``e ∈ [-1, 1]^d`` plus
    an interval ``[-E, E]`` (a zonotope, Singh et al. 2018): a linear layer maps the form
    exactly; an activation whose input keeps its sign over the box is linear there, and any
    other is replaced by its chord through the input's bounds plus an interval holding the gap.
    On small boxes nearly every unit keeps its sign, so the bounds are close to the true range.
    Computed in float64; ``center`` is ``(n, d)``, ``half`` broadcasts to it; returns two
    ``(n, out)`` tensors with ``lo <= net(z) <= hi`` for every ``z`` in each box.
    """
    import torch

    c = torch.as_tensor(center, dtype=torch.float64)
    a0 = c
    # coef[n, k, j]: the gain of unit j on the box's k-th unit coordinate
    coef = torch.diag_embed(torch.as_tensor(half, dtype=torch.float64, device=c.device).expand_as(c)).clone()
    err = torch.zeros_like(c)
    for mod in net:
        if isinstance(mod, nn.Linear):
            w, b = mod.weight.detach().double(), mod.bias.detach().double()
            a0, coef, err = a0 @ w.t() + b, coef @ w.t(), err @ w.abs().t()
        elif isinstance(mod, (nn.ReLU, nn.LeakyReLU)):
            a0, coef, err = _relu_form(a0, coef, err, float(getattr(mod, "negative_slope", 0.0)))
        else:
            raise TypeError(f"mlp_bounds: cannot bound a {type(mod).__name__} layer "
                            "(only Linear, ReLU and LeakyReLU)")
    rad = coef.abs().sum(-2) + err
    return a0 - rad, a0 + rad


def _relu_form(a0, coef, err, slope: float):
    """The zonotope through ``f(v) = max(v, slope v)`` (``0 <= slope < 1``): ``f`` is linear (gain
    1 or ``slope``) where ``v`` keeps its sign over the box. Where it does not (``l < 0 < u``),
    ``f(v) = λ v + c/2 ± c/2`` on ``[l, u]`` with ``λ = (u - slope l) / (u - l)``, the chord's
    gain, and ``c = (1 - slope) u (-l) / (u - l)``: ``f(v) - λ v`` is ``c`` at both ends and 0
    at 0, so its range is ``[0, c]``."""
    import torch

    rad = coef.abs().sum(-2) + err
    lo, hi = a0 - rad, a0 + rad
    unstable = (lo < 0) & (hi > 0)
    span = (hi - lo).clamp(min=1e-300)
    gain = torch.where(unstable, (hi - slope * lo) / span, torch.where(lo >= 0, 1.0, slope))
    half = torch.where(unstable, (1 - slope) / 2 * hi * (-lo) / span, 0.0)
    return gain * a0 + half, gain[..., None, :] * coef, gain * err + half
