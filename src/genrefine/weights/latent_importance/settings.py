"""The settings of :meth:`LatentImportanceNetwork.fit`, grouped and checked once at the edge."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from genrefine.validation import check_positive


@dataclass(frozen=True)
class LatentImportanceSettings:
    """Every keyword of :meth:`~genrefine.weights.latent_importance.LatentImportanceNetwork.fit`.

    The game (Alg. 1 and Eq. (6) of the latent-reweighting paper; defaults from its Appendix E):
        epochs: passes over the training rows, one critic step per batch of ``batch_size``.
        lambda1, lambda2: weights of the self-normalisation ``(E w - 1)²`` and of the
            soft-clipping ``E max(0, w - m)²`` in Eq. (6).
        lr_w, lr_d, betas: Adam for the weight player and for the critic.
        n_critic: critic steps per weight step (Alg. 1's ``n_d``).
        gp_weight: the critic's gradient-penalty weight.
        warmup: critic-only steps against ``G`` (w = 1) before the game starts.
        pool_size: latents drawn once, with ``G(z)``, from which the game's batches are taken.
        patience: end the game once this many epochs pass without a new best validation score
            (``None``: play every epoch).
        ema: decay of an exponential average of the player's parameters that is scored and kept
            instead of the live weights (``None``: off).
        inputs: ``"latent"`` plays with ``w_φ(z)`` itself (Alg. 1); ``"data"`` plays with
            ``h(G(z))`` (``teacher_hidden`` wide) and distils it into ``w_φ`` afterwards.
    Selection:
        val_fraction: share of the rows held out to pick the game's epoch (at most 3000 rows,
            and at most ``n / 34``, so that it and the check's parts hold out at most half).
        crossfit: folds ``K`` of the cross-fitted check (0: one split; else >= 2, and it needs
            teacher candidates).
    Teacher candidates (need ``inputs="data"``):
        smoothed_ratio: noise scales ``s`` of classifier ratios of blurred samples
            (``smoothed_epochs`` epochs each).
        calibrate: k-means cells on which every candidate is also offered calibrated (0: off).
        transport: passes of transport weights (0: off), chunks of ``transport_chunk`` rows,
            regressed for ``transport_epochs`` epochs.
    Distillation: ``distil_size`` prior draws, at most ``distil_epochs`` epochs, stopped when
        ``distil_size / 10`` held-out draws stop improving for ``distil_patience`` epochs
        (None: every epoch runs).
    """

    epochs: int = 20
    batch_size: int = 256
    lambda1: float = 10.0
    lambda2: float = 3.0
    lr_w: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple = (0.5, 0.5)
    n_critic: int = 1
    gp_weight: float = 10.0
    warmup: int = 500
    pool_size: int = 100_000
    patience: int | None = None
    ema: float | None = None
    inputs: Literal["latent", "data"] = "latent"
    teacher_hidden: int = 64
    val_fraction: float = 0.03
    crossfit: int = 0
    smoothed_ratio: tuple = field(default=())
    smoothed_epochs: int = 20
    calibrate: int = 0
    transport: int = 0
    transport_chunk: int = 2000
    transport_epochs: int = 30
    distil_size: int = 200_000
    distil_epochs: int = 30
    distil_patience: int | None = 3

    @classmethod
    def from_kwargs(cls, settings: dict) -> "LatentImportanceSettings":
        """The settings from ``fit``'s keywords; an unknown keyword is a TypeError naming it."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in settings:
            if key not in known:
                raise TypeError(f"LatentImportanceNetwork.fit: unknown setting {key!r} "
                                f"(settings: {', '.join(known)})")
        return cls(**settings)

    def __post_init__(self) -> None:
        for name in ("lambda1", "lambda2", "gp_weight", "val_fraction"):
            check_positive(getattr(self, name), name, allow_zero=True)
        for name in ("lr_w", "lr_d"):
            check_positive(getattr(self, name), name)
        for name in ("batch_size", "n_critic", "pool_size", "teacher_hidden", "smoothed_epochs", "transport_chunk",
                     "transport_epochs", "distil_size", "distil_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("epochs", "warmup"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("patience", "distil_patience"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or int(v) != v or int(v) < 1):
                raise ValueError(f"{name} must be None or a whole number >= 1, got {v!r}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise ValueError(f"ema must be None or a decay in [0, 1), got {self.ema!r}")
        if self.inputs not in ("latent", "data"):
            raise ValueError(f"inputs must be 'latent' or 'data', got {self.inputs!r}")
        scales = tuple(float(v) for v in (self.smoothed_ratio or ()))
        for v in scales:
            check_positive(v, "smoothed_ratio scale", allow_zero=True)
        object.__setattr__(self, "smoothed_ratio", scales)
        object.__setattr__(self, "betas", tuple(self.betas))
        if int(self.transport) < 0:
            raise ValueError(f"transport must be 0 (off) or a number of passes >= 1, got {self.transport!r}")
        if self.calibrate and int(self.calibrate) < 2:
            raise ValueError(f"calibrate must be 0 (off) or a number of cells >= 2, got {self.calibrate!r}")
        if self.has_candidates and self.inputs != "data":
            raise ValueError("smoothed_ratio, calibrate and transport are teacher candidates: they need "
                             f"inputs='data', got inputs={self.inputs!r}")
        if int(self.crossfit) < 0 or int(self.crossfit) == 1:
            raise ValueError(f"crossfit must be 0 (off) or a number of folds >= 2, got {self.crossfit!r}")
        if self.crossfit and not self.has_candidates:
            raise ValueError("crossfit needs teacher candidates (smoothed_ratio, calibrate or transport)")

    @property
    def has_candidates(self) -> bool:
        """Whether teachers other than the game compete (smoothed ratios, calibration, transport)."""
        return bool(self.smoothed_ratio or self.calibrate or self.transport)
