"""A DCTR classifier made of ``K`` classifiers of one kind whose logits are averaged.

A classifier that separates real from generated rows almost perfectly (images) gives weights
whose logarithm carries the noise of its own fit: a second seed (another initialisation, another
minibatch order, for image codes another autoencoder) ranks the same generated rows differently.
Sharpened or resampled, those weights pick the rows one fit happens to like. The mean of ``K``
fits' logits keeps what they agree on; its weights are better conditioned (a larger effective
sample) and select more realistic rows (measured on two MNIST GANs: docs/image_bar.md).

Every member trains on the same training rows and is stopped early on the same held-out rows,
which no member trains on: the ensemble's tempering, sharpening and diagnostics are then chosen
and measured on rows it never saw, exactly as a single classifier's. Members differ in their
seed (``seed + k``). A member's logit is its own (standardisation included); the class ratio,
cell calibration, tempering and sharpening are the ensemble's, applied to the mean logit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrefine.weights.classifier import ConvRatioClassifier, DensityRatioClassifier, RatioClassifier
from genrefine.weights.feature_classifier import FeatureRatioClassifier

#: the saved kind of each single classifier (``config.json``'s ``kind``)
CLASSIFIER_KINDS = {"dctr_classifier": DensityRatioClassifier, "conv_classifier": ConvRatioClassifier,
                    "feature_classifier": FeatureRatioClassifier}
ENSEMBLE_KIND = "classifier_ensemble"


def classifier_kind(clf: RatioClassifier) -> str:
    """The kind a classifier is saved as."""
    if isinstance(clf, RatioEnsemble):
        return ENSEMBLE_KIND
    for kind, cls in CLASSIFIER_KINDS.items():
        if type(clf) is cls:
            return kind
    raise ValueError(f"no saved kind for a {type(clf).__name__}")


class RatioEnsemble(RatioClassifier):
    """``log w(x) = mean_k logit_k(x) + log(n_gen / n_data)``, the ``members`` classifiers built
    from ``member`` (a :meth:`config` of ``member_kind``) with seeds ``seed, seed + 1, ...``.
    Fit, weights, tempering, sharpening and diagnostics as :class:`~genrefine.weights.classifier.RatioClassifier`.

    Example:
        >>> one = FeatureRatioClassifier((1, 28, 28))
        >>> clf = RatioEnsemble("feature_classifier", one.config(), members=5).fit(x_data, x_gen)
    """

    def __init__(self, member_kind: str, member: dict, members: int = 5, val_fraction: float = 0.1,
                 patience: int = 10, seed: int = 0, cells: int = 0) -> None:
        if member_kind not in CLASSIFIER_KINDS:
            raise ValueError(f"member_kind must be one of {', '.join(CLASSIFIER_KINDS)}, got {member_kind!r}")
        if isinstance(members, bool) or int(members) != members or int(members) < 1:
            raise ValueError(f"members must be an integer >= 1, got {members!r}")
        cls = CLASSIFIER_KINDS[member_kind]
        one = {k: v for k, v in member.items() if k != "cells"}  # the ensemble calibrates, not a member
        built = [cls(**one, val_fraction=val_fraction, patience=patience, seed=int(seed) + k) for k in range(int(members))]
        super().__init__(built[0].data_shape, val_fraction, patience, seed, cells)
        self.member_kind, self.member = member_kind, dict(one)
        self.members = nn.ModuleList(built)
        self.eval_batch = min(m.eval_batch for m in built)
        # a member on learned image codes takes no cell calibration, nor does the ensemble of them
        self.takes_cells = all(m.takes_cells for m in built)

    def config(self) -> dict:
        return {"member_kind": self.member_kind, "member": self.member, "members": len(self.members),
                "cells": len(self.cell_log_factors)}

    def fit(self, *args, **kwargs) -> "RatioEnsemble":
        """:meth:`RatioClassifier.fit`; ``diagnostics_`` adds ``members`` and each one's best epoch."""
        if kwargs.get("calibrate_cells") and not self.takes_cells:
            raise ValueError(f"an ensemble of {self.member_kind} members takes no cell calibration (calibrate_cells = 0)")
        super().fit(*args, **kwargs)
        self.diagnostics_ = {**self.diagnostics_, "members": len(self.members), "member_best_epochs": self.best_epochs_}
        return self

    def logit(self, x: Tensor) -> Tensor:
        return torch.stack([m.logit(x) for m in self.members]).mean(0)

    def _standardisation(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """None here: each member standardises its own input (:meth:`_train`)."""
        return torch.zeros_like(x[0]), torch.ones_like(x[0])

    def _scored_rows(self, xd: Tensor, xg: Tensor) -> tuple[Tensor, Tensor]:
        """The rows the tempering is chosen on: the members' (for codes, all members' side by side)."""
        parts = [m._scored_rows(xd, xg) for m in self.members]
        if parts[0][0] is xd:  # members scored on the rows themselves
            return xd, xg
        return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)

    def _train(self, x, y, xv, yv, epochs, batch_size, lr, gamma, weight_decay, progress, checkpoint,
               sw=None, swv=None):
        """Train each member in turn on the same rows (each its own checkpoint, ``<prefix>_member<k>``);
        returns the latest best epoch of any member and every member's history, tagged."""
        best, history = [], []
        for k, m in enumerate(self.members):
            loc, scale = m._standardisation(x)
            m.loc.copy_(loc)
            m.scale.copy_(scale)
            path = f"{checkpoint}_member{k}" if checkpoint else None
            b, h = m._train(x, y, xv, yv, epochs, batch_size, lr, gamma, weight_decay, progress, path, sw, swv)
            best.append(b)
            history += [{**r, "member": k} for r in h]
        self.best_epochs_ = best
        known = [b for b in best if b is not None]
        return (max(known) if known else None), history
