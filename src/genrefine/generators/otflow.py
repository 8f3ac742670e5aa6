"""OT-Flow (Onken et al. 2021; the introduction paper's Sec. 3.2, Eq. (19)): a continuous
normalizing flow whose velocity is the gradient of a potential, trained with transport costs.

Data (standardised, ``s(0) = (x - μ)/σ``) flow to the latent along ``ds/dt = v(s, t) =
-∇_s Φ(s, t)``, ``t ∈ [0, 1]``, with

    Φ(s, t) = wᵀ N(y) + ½ yᵀ AᵀA y + cᵀ y + b,    y = (s, t),
    N(y) = u₀ + σ(K₁ u₀ + b₁),   u₀ = σ(K₀ y + b₀),   σ(a) = log cosh a

(a two-layer residual network plus a low-rank quadratic form; 1,229 weights in 2-D at width
32, as in the paper). Along each characteristic, fourth-order Runge-Kutta with ``steps`` equal
steps integrates, besides ``s``,

- ``ℓ = ∫ tr ∇_s v dt`` (so ``log p(x) = log N(s(1); 0, I) + ℓ - Σ log σ``),
- the transport cost ``L = ∫ ½|v|² dt``,
- the HJB residual ``R = ∫ |∂_t Φ - ½|∇_s Φ|²| dt``.

Training minimises ``E[-log p(x)] + transport · E[L] + hjb · E[R]`` (the paper's toy weights
1 : 100 : 5 for L : C : R are transport 0.01, hjb 0.05). The generator ``g`` integrates the same
ODE backward, from ``t = 1`` to ``0``; ``inverse`` forward. The gradient and the trace are exact
formulas (:class:`Potential`), O(width² · d) per row and stage.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrefine.generators.base import Generator, register_family
from genrefine.generators.monitor import EnergyMonitor
from genrefine.training import train_loop, whole_number


def log_cosh(a: Tensor) -> Tensor:
    """``log cosh a``, stable for large ``|a|``."""
    return a.abs() + F.softplus(-2 * a.abs()) - math.log(2.0)


class Potential(nn.Module):
    """``Φ(s, t)`` of the module docstring; :meth:`gradient` gives ``∇_y Φ`` and the trace of
    ``∇²_s Φ`` in closed form (as OT-Flow does), so training needs first-order autograd only.

    With ``a₀ = K₀y + b₀``, ``a₁ = K₁σ(a₀) + b₁``, ``σ' = tanh``, ``σ'' = 1 - tanh²``:

        ∇_y Φ = K₀ᵀ(σ'(a₀) ⊙ ζ) + AᵀAy + c,         ζ = w + K₁ᵀ(σ'(a₁) ⊙ w),
        tr ∇²_s Φ = Σ_j σ''(a₀)_j ζ_j |K₀[j, :d]|² + Σ_k σ''(a₁)_k w_k |(K₁ diag σ'(a₀) K₀[:, :d])[k]|²
                    + tr (AᵀA)[:d, :d].
    """

    def __init__(self, dim: int, width: int = 32, rank: int = 10) -> None:
        super().__init__()
        d1 = dim + 1
        self.dim = int(dim)
        self.k0, self.k1 = nn.Linear(d1, width), nn.Linear(width, width)
        self.w = nn.Linear(width, 1, bias=False)
        self.c = nn.Linear(d1, 1)
        self.A = nn.Parameter(torch.randn(min(rank, d1), d1) * 0.1)
        for p in (self.w.weight, self.c.weight, self.c.bias):  # Φ ≈ ½ yᵀAᵀAy: a near-identity start
            nn.init.zeros_(p)

    def forward(self, y: Tensor) -> Tensor:
        u0 = log_cosh(self.k0(y))
        u1 = u0 + log_cosh(self.k1(u0))
        return (self.w(u1) + self.c(y)).squeeze(-1) + 0.5 * (y @ self.A.T).pow(2).sum(-1)

    def gradient(self, y: Tensor, trace: bool) -> tuple[Tensor, Tensor | None]:
        """``(∇_y Φ, tr ∇²_s Φ or None)`` at rows ``y = (s, t)``."""
        k0, k1, w = self.k0.weight, self.k1.weight, self.w.weight[0]
        a0 = self.k0(y)
        t0 = torch.tanh(a0)
        t1 = torch.tanh(self.k1(log_cosh(a0)))
        zeta = w + (t1 * w) @ k1
        aa = self.A.T @ self.A
        grad = (t0 * zeta) @ k0 + y @ aa + self.c.weight[0]
        if not trace:
            return grad, None
        k0s = k0[:, :self.dim]
        first = ((1 - t0.pow(2)) * zeta) @ k0s.pow(2).sum(1)
        inner = torch.einsum("kj,nj,ji->nki", k1, t0, k0s)  # K₁ diag σ'(a₀) K₀[:, :d], per row
        second = ((1 - t1.pow(2)) * w * inner.pow(2).sum(-1)).sum(-1)
        return grad, first + second + torch.diagonal(aa)[:self.dim].sum()


@register_family("ot-flow")
class OTFlowGenerator(Generator):
    """OT-Flow (module docstring): invertible, with an exact density.

    Example:
        >>> g = OTFlowGenerator(2).fit(x, epochs=20)
        >>> x_new = g.sample(10_000); z = g.inverse(x_new); logp = g.log_prob(x_new)
    """

    invertible = True
    chunk_size = 8192
    preset_section = "ot-flow"
    arch_keys = ("width", "rank", "steps")

    def __init__(self, data_dim: int, width: int = 32, rank: int = 10, steps: int = 8, data_shape=None) -> None:
        for name, v in (("data_dim", data_dim), ("width", width), ("rank", rank), ("steps", steps)):
            whole_number(v, name, 1)
        super().__init__(latent_dim=data_dim, data_dim=data_dim, data_shape=data_shape)
        self.width, self.rank, self.steps = int(width), int(rank), int(steps)
        self.potential = Potential(self.data_dim, self.width, self.rank)
        self.register_buffer("data_loc", torch.zeros(data_dim))
        self.register_buffer("data_scale", torch.ones(data_dim))

    @classmethod
    def build(cls, data_shape, x, width: int = 32, rank: int = 10, steps: int = 8) -> "OTFlowGenerator":
        return cls(int(math.prod(data_shape)), width, rank, steps, data_shape=data_shape)

    def config(self) -> dict:
        return {"data_dim": self.data_dim, "width": self.width, "rank": self.rank, "steps": self.steps,
                "data_shape": list(self.data_shape)}

    # --- the ODE ---------------------------------------------------------------------------
    def _rates(self, s: Tensor, t: float, full: bool) -> tuple[Tensor, ...]:
        """``v`` and, with ``full``, the rates of ``ℓ``, ``L`` and ``R`` at ``(s, t)``."""
        y = torch.cat([s, s.new_full((len(s), 1), float(t))], dim=1)
        grad, lap = self.potential.gradient(y, full)
        v = -grad[:, :-1]
        if not full:
            return (v,)
        hjb = (grad[:, -1] - 0.5 * v.pow(2).sum(-1)).abs()
        return v, -lap, 0.5 * v.pow(2).sum(-1), hjb

    def _integrate(self, s: Tensor, t0: float, t1: float, full: bool) -> tuple[Tensor, ...]:
        """RK4 from ``t0`` to ``t1`` in :attr:`steps` steps; returns ``s(t1)`` and, with ``full``,
        ``(ℓ, L, R)`` accumulated with the sign of ``t1 - t0``."""
        h = (t1 - t0) / self.steps
        acc = [s.new_zeros(len(s)) for _ in range(3)] if full else []
        for k in range(self.steps):
            t = t0 + k * h
            k1 = self._rates(s, t, full)
            k2 = self._rates(s + 0.5 * h * k1[0], t + 0.5 * h, full)
            k3 = self._rates(s + 0.5 * h * k2[0], t + 0.5 * h, full)
            k4 = self._rates(s + h * k3[0], t + h, full)
            s = s + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            acc = [a + h / 6 * (r1 + 2 * r2 + 2 * r3 + r4) for a, r1, r2, r3, r4 in
                   zip(acc, k1[1:], k2[1:], k3[1:], k4[1:])]
        return (s, *acc)

    def forward(self, z: Tensor) -> Tensor:
        return self._integrate(z, 1.0, 0.0, False)[0] * self.data_scale + self.data_loc

    def inverse(self, x: Tensor) -> Tensor:
        """``z = g⁻¹(x)``: the data's characteristics from ``t = 0`` to ``1``."""
        return self._integrate((x - self.data_loc) / self.data_scale, 0.0, 1.0, False)[0]

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density at ``x``, shape ``(n,)`` (exact up to the RK4 error)."""
        z, ell, _, _ = self._integrate((x - self.data_loc) / self.data_scale, 0.0, 1.0, True)
        return _log_normal(z) + ell - self.data_scale.log().sum()

    # --- training --------------------------------------------------------------------------
    def fit(self, data, epochs: int = 20, batch_size: int = 256, lr: float = 1e-2, transport: float = 0.01,
            hjb: float = 0.05, weight_decay: float = 0.0, gamma: float = 0.95, progress: bool = True,
            checkpoint: str | None = None, monitor=None) -> "OTFlowGenerator":
        """Minimise the loss of the module docstring on ``data`` (n, d) with Adam; ``monitor``:
        held-out rows whose energy distance to fresh samples is logged each epoch."""
        x = self.training_rows(data, standardise=True)
        opt = torch.optim.Adam(self.potential.parameters(), lr=lr, weight_decay=weight_decay)

        def step(xb: Tensor) -> dict:
            z, ell, cost, res = self._integrate((xb - self.data_loc) / self.data_scale, 0.0, 1.0, True)
            nll = -(_log_normal(z) + ell).mean()
            loss = nll + transport * cost.mean() + hjb * res.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"nll": nll.item(), "transport": cost.mean().item(), "hjb": res.mean().item()}

        watch = EnergyMonitor(self, monitor) if monitor is not None else None
        self.history_ = train_loop(step, (x,), {"flow": self}, {"adam": opt}, epochs, batch_size, gamma,
                                   desc="OT-Flow base", progress=progress, checkpoint=checkpoint, on_epoch_end=watch)
        return self.freeze()


def _log_normal(z: Tensor) -> Tensor:
    return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
