"""Post-hoc classifier weights (DCTR) and their pull-back to the latent space (LaSeR Sec. 3).

A classifier ``f(x) = P(data | x)`` trained with binary cross-entropy between data and
generated samples satisfies ``f/(1-f) = (n_data p_data(x)) / (n_gen p_g(x))`` at the optimum, so

    w(x) = f(x) / (1 - f(x)) · n_gen / n_data = exp(logit f(x)) · n_gen / n_data ≈ p_data(x) / p_g(x).

Weights are always formed in log space, ``log w = logit f + log(n_gen / n_data)``, and
:meth:`RatioClassifier.weight` returns ``exp(min(log w, LOG_WEIGHT_CLIP))`` in float32: finite
for any finite input, however separable the two samples are.

Fitting holds out ``val_fraction`` of each class (seeded, stratified), stops when the held-out
BCE has not improved for ``patience`` epochs and restores the best epoch's weights. It then
reports in ``diagnostics_`` how far the weights can be trusted, on the held-out rows:

- ``auc``: ROC AUC of real vs generated; 0.5 means indistinguishable, 1 perfectly separable.
- ``mean_weight``: the mean of ``w`` over generated points. ``E_{p_g}[p_data / p_g] = 1``, and
  the ``n_gen / n_data`` factor in ``w`` already accounts for unequal class sizes, so a
  calibrated classifier gives about 1 whatever the class ratio.
- ``ess_fraction``: ``(Σ w)² / (n Σ w²)`` over generated points (1: uniform weights).

The weights are ``degenerate`` when AUC > ``DEGENERATE_AUC``, or ESS fraction <
``DEGENERATE_ESS``, or the mean weight lies outside ``[1 / DEGENERATE_MEAN_FACTOR,
DEGENERATE_MEAN_FACTOR]``; a :class:`DegenerateWeightsWarning` then names the numbers.

With ``calibrate_cells=K`` the fitted weights are then rescaled per k-means cell of the data so
that the reweighted generated sample carries the data's share of mass in each of (up to) ``K``
cells (:mod:`genrefine.weights.calibration`): in many dimensions the classifier's errors are
mostly in the relative mass of whole modes. The diagnostics are those of the calibrated weights.

For a deterministic generator, ``w(z) = w(g(z))`` is a proper function of the latent point and
``q(z) ∝ p(z) w(z)`` is the latent density whose push-forward through ``g`` is the reweighted
data density.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genrefine.generators.base import Generator
from genrefine.metrics.c2st import roc_auc
from genrefine.nn import mlp
from genrefine.samplers.base import LatentTarget
from genrefine.training import STOP, positive_rate, train_loop
from genrefine.weights.calibration import KMeansCells, cell_count, cell_factors, uncovered_share
from genrefine.weights.sharpening import QUANTILE as SHARPEN_QUANTILE
from genrefine.weights.sharpening import select_sharpening
from genrefine.weights.tempering import select_tempering
from genrefine.validation import check_array, check_data_shape, check_weights
from genrefine.weights.conv import ConvNet

# exp(50) ≈ 5e21: far above any weight worth sampling, and up to 1e16 such weights still sum
# to less than float32's largest number (3.4e38)
LOG_WEIGHT_CLIP = 50.0
# degenerate weights: the rule is any one of these on the held-out rows
DEGENERATE_AUC = 0.99          # samples this separable give weights near 0 or ∞
DEGENERATE_ESS = 0.01          # fewer than 1 in 100 generated points carry the weight
DEGENERATE_MEAN_FACTOR = 2.0   # mean w over generated points off 1 by more than a factor 2
#: warn when at least this share of the data lies where the generator barely goes
#: (:func:`~genrefine.weights.calibration.uncovered_share`)
UNCOVERED_WARN = 0.02


class DegenerateWeightsWarning(UserWarning):
    """The classifier's weights cannot be trusted (see the module docstring for the rule)."""


