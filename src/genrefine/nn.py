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
