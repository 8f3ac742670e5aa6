"""The cross-fitted check (``fit(crossfit=K)``): every row outside the validation set is check data.

The rows outside the validation set are cut into ``K`` folds. For each fold a copy of the fit
plays the game and trains every teacher candidate on the other folds, and scores them on parts
of this one (:func:`~.fold.fit_fold`). A candidate *kind* (the same source in every fold) is then
scored on the parts of all folds, each by a copy that never saw them, and must pass the same
rule as a single split (:func:`~.selection.confirms`, two standard errors when several compete).

What counts is what latent rejection will deliver: the best passing data-space kind through its
distillation (each fold copy distilled and scored on its own held-out fold; it must pass
t >= 1 again) and the best passing latent kind (transport weights) as it is; the lower mean on
the parts is kept (``delivered_``). ``w_φ`` then learns the mean of the kept kind's fold copies
(:class:`~.teachers.AveragedTeacher`), or, for transport weights, is fitted again on the
transport pairs of *all* training rows: the folds have checked the procedure, and the refit
is that procedure on all the data. The transport plans are solved once, fold by fold (each chunk
of data rows from one fold, :func:`_fold_pairs`): a fold's copy regresses on the pairs of the
other folds and the refit on all of them, so no plan is solved twice.
"""

from __future__ import annotations

import numpy as np
import torch

from genrefine.weights.latent_importance.distillation import agreement, distil
from genrefine.weights.latent_importance.fold import fit_fold
from genrefine.weights.latent_importance.selection import CHECK_SIZE, confirms, weigh_with
from genrefine.weights.latent_importance.teachers import TRANSPORT_KIND, AveragedTeacher
from genrefine.weights.transport import fit_on_pairs, transport_pairs


def _kind(source: str) -> str:
    """The game's start calibrated is the same kind as the game's epoch calibrated."""
    return source.replace("start", "game")


def fit_crossfitted(net, generator, x: np.ndarray, perm: np.ndarray, n_val: int, critic, s, progress: bool = True,
                    checkpoint: str | None = None) -> None:
    """Run the ``s.crossfit`` folds on the rows ``x[perm[n_val:]]`` (validation set
    ``x[perm[:n_val]]``), pick the kind to keep and fit ``net`` to it; sets the fitted attributes."""
    cut = np.array_split(perm[n_val:], int(s.crossfit))
    pairs = _fold_pairs(net, generator, x, cut, s, progress)
    folds = _run_folds(net, generator, x, perm, n_val, cut, pairs, critic, s, progress, checkpoint)
    by_kind = _pool_kinds(net, folds)
    net.val_emd_initial_ = folds[0].game.initial_val_emd
    if any(f.transport is not None for f in folds):
        net.transport_ = [f.transport for f in folds]
    net.best_epoch_ = [f.game.epoch for f in folds]
    net.val_emd_best_ = [f.game.val_emd for f in folds]
    net.history_ = [{**h, "fold": r + 1} for r, f in enumerate(folds) for h in f.game.history]
    net.selected_epoch_, net.val_emd_, net.source_, net.confirmed_ = 0, net.val_emd_initial_, "start", False
    net.distil_ = None
    net.__dict__["teacher_"] = None
    net.__dict__["critic_"] = folds[0].critic
    init_parts = [v for f in folds for v in f.initial_parts]
    passing = []
    if net.candidates_:
        threshold = 2.0 if len(net.candidates_) > 1 else 1.0  # the bar for the best of several
        order = sorted(range(len(net.candidates_)), key=lambda j: net.candidates_[j]["check_emd"])
        passing = [j for j in order if confirms(by_kind[net.candidates_[j]["source"]], init_parts, threshold)]
        i = order[0]
        net.check_emd_ = {"selected": net.candidates_[i]["check_emd"], "initial": float(np.mean(init_parts)),
                          "selected_parts": by_kind[net.candidates_[i]["source"]], "initial_parts": init_parts,
                          "threshold": threshold, "folds": len(folds)}
        net.confirmed_ = bool(passing)
    if net.confirmed_:
        options = _delivery_options(net, folds, passing, by_kind, generator, s)
        _deliver(net, folds, options, by_kind, generator, pairs, s)


def _fold_pairs(net, generator, x: np.ndarray, cut: list, s, progress: bool) -> list | None:
    """Transport pairs ``(z, w)`` of each fold's rows (``None`` without transport weights)."""
    if not s.transport:
        return None
    dev = net.net[0].weight.device
    return [transport_pairs(generator, torch.as_tensor(x[c], device=dev).float(), net.m, int(s.transport),
                            int(s.transport_chunk), progress) for c in cut]


def _others(pairs: list | None, r: int | None = None) -> tuple | None:
    """The pairs of every fold but ``r`` (of all folds for ``r = None``), concatenated."""
    if pairs is None:
        return None
    keep = [p for j, p in enumerate(pairs) if j != r]
    return torch.cat([z for z, _ in keep]), torch.cat([w for _, w in keep])


