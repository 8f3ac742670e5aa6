"""What a user checks after sampling: weight summaries (Kish ESS), multi-chain ESS and split
R-hat, and the thresholds at which a sampler says at once that its weights are degenerate.

A sampler that would run long or return few effective points on degenerate weights warns
within seconds with the numbers (:func:`warn_low_ess`, :func:`warn_non_finite`, the rejection
loop's acceptance check)
instead of grinding silently.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
from torch import Tensor

#: acceptance below which a rejection step warns: each sample then costs over a thousand weight
#: evaluations, so a run that is fast unweighted takes minutes, and the weights are likely
#: degenerate (one region carries all the mass).
LOW_ACCEPTANCE = 1e-3
#: ESS fraction below which a weighted pool is reported degenerate: fewer than one point in a
#: hundred carries the mass, so a resample repeats a handful of points.
LOW_ESS_FRACTION = 0.01


def effective_sample_size(w: Tensor) -> float:
    """Kish's effective sample size fraction ``(Σw)² / (n Σw²)`` in [0, 1]."""
    w = w.double()
    s2 = (w * w).sum()
    return float((w.sum() ** 2 / (len(w) * s2)).item()) if s2 > 0 else 0.0


def weight_diagnostics(w: Tensor) -> dict:
    """Summary of a weight vector: ESS fraction, max/mean, non-finite and zero counts."""
    w = torch.as_tensor(w).detach().double().flatten()
    finite = torch.isfinite(w)
    wf = w[finite]
    mean = float(wf.mean()) if len(wf) else math.nan
    return {
        "n": int(len(w)),
        "non_finite": int((~finite).sum()),
        "zeros": int((wf == 0).sum()),
        "mean": mean,
        "max": float(wf.max()) if len(wf) else math.nan,
        "max_over_mean": float(wf.max() / mean) if len(wf) and mean > 0 else math.nan,
        "ess_fraction": effective_sample_size(wf) if len(wf) else 0.0,
    }


def warn_non_finite(count: int, total: int, who: str, stacklevel: int = 3) -> None:
    """Warn (one line) when ``count`` of ``total`` weights were NaN or +inf, which a sampler
    counts as w = 0; ``who`` names the sampler."""
    if count:
        warnings.warn(f"{who}: {count} of {total} weights were NaN or +inf and count as w = 0 "
                      "(a numeric fault in the weight model?)", stacklevel=stacklevel)


def warn_low_ess(summary: dict, who: str, stacklevel: int = 3) -> None:
    """Warn (one line, with the numbers) when a weighted pool is degenerate: its ESS fraction
    (``summary`` is :func:`weight_diagnostics` of the pool) is below :data:`LOW_ESS_FRACTION`."""
    ess, n = summary["ess_fraction"], summary["n"]
    if ess < LOW_ESS_FRACTION:
        warnings.warn(f"{who}: degenerate weights: ESS fraction {ess:.2g} of {n} prior points ({ess * n:.3g} "
                      f"effective), largest weight {summary['max_over_mean']:.3g} x the mean; check the weight model "
                      "(a held-out AUC near 1 means the samples are separable), cap or temper the weights, "
                      "or use another method", stacklevel=stacklevel)


# --- multi-chain diagnostics -------------------------------------------------------------------


def _autocovariance(x: Tensor) -> Tensor:
    """Biased autocovariance along dim 0 of ``x`` (shape ``(n, ...)``) via FFT."""
    n = x.shape[0]
    xc = x - x.mean(0, keepdim=True)
    size = 2 ** math.ceil(math.log2(2 * n))
    f = torch.fft.rfft(xc, n=size, dim=0)
    return torch.fft.irfft(f * f.conj(), n=size, dim=0)[:n] / n


def chain_ess(draws: Tensor) -> Tensor:
    """Multi-chain effective sample size per dimension.

    Stan's estimator (Vehtari et al. 2021, Eq. 10): the combined autocorrelation
    ``ρ_t = 1 - (W - mean_m acov_m(t)) / var⁺`` with ``W`` the mean within-chain variance and
    ``var⁺ = (N-1)/N W + B/N``; Geyer's initial positive sequence truncates the sums
    ``P_k = ρ_{2k} + ρ_{2k+1}`` at the first negative one, made monotone, and
    ``ESS = N M / (-1 + 2 Σ_k P_k)``, capped at ``N M log10(N M)``.

    Args:
        draws: shape ``(n_draws, n_chains, d)``.

    Returns:
        ESS per dimension, shape ``(d,)`` (NaN where ``n_draws < 4`` or a dimension is constant).
    """
    return _by_dimension_chunks(_chain_ess, draws)


def _by_dimension_chunks(fn: Callable[[Tensor], Tensor], draws: Tensor, max_elements: int = 2**24) -> Tensor:
    """``fn`` on slices of the last dimension, so the float64 and FFT copies stay bounded."""
    per_dim = 4 * draws.shape[0] * draws.shape[1]  # padded FFT length is <= 4 n_draws
    chunk = max(1, max_elements // max(per_dim, 1))
    return torch.cat([fn(part) for part in draws.split(chunk, dim=2)])


def _chain_ess(draws: Tensor) -> Tensor:
    x = draws.double()
    n, m = x.shape[0], x.shape[1]
    if n < 4:
        return torch.full(x.shape[2:], math.nan, dtype=torch.float64, device=x.device)
    acov = _autocovariance(x)  # (n, m, d)
    chain_var = acov[0] * n / (n - 1)
    w = chain_var.mean(0)
    b_over_n = x.mean(0).var(0) if m > 1 else torch.zeros_like(w)
    var_plus = (n - 1) / n * w + b_over_n
    rho = 1 - (w - acov.mean(1)) / var_plus  # (n, d)
    n_pairs = n // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2, -1).sum(1)  # (n_pairs, d)
    positive = torch.cumprod((pairs > 0).double(), 0)
    monotone = torch.cummin(pairs.clamp_min(0), 0).values * positive
    tau = (-1 + 2 * monotone.sum(0)).clamp_min(1 / math.log10(n * m))
    ess = n * m / tau
    return torch.where(var_plus > 0, ess, torch.full_like(ess, math.nan))


def split_rhat(draws: Tensor) -> Tensor:
    """Split-R̂ per dimension (Gelman et al., BDA3 Eq. 11.4) of ``draws`` ``(n_draws, n_chains, d)``."""
    return _by_dimension_chunks(_split_rhat, draws)


def _split_rhat(draws: Tensor) -> Tensor:
    x = draws.double()
    half = x.shape[0] // 2
    if half < 2:
        return torch.full(x.shape[2:], math.nan, dtype=torch.float64, device=x.device)
    x = torch.cat([x[:half], x[half : 2 * half]], 1)
    n = x.shape[0]
    w = x.var(0).mean(0)
    b_over_n = x.mean(0).var(0)
    var_plus = (n - 1) / n * w + b_over_n
    return (var_plus / w).sqrt()


def nan_summary(values: Tensor, reduce: str) -> float:
    """``values.min()``, ``nanmean()`` or ``max()`` as a float; NaN when every value is NaN."""
    if torch.isnan(values).all():
        return math.nan
    return float({"min": values.min, "mean": values.nanmean, "max": values.max}[reduce]())