class _BestEpoch(nn.Module):
    """Early stopping's state as a module, so that a training checkpoint holds it: the best
    held-out BCE so far, its epoch (0: none yet), the epochs since, and a copy of the net's
    weights at that epoch."""

    def __init__(self, net: nn.Module, patience: int) -> None:
        super().__init__()
        self.patience = int(patience)
        self.net = copy.deepcopy(net).requires_grad_(False)
        self.register_buffer("loss", torch.tensor(torch.finfo(torch.float32).max))
        self.register_buffer("epoch", torch.tensor(0))
        self.register_buffer("since", torch.tensor(0))

    @torch.no_grad()
    def update(self, loss: float, epoch: int, net: nn.Module) -> bool:
        """Record ``epoch``'s held-out ``loss`` (keeping ``net``'s weights if it is the best);
        returns whether patience has run out."""
        if loss < float(self.loss):
            self.loss.fill_(loss)
            self.epoch.fill_(epoch)
            self.since.zero_()
            self.net.load_state_dict(net.state_dict())
            return False
        self.since += 1
        return int(self.since) >= self.patience


@dataclass(frozen=True)
class ClassifierDiagnostics:
    """What a fitted classifier says about its own weights (``on``: the rows measured)."""

    on: str
    n_data: int
    n_generated: int
    bce: float
    auc: float
    mean_weight: float
    ess_fraction: float
    best_epoch: int | None
    epochs_run: int
    degenerate: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def degeneracy(auc: float, mean_weight: float, ess_fraction: float) -> str:
    """The reasons (``"; "``-joined, empty when none) why weights with these numbers are degenerate."""
    reasons = []
    if auc > DEGENERATE_AUC:
        reasons.append(f"AUC {auc:.4f} > {DEGENERATE_AUC} (real and generated samples almost perfectly separable)")
    if ess_fraction < DEGENERATE_ESS:
        reasons.append(f"ESS fraction {ess_fraction:.3g} < {DEGENERATE_ESS}")
    if not 1 / DEGENERATE_MEAN_FACTOR <= mean_weight <= DEGENERATE_MEAN_FACTOR:
        reasons.append(f"mean weight on generated points {mean_weight:.3g} outside "
                       f"[{1 / DEGENERATE_MEAN_FACTOR:g}, {DEGENERATE_MEAN_FACTOR:g}]")
    return "; ".join(reasons)


def stratified_split(n_data: int, n_gen: int, fraction: float, seed: int, paired: bool = False
                     ) -> tuple[np.ndarray, ...]:
    """Seeded held-out rows of each class: ``(train_data, val_data, train_gen, val_gen)`` indices.

    Each class holds out ``round(fraction · n)`` rows, at least one and leaving at least one,
    (none when ``fraction`` is 0); a numpy generator of its own, so torch's stream is untouched.
    ``paired``: both classes are the same rows (differently weighted), so both hold out the same
    ones (a row trained on in one class is never scored in the other).
    """
    if paired and n_data != n_gen:
        raise ValueError(f"paired classes need as many rows each, got {n_data} and {n_gen}")
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_data,) if paired else (n_data, n_gen):
        k = 0 if fraction <= 0 else min(n - 1, max(1, round(fraction * n)))
        perm = rng.permutation(n)
        out += [np.sort(perm[k:]), np.sort(perm[:k])]
    if paired:
        out += out
    return tuple(out)