def _run_folds(net, generator, x: np.ndarray, perm: np.ndarray, n_val: int, cut: list, pairs: list | None, critic, s,
               progress: bool, checkpoint: str | None) -> list:
    """One :func:`~.fold.fit_fold` per fold, each on a fresh latent copy of ``net``, trained on the
    other folds (and their transport pairs) and checked on the whole parts of its own."""
    dev = net.net[0].weight.device
    n_chk = min(CHECK_SIZE, n_val)
    x_val = torch.as_tensor(x[perm[:n_val]], device=dev).float()
    folds = []
    for r in range(len(cut)):
        held = cut[r][:(len(cut[r]) // n_chk) * n_chk]
        train = np.concatenate([cut[j] for j in range(len(cut)) if j != r])
        student = type(net)(**net.config()).to(dev)
        folds.append(fit_fold(student, generator, x_val, torch.as_tensor(x[held], device=dev).float(),
                              torch.as_tensor(x[train], device=dev).float(), critic, s, progress=progress,
                              checkpoint=f"{checkpoint}_fold{r + 1}" if checkpoint else None,
                              transport_pairs=_others(pairs, r)))
    return folds


def _pool_kinds(net, folds: list) -> dict:
    """Set ``net.candidates_`` to one record per kind present in every fold (in the first fold's
    order) and return each kind's check scores over all folds' parts."""
    kinds = [_kind(r["source"]) for r in folds[0].records]
    kinds = [k for k in kinds if all(k in [_kind(r["source"]) for r in f.records] for f in folds)]
    net.candidates_, by_kind = [], {}
    for k in kinds:
        at = [next(j for j, r in enumerate(f.records) if _kind(r["source"]) == k) for f in folds]
        recs = [f.records[j] for f, j in zip(folds, at)]
        by_kind[k] = [v for f, j in zip(folds, at) for v in f.parts[j]]
        net.candidates_.append({"source": k, "val_emd": float(np.mean([rec["val_emd"] for rec in recs])),
                                "check_emd": float(np.mean(by_kind[k])),
                                "folds": [{key: rec.get(key) for key in ("source", "epoch", "val_emd", "check_emd")}
                                          for rec in recs]})
    return by_kind


def _teachers_of(folds: list, kind: str) -> list:
    return [next(t for src, t in f.pool if _kind(src) == kind) for f in folds]


def _delivery_options(net, folds: list, passing: list, by_kind: dict, generator, s) -> list:
    """What latent rejection would deliver, scored on the same parts: the best passing data-space
    kind through its per-fold distillation (confirmed at t >= 1), and the best passing latent kind
    as it is. Sets ``net.delivered_``."""
    init_parts = [v for f in folds for v in f.initial_parts]

    def latent(j: int) -> bool:
        return all(getattr(t, "on_latent", False) for t in _teachers_of(folds, net.candidates_[j]["source"]))

    options = []
    data_j = next((j for j in passing if not latent(j)), None)
    if data_j is not None:
        fold_parts, corr = [], []
        for f, t in zip(folds, _teachers_of(folds, net.candidates_[data_j]["source"])):
            own = type(net)(**net.config()).to(net.net[0].weight.device)
            corr.append(distil(own, generator, t, int(s.distil_size), int(s.distil_epochs),
                               patience=s.distil_patience)["corr"])
            fold_parts += f.check.scores(weigh_with(own), net.m)
        options.append({"index": data_j, "check_parts": fold_parts, "fold_corr": corr,
                        "confirmed": confirms(fold_parts, init_parts)})
    lat_j = next((j for j in passing if latent(j)), None)
    if lat_j is not None:
        options.append({"index": lat_j, "check_parts": by_kind[net.candidates_[lat_j]["source"]],
                        "fold_corr": [1.0] * len(folds), "confirmed": True})
    net.delivered_ = [{"source": net.candidates_[o["index"]]["source"], "check_emd": float(np.mean(o["check_parts"])),
                       "confirmed": o["confirmed"], "fold_corr": o["fold_corr"]} for o in options]
    return options


def _deliver(net, folds: list, options: list, by_kind: dict, generator, pairs: list | None, s) -> None:
    """Fit ``net`` to the confirmed option with the lowest mean on the parts, or, when none is
    confirmed, leave it at its start and record the data-space option's distillation."""
    ok = [o for o in options if o["confirmed"]]
    if not ok:
        o = options[0]
        net.confirmed_ = False
        net.distil_ = {"corr": float(np.mean(o["fold_corr"])), "check_parts": o["check_parts"], "confirmed": False,
                       "fold_corr": o["fold_corr"]}
        return
    o = min(ok, key=lambda o: float(np.mean(o["check_parts"])))
    rec = net.candidates_[o["index"]]
    best = rec["source"]
    net.check_emd_.update({"selected": rec["check_emd"], "selected_parts": by_kind[best]})
    net.source_, net.val_emd_, net.selected_epoch_ = best, rec["val_emd"], None
    teacher = AveragedTeacher(_teachers_of(folds, best), net.m).eval()
    net.__dict__["teacher_"] = teacher
    n = int(s.distil_size)
    if best == TRANSPORT_KIND:  # the procedure the folds checked, on every training row
        refit = fit_on_pairs(net, *_others(pairs), epochs=int(s.transport_epochs), passes=int(s.transport),
                             chunk=int(s.transport_chunk))
        net.distil_ = {"refit": refit, **agreement(net, generator, teacher, n)}
    else:
        net.distil_ = distil(net, generator, teacher, n, int(s.distil_epochs), patience=s.distil_patience)
    net.distil_["val_emd"] = folds[0].val.score(weigh_with(net), net.m)
    net.distil_.update({"check_parts": o["check_parts"], "confirmed": True, "fold_corr": o["fold_corr"]})