class RatioClassifier(nn.Module):
    """A data-vs-generated classifier whose odds are the density ratio ``p_data / p_g``.

    Subclasses set ``self.net`` (flat standardised rows -> ``(n, 1)`` logits) and may override
    :meth:`_standardisation`; fitting, weights and diagnostics are shared.
    """

    eval_batch = 100_000  # rows per forward pass when no gradient is needed
    takes_cells = True  # whether fit(calibrate_cells=K) applies

    def __init__(self, data_shape, val_fraction: float = 0.1, patience: int = 10, seed: int = 0,
                 cells: int = 0) -> None:
        super().__init__()
        self.data_shape = check_data_shape(data_shape)
        self.dim = int(np.prod(self.data_shape))
        try:
            ok = not isinstance(val_fraction, bool) and 0.0 <= float(val_fraction) <= 0.5
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"val_fraction must be a number in [0, 0.5], got {val_fraction!r}")
        if isinstance(patience, bool) or int(patience) != patience or int(patience) < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        self.val_fraction, self.patience, self.seed = float(val_fraction), int(patience), int(seed)
        self.register_buffer("loc", torch.zeros(self.dim))
        self.register_buffer("scale", torch.ones(self.dim))
        self.register_buffer("log_class_ratio", torch.zeros(()))  # log(n_gen / n_data)
        # largest log w seen on the fitted samples: beyond them the classifier extrapolates
        self.register_buffer("log_weight_max", torch.tensor(float("inf")))
        # cell calibration (none until fit(calibrate_cells=K)): k-means centres, log factor per cell
        self.register_buffer("cell_centres", torch.zeros(int(cells), self.dim))
        self.register_buffer("cell_log_factors", torch.zeros(int(cells)))
        # tempering (fit(temper=...)): log w -> β log w - log mean_g w^β; β = 1 is none
        self.register_buffer("temper_beta", torch.ones(()))
        self.register_buffer("temper_log_norm", torch.zeros(()))
        # the sharpening power chosen on held-out rows (fit(sharpen=...)); the samplers apply it
        self.register_buffer("sharpen_power", torch.ones(()))
        # 1: the chosen power applies to the capped weights even at 1 (the fitted ones were too
        # concentrated to compete, weights/sharpening.py)
        self.register_buffer("sharpen_capped", torch.zeros(()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # classifiers saved before tempering or sharpening existed hold neither buffer: none
        for name in ("temper_beta", "temper_log_norm", "sharpen_power", "sharpen_capped"):
            default = getattr(self, name)
            state_dict.setdefault(prefix + name, torch.zeros_like(default) if name in ("temper_log_norm", "sharpen_capped")
                                  else torch.ones_like(default))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _standardisation(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-feature mean and standard deviation of the training rows."""
        return x.mean(0), x.std(0).clamp_min(1e-6)

    def logit(self, x: Tensor) -> Tensor:
        """``logit f(x)``, shape ``(n,)``."""
        return self.net((x - self.loc) / self.scale).squeeze(-1)

    def log_weight(self, x: Tensor) -> Tensor:
        """``log w(x) = logit f(x) + log(n_gen / n_data)`` (unclipped, differentiable), plus the
        log factor of ``x``'s cell when calibrated, tempered when a ``β < 1`` was chosen."""
        return self.temper_beta * self._raw_log_weight(x) - self.temper_log_norm

    def _raw_log_weight(self, x: Tensor) -> Tensor:
        """:meth:`log_weight` before tempering."""
        lw = self.logit(x) + self.log_class_ratio
        if len(self.cell_log_factors):
            lw = lw + self.cell_log_factors[torch.cdist(x.detach().reshape(len(x), -1), self.cell_centres).argmin(1)]
        return lw

    @torch.no_grad()
    def _logits(self, x: Tensor) -> Tensor:
        return torch.cat([self.logit(c) for c in x.split(self.eval_batch)])

    @torch.no_grad()
    def weight(self, x: Tensor, batch_size: int | None = None) -> Tensor:
        """``w(x) = exp(min(log w(x), LOG_WEIGHT_CLIP))`` in float32, in chunks, no gradients."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.loc.device)
        b = int(batch_size or self.eval_batch)
        return torch.cat([self.log_weight(c).clamp(max=LOG_WEIGHT_CLIP).exp() for c in x.split(b)])

    def _rows(self, x, name: str, min_rows: int = 2) -> Tensor:
        images = self.data_shape if len(self.data_shape) > 1 else None
        arr = check_array(x, name=name, dim=self.dim, min_rows=min_rows, data_shape=images)
        return torch.as_tensor(arr, device=self.loc.device).float()

    def fit(self, data, generated, epochs: int = 50, batch_size: int = 2000, lr: float = 1e-3, gamma: float = 0.999,
            weight_decay: float = 0.0, progress: bool = True, checkpoint: str | None = None,
            calibrate_cells: int = 0, calibration_samples=None, temper=(), temper_rule: str = "best",
            temper_samples=None, sharpen=(), sharpen_quantile: float = SHARPEN_QUANTILE, sharpen_samples=None,
            data_weight=None, generated_weight=None, paired: bool = False) -> "RatioClassifier":
        """Train with BCE: label 1 for ``data``, 0 for ``generated`` (rows of ``data_shape``, or flat).

        ``val_fraction`` of each class is held out (0: train on all rows, no early stopping,
        diagnostics measured on the training rows); ``history_`` has the training and held-out
        BCE of each epoch, ``diagnostics_`` the checks of the module docstring.
        ``calibrate_cells=K`` then calibrates the weights on up to ``K`` cells (one per 500 data
        rows at most), against ``calibration_samples``: fresh generated rows, or a function
        that draws them once training is done (by default the training ones);
        ``diagnostics_["calibration"]`` says how. ``temper``: candidate powers ``β`` of the
        weights, one chosen on the held-out data rows by ``temper_rule`` (:mod:`genrefine.weights.tempering`;
        ``diagnostics_["tempering"]``) against ``temper_samples`` (fresh generated rows, or a
        function that draws them; by default the held-out generated rows); empty: none.
        ``sharpen``: powers ``p >= 1`` of the capped weights, one chosen against ``sharpen_samples``
        (by default the tempering's) into ``sharpen_power``; a run's latent samplers of these
        weights apply it (``methods/context.py``), while ``weight`` and :func:`latent_target` keep ``w``.

        ``data_weight`` / ``generated_weight``: per-row weights of either class (OmniFold's
        weighted samples), each rescaled to mean 1; the BCE is then weighted and the odds
        estimate the ratio of the two *weighted* densities. ``paired``: the two classes are the
        same rows, differently weighted, and hold out the same rows.
        """
        _check_training(epochs, batch_size, lr, gamma)
        xd, xg = self._rows(data, "data"), self._rows(generated, "generated samples")
        weighted = data_weight is not None or generated_weight is not None
        if weighted and (calibrate_cells or temper or sharpen):
            raise ValueError("classifier: cell calibration, tempering and sharpening take unweighted classes")
        wd = _class_weight(data_weight, len(xd), "data_weight", xd.device)
        wg = _class_weight(generated_weight, len(xg), "generated_weight", xd.device)
        self._forget_choices()
        td, vd, tg, vg = (torch.as_tensor(i, device=xd.device) for i in
                          stratified_split(len(xd), len(xg), self.val_fraction, self.seed, paired))
        x = torch.cat([xd[td], xg[tg]])
        y = torch.cat([torch.ones(len(td), device=x.device), torch.zeros(len(tg), device=x.device)])
        xv = torch.cat([xd[vd], xg[vg]])
        yv = torch.cat([torch.ones(len(vd), device=x.device), torch.zeros(len(vg), device=x.device)])
        loc, scale = self._standardisation(x)
        self.loc.copy_(loc)
        self.scale.copy_(scale)
        sw, swv = (torch.cat([wd[d], wg[g]]) if weighted else None for d, g in ((td, tg), (vd, vg)))
        self.log_class_ratio.fill_(math.log(float(wg[tg].sum()) / float(wd[td].sum())) if weighted
                                   else math.log(len(tg) / len(td)))
        for p in self.parameters():
            p.requires_grad_(True)
        best, history = self._train(x, y, xv, yv, int(epochs), int(batch_size), lr, gamma, weight_decay,
                                    progress, checkpoint, sw, swv)
        self.history_ = history
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            self.log_weight_max.fill_(float((self._logits(torch.cat([x, xv])) + self.log_class_ratio).max()))
        calibration = None
        if calibrate_cells:
            cal = calibration_samples() if callable(calibration_samples) else calibration_samples
            cal = xg[tg] if cal is None else self._rows(cal, "calibration samples")
            calibration = self._calibrate(xd[td], cal, int(calibrate_cells))
        held_out = len(vd) > 0
        rd, rg = (vd, vg) if held_out else (td, tg)
        scored = xg[rg] if temper_samples is None else temper_samples
        choices = {"tempering": self._temper(xd[rd], scored, temper, temper_rule),
                   "sharpening": self._sharpen(xd[rd] if held_out else None, sharpen_samples, scored,
                                               sharpen, sharpen_quantile)}
        rec = self.diagnose(xd[rd], xg[rg], on="held-out" if held_out else "training", best_epoch=best,
                            epochs_run=len(history), data_weight=wd[rd] if weighted else None,
                            generated_weight=wg[rg] if weighted else None)
        self.diagnostics_record_ = rec
        self.diagnostics_ = {**rec.as_dict(), **({"calibration": calibration} if calibration else {}),
                             **{k: v for k, v in choices.items() if v}}
        if rec.degenerate:
            warnings.warn(f"classifier weights are degenerate on {rec.on} rows: {rec.reason}; "
                          f"samples drawn with them will not follow the data", DegenerateWeightsWarning, stacklevel=2)
        return self

    def _forget_choices(self) -> None:
        """Before a fit: no calibration cells, tempering or sharpening (each is chosen anew)."""
        self.cell_centres, self.cell_log_factors = self.cell_centres[:0], self.cell_log_factors[:0]
        self.temper_beta.fill_(1.0)
        self.temper_log_norm.zero_()
        self.sharpen_power.fill_(1.0)
        self.sharpen_capped.zero_()

    @torch.no_grad()
    def _temper(self, xd: Tensor, xg, candidates, rule: str) -> dict | None:
        """Choose ``β`` among ``candidates`` on data rows ``xd`` and generated rows ``xg`` (or a
        function that draws them, called only when there are candidates; :func:`select_tempering`)."""
        if not candidates:
            return None
        xg = self._rows(xg() if callable(xg) else xg, "tempering samples")
        lw = torch.cat([self._raw_log_weight(c) for c in xg.split(self.eval_batch)])
        rec = select_tempering(lw, *self._scored_rows(xd, xg), candidates, rule)
        self.temper_beta.fill_(rec["beta"])
        self.temper_log_norm.fill_(rec["log_norm"])
        self.log_weight_max.mul_(rec["beta"]).sub_(rec["log_norm"])
        return rec

    @torch.no_grad()
    def _sharpen(self, xd: Tensor, xg, default, powers, quantile: float) -> dict | None:
        """Choose the sharpening power among ``powers`` on held-out data rows ``xd`` (None: there
        are none, and nothing is chosen) and generated rows ``xg`` (or a function that draws them,
        called only when there are powers; None: ``default``, likewise;
        :func:`select_sharpening`, on the generated rows whose weight is finite)."""
        if not powers:
            return None
        if xd is None:  # the training rows favour sharper powers (docs/image_bar.md)
            return {"power": 1.0, "skipped": "no held-out data rows to choose on (val_fraction=0)"}
        xg = default if xg is None else xg
        xg = self._rows(xg() if callable(xg) else xg, "sharpening samples")
        lw = torch.cat([self.log_weight(c) for c in xg.split(self.eval_batch)])
        finite = torch.isfinite(lw)  # scored on the rows themselves, never a feature code
        rec = select_sharpening(lw[finite], xd, xg[finite], powers, quantile, self.seed)
        self.sharpen_power.fill_(rec["power"])
        self.sharpen_capped.fill_(float(rec.get("capped", False)))
        return rec

    def _scored_rows(self, xd: Tensor, xg: Tensor) -> tuple[Tensor, Tensor]:
        """The rows whose energy distance chooses the tempering: the rows themselves."""
        return xd, xg

    @torch.no_grad()
    def _calibrate(self, xd: Tensor, xg: Tensor, requested: int) -> dict:
        """Fit the cell factors on data rows ``xd`` and generated rows ``xg``; returns the record."""
        k = cell_count(requested, len(xd))
        if k == 0:
            return {"cells": 0, "reason": f"{len(xd)} data rows support fewer than 2 cells of 500"}
        cells = KMeansCells(k, xd, seed=self.seed)
        w = self.weight(xg)
        cg, cd = cells(xg), cells(xd)
        f = cell_factors(w, cg, cd, k)
        self.cell_centres = cells.centres.float()
        self.cell_log_factors = f.log().float()
        self.log_weight_max.add_(float(self.cell_log_factors.max()))
        missed = uncovered_share(cg, cd, k)
        if missed >= UNCOVERED_WARN:
            warnings.warn(f"the generator barely reaches {100 * missed:.0f}% of the data: k-means cells holding "
                          f"that share of the data rows get less than a tenth of it in generated points (a missing "
                          f"mode or region); reweighting cannot create mass there", stacklevel=3)
        return {"cells": k, "factor_min": float(f.min()), "factor_max": float(f.max()),
                "uncovered_data_share": missed, "data_rows": len(xd), "generated_rows": len(xg)}

    def _train(self, x, y, xv, yv, epochs, batch_size, lr, gamma, weight_decay, progress, checkpoint,
               sw=None, swv=None):
        """Adam on BCE (weighted by ``sw`` per row when given) through :func:`train_loop`; with
        held-out rows, early stopping on their BCE (weighted by ``swv``) and the best epoch's
        weights restored. The early stopping's state travels in the checkpoint, so a resumed
        fit stops and restores as an uninterrupted one. Returns ``(best_epoch, history)``."""
        opt = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        bce = nn.BCEWithLogitsLoss()
        held_out = len(xv) > 0
        best = _BestEpoch(self.net, self.patience) if held_out else None

        def step(xb: Tensor, yb: Tensor, wb: Tensor | None = None) -> dict:
            loss = bce(self.logit(xb), yb) if wb is None else (
                F.binary_cross_entropy_with_logits(self.logit(xb), yb, reduction="none") * wb).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"bce": loss.item()}  # train_loop refuses a non-finite epoch mean

        def watch(epoch: int) -> dict:
            val = float(F.binary_cross_entropy_with_logits(self._logits(xv), yv, weight=swv)  # one batched pass
                        * (1.0 if swv is None else len(swv) / float(swv.sum())))
            if not math.isfinite(val):
                raise ValueError(f"classifier: the held-out loss became {val} in epoch {epoch + 1}; lower lr (now {lr:g})")
            return {"val_bce": val, **({STOP: True} if best.update(val, epoch + 1, self.net) else {})}

        modules = {"classifier": self, **({"early_stopping": best} if held_out else {})}
        history = train_loop(step, (x, y) if sw is None else (x, y, sw), modules, {"adam": opt}, epochs, batch_size,
                             gamma, desc="classifier", progress=progress, checkpoint=checkpoint,
                             on_epoch_end=watch if held_out else None)
        if not held_out:
            return (history[-1]["epoch"] if history else None), history
        if int(best.epoch) > 0:
            self.net.load_state_dict(best.net.state_dict())
        return (int(best.epoch) or None), history

    @torch.no_grad()
    def diagnose(self, data, generated, on: str = "given", best_epoch: int | None = None,
                 epochs_run: int = 0, data_weight=None, generated_weight=None) -> ClassifierDiagnostics:
        """BCE, AUC, mean weight and ESS fraction of ``w`` on rows the caller chooses (held-out
        rows of both classes, ideally), and whether they are degenerate; with row weights of
        either class, every number is the weighted one (the ESS that of the product weights)."""
        xd, xg = self._rows(data, "data", 1), self._rows(generated, "generated samples", 1)
        wd = _class_weight(data_weight, len(xd), "data_weight", xd.device).double()
        wg = _class_weight(generated_weight, len(xg), "generated_weight", xd.device).double()
        # the logits of the weights in use: the calibrated ones when calibrated
        ld, lg = (torch.cat([self.log_weight(c) - self.log_class_ratio for c in v.split(self.eval_batch)]).double()
                  for v in (xd, xg))
        bce = float(((wd * F.softplus(-ld)).sum() + (wg * F.softplus(lg)).sum()) / (wd.sum() + wg.sum()))
        scores = torch.cat([ld, lg]).cpu().numpy()
        weights = None if data_weight is None and generated_weight is None else torch.cat([wd, wg]).cpu().numpy()
        auc = roc_auc(scores, np.r_[np.ones(len(ld)), np.zeros(len(lg))], weights)
        # the weights weight() returns, times the rows' own (log 0 = -inf drops a row)
        lw = (lg + float(self.log_class_ratio)).clamp(max=LOG_WEIGHT_CLIP) + wg.log()
        lse, log_n = torch.logsumexp(lw, 0), math.log(len(lw))  # the row weights have mean 1
        mean_w = float(torch.exp(lse - log_n))
        ess = float(torch.exp(2 * lse - torch.logsumexp(2 * lw, 0) - log_n))
        reason = degeneracy(auc, mean_w, ess)
        return ClassifierDiagnostics(on=on, n_data=len(ld), n_generated=len(lg), bce=bce, auc=auc,
                                     mean_weight=mean_w, ess_fraction=ess, best_epoch=best_epoch,
                                     epochs_run=int(epochs_run), degenerate=bool(reason), reason=reason)


def _class_weight(w, n: int, name: str, device) -> Tensor:
    """Row weights of one class (``None``: all 1), checked and rescaled to mean 1."""
    if w is None:
        return torch.ones(n, device=device)
    arr = check_weights(w.detach().cpu().numpy() if isinstance(w, Tensor) else w, name=name, n=n)
    return torch.as_tensor(arr / arr.mean(), dtype=torch.float32, device=device)


class DensityRatioClassifier(RatioClassifier):
    """MLP classifier data-vs-generated whose odds estimate the density ratio p_data / p_g.

    Defaults are the LaSeR post-hoc classifier (8 hidden layers x 96, leaky ReLU, BCE, Adam 1e-3,
    lr x 0.999 per epoch). Inputs are standardised with the statistics of the training rows.
    10% of each class is held out for early stopping and diagnostics (``val_fraction=0``: the
    earlier behaviour, all rows trained on for every epoch).

    Example:
        >>> clf = DensityRatioClassifier(2).fit(x_data, x_gen, epochs=50)
        >>> w = clf.weight(x_gen)            # ≈ p_data / p_g at x_gen, mean ≈ 1
        >>> clf.diagnostics_["auc"], clf.diagnostics_["degenerate"]
    """

    def __init__(self, dim: int, hidden: int = 96, layers: int = 8, val_fraction: float = 0.1, patience: int = 10,
                 seed: int = 0, cells: int = 0) -> None:
        super().__init__((int(dim),), val_fraction, patience, seed, cells)
        self.hidden, self.layers = int(hidden), int(layers)
        self.net = mlp(self.dim, 1, self.hidden, self.layers)

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "layers": self.layers, "cells": len(self.cell_log_factors)}


class ConvRatioClassifier(RatioClassifier):
    """Convolutional classifier for image rows (flat ``(n, C·H·W)`` plus ``data_shape``), the
    discriminator of Eq. (33) of the introduction paper (:class:`~genrefine.weights.conv.ConvNet`);
    fit, weights and diagnostics as :class:`DensityRatioClassifier`. Inputs are standardised per
    channel. About 2-4 s per epoch for 10k + 10k 28x28 images on 2 CPU cores.

    Example:
        >>> clf = ConvRatioClassifier((1, 28, 28)).fit(x_data, x_gen, epochs=20, batch_size=256)
    """

    eval_batch = 4096  # a 28x28 batch of 4096 needs about 100 MB of activations

    def __init__(self, data_shape, channels=(32, 64), val_fraction: float = 0.1, patience: int = 10,
                 seed: int = 0, cells: int = 0) -> None:
        super().__init__(data_shape, val_fraction, patience, seed, cells)
        if len(self.data_shape) != 3:
            raise ValueError(f"data_shape: a convolutional classifier needs images (C, H, W), got {self.data_shape}")
        self.channels = tuple(int(c) for c in channels)
        self.net = ConvNet(self.data_shape, self.channels)

    def _standardisation(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel mean and standard deviation, spread over the channel's pixels."""
        c = self.data_shape[0]
        per = x.reshape(len(x), c, -1).transpose(0, 1).reshape(c, -1)
        loc, scale = per.mean(1), per.std(1).clamp_min(1e-6)
        pixels = self.dim // c
        return loc.repeat_interleave(pixels), scale.repeat_interleave(pixels)

    def config(self) -> dict:
        return {"data_shape": list(self.data_shape), "channels": list(self.channels),
                "cells": len(self.cell_log_factors)}


_MLP_ONLY, _CNN_ONLY = {"hidden", "layers"}, {"channels"}


def make_classifier(data_shape, **settings) -> RatioClassifier:
    """The classifier for rows of ``data_shape``: :class:`DensityRatioClassifier` (MLP) for
    tabular rows ``(D,)``, :class:`ConvRatioClassifier` (CNN) for images ``(C, H, W)`` or
    ``(H, W)`` of at least 4x4 pixels (smaller images go to the MLP, flattened).

    ``settings`` are constructor arguments; those that only the other family takes
    (``hidden``/``layers`` for the MLP, ``channels`` for the CNN) are ignored, so one preset
    can serve both.

    Example:
        >>> make_classifier((1, 28, 28), hidden=96, layers=8)   # a ConvRatioClassifier
    """
    shape = check_data_shape(data_shape)
    if len(shape) == 3 and min(shape[1:]) >= 4:
        return ConvRatioClassifier(shape, **{k: v for k, v in settings.items() if k not in _MLP_ONLY})
    return DensityRatioClassifier(int(np.prod(shape)), **{k: v for k, v in settings.items() if k not in _CNN_ONLY})


def soft_cap(log_w: Tensor, cap: float, sharpness: float = 10.0) -> Tensor:
    """A smooth upper cap of log-weights: ``cap - softplus_β(cap - log w)`` with β = ``sharpness``.

    Never above ``cap``, differentiable (HMC can use it), and equal to ``log w`` within
    ``log(1 + e^{-β·(cap - log w)}) / β``: below ``cap - log 2`` (the largest training weight
    when the cap is twice it) that is under 1e-4 at β = 10. A plain softplus (β = 1) would
    shrink a weight of half the cap by a third, i.e. distort the very weights being sampled.
    """
    return cap - F.softplus(cap - log_w, beta=sharpness)


def latent_target(generator: Generator, classifier: RatioClassifier, cap_factor: float | None = 2.0) -> LatentTarget:
    """The pulled-back target ``q(z) ∝ p(z) w(g(z))`` of a deterministic generator.

    Far from its training samples an MLP classifier's logit grows without bound, and a flow's
    ``g(z)`` can grow exponentially in ``|z|``, so ``p(z) w(g(z))`` need not even be
    normalisable: HMC chains then escape to infinity and rejection sampling has no bound.
    The weight is therefore capped smoothly (:func:`soft_cap`) at ``cap_factor`` times the
    largest weight seen on the classifier's training samples; the cap is the target's
    ``bound`` and is reported. ``cap_factor=None`` disables it.

    A stochastic generator (hidden randomness besides z) maps one z to many x, so ``w(g(z))``
    is then one fresh draw of a noisy weight at each call (the *direct pull-back*): latent
    rejection on it samples ``p(z) E[w(g(z, ε)) | z]``, the first step of OmniFold
    (:mod:`genrefine.weights.omnifold`), which goes on to a proper function of z. Its gradient is
    that of one draw, so the target is then not differentiable.
    """
    lw_max = float(classifier.log_weight_max)
    if cap_factor is None or not math.isfinite(lw_max):
        def log_weight(z: Tensor) -> Tensor:
            return classifier.log_weight(generator(z))

        bound = None
    else:
        cap = lw_max + math.log(cap_factor)

        def log_weight(z: Tensor) -> Tensor:
            return soft_cap(classifier.log_weight(generator(z)), cap)

        bound = math.exp(cap)
    return LatentTarget(prior=generator.prior, log_weight=log_weight, bound=bound,
                        differentiable=generator.differentiable and not generator.stochastic)


def _check_training(epochs, batch_size, lr, gamma) -> None:
    """One ValueError line for a training setting out of its range."""
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or int(v) != v or int(v) < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    positive_rate(lr, "lr")
    if not (np.isfinite(gamma) and 0 < gamma <= 1):
        raise ValueError(f"gamma must be a number in (0, 1], got {gamma}")
