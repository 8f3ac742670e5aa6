"""The ``genrefine`` command line.

    genrefine refine --data gaussians4 --methods base,dctr,rejection,hmc,laser,laser-flow --out runs/g4
    genrefine refine --data swissroll --base wgan-gp --methods base,latentrs,latentga,latentrsga,drs,mhgan,sir,dot --out runs/sr
    genrefine refine --data mine.npy --base python:my_model.py:generator --latent-dim 8 --set classifier.epochs=10 --out runs/mine
    genrefine sample --model runs/g4/models/laser --n 100000 --out laser.npy
    genrefine sample --model runs/mine/models/laser --base python:my_model.py:generator --n 1000 --out mine.npy
    genrefine demo

A user's mistake or the machine's state (a file, memory, a device) ends with one
``error: ...`` line on stderr and exit code 2, never a traceback; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

from genrefine.pipeline import BASE_FAMILIES, LASER_METHODS, METHODS

SUITE_COLUMNS = ("energy", "exact_emd", "precision", "recall", "c2st_auc", "frechet_features", "precision_features",
                 "recall_features", "hist_jsd", "hist_emd")


def _int_at_least(low: int, below: int | None = None, shown: str = ""):
    """An argparse type: an integer >= ``low`` (and < ``below``); argparse names the option."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{s}'") from None
        if v < low or (below is not None and v >= below):
            raise argparse.ArgumentTypeError(f"must be {shown or f'>= {low}'}, got {v}")
        return v
    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0, 2 ** 32, "in [0, 2**32 - 1] (numpy's seeds)")


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{s}'") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {s}")
    return v


def _shape(s: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (or D) as integers, got '{s}'") from None
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W (or D) of positive integers, got '{s}'")
    return shape


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own code)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)


def _refine_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--data", required=True,
                   help="built-in set (gaussians4, double_donut, rings3, moons, swissroll, gaussians25, digits) or a "
                        ".npy/.npz/.csv file or MNIST IDX file; rows (n, D), (n, H, W) or (n, C, H, W)")
    r.add_argument("--key", default=None, help="array name inside a .npz file (default: the first)")
    r.add_argument("--data-shape", type=_shape, default=None,
                   help="C,H,W of one row when the data or the model's output is flat but images (e.g. 1,28,28)")
    r.add_argument("--holdout", type=_fraction, default=0.2,
                   help="fraction of a file's rows kept aside as held-out truth (halved: truth and its floor)")
    r.add_argument("--methods", default=None,
                   help=f"comma-separated subset of {','.join(METHODS)} (default: every LaSeR method for a realnvp "
                        "base, every latent reweighting method for a wgan-gp base; for a python: base those it "
                        "can serve of base,dctr,rejection,sir-dctr,hmc,laser,laser-flow; for a simulator f(z, rng) "
                        "the direct pull-back and the OmniFold methods)")
    r.add_argument("--base", default="realnvp",
                   help="base generator: a family to train (realnvp, ot-flow, vae, dcgan, wgan-clip, wgan-gp, "
                        "hinge-gp) or your own model, "
                        "python:FILE.py:NAME (an nn.Module, a factory, a function z -> x, or a simulator "
                        "f(z, rng)); your file is run because you ask for it; or sim:detector, "
                        "sim:calorimeter (toy simulators with hidden randomness)")
    r.add_argument("--latent-dim", type=_positive_int, default=None,
                   help="latent dimension of a python: base (default: its latent_dim attribute), or of a "
                        "vae or GAN family to train (default: its preset's)")
    r.add_argument("--base-model", default=None,
                   help="refine this saved generator (a models/<name> directory) instead of training one; "
                        "its family must match --base (a python: base: the model it was built on)")
    r.add_argument("--critic", default=None, help="a saved critic (models/critic) to start w_phi, DOT and the "
                                                  "discriminator from; default: the base's own, or a new one")
    r.add_argument("--m", type=float, default=None, help="w_phi's soft-clipping bound m (latentRS accepts with w/m)")
    r.add_argument("--lambda1", type=float, default=None, help="w_phi's self-normalisation weight")
    r.add_argument("--lambda2", type=float, default=None, help="w_phi's soft-clipping weight")
    r.add_argument("--w-inputs", choices=["latent", "data"], default=None,
                   help="who plays w_phi's game: w_phi(z) itself, or a data-space h(G(z)) distilled into "
                        "w_phi afterwards (the quick preset's default)")
    r.add_argument("--scoring", default="auto", choices=["auto", "laser", "lrw", "all", "suite"],
                   help="laser: 2-D histogram JSD/EMD; lrw: exact EMD and precision/recall with 97%% intervals and "
                        "inference cost; suite: every score that fits the dimension, with floors; auto: suite for "
                        "D != 2 or a python: base, else lrw for latent reweighting or a wgan-gp base, else laser")
    r.add_argument("--preset", default="quick", choices=["quick", "paper"])
    r.add_argument("--set", dest="set", action="append", default=[], metavar="SECTION.PARAM=VALUE",
                   help="override one setting of the preset, e.g. --set classifier.epochs=10 (repeatable; "
                        "a method's name is its section: --set hmc.burn_in=100)")
    r.add_argument("--config", default=None, metavar="FILE.json",
                   help="settings file {section: {param: value}}; --set is applied over it")
    r.add_argument("--seed", type=_seed, default=0)
    r.add_argument("--n-samples", type=_positive_int, default=200_000, help="unweighted samples per method")
    r.add_argument("--iterations", type=_positive_int, default=1, help="refine the refined generator K times")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    r.add_argument("--out", required=True, help="output directory (a run directory: locked while the run lives)")
    r.add_argument("--resume", action="store_true", help="continue training from the checkpoints in OUT/checkpoints")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genrefine", description="Refine a trained generative model after the fact (LaSeR and friends).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _refine_arguments(sub.add_parser("refine", help="fit or take a base generator, refine it with every method, "
                                                    "score, rank and save"))
    s = sub.add_parser("sample", help="draw samples from a saved (refined) generator")
    s.add_argument("--model", required=True, help="a model directory, e.g. OUT/models/laser")
    s.add_argument("--base", default=None,
                   help="python:FILE.py:NAME: the model the checkpoint was built on (needed when it was)")
    s.add_argument("-n", "--n", type=_positive_int, required=True,
                   help="how many samples (-n under torchrun, whose own options would take --n)")
    s.add_argument("--out", required=True,
                   help="an output .npy file (flat rows (n, D), all in memory), or a directory: rows streamed into "
                        "shard files with a manifest, memory flat in --n, resumable (rerun the same command)")
    s.add_argument("--shard-rows", type=_positive_int, default=None,
                   help="rows per shard file when --out is a directory (default 1,048,576)")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--device", default="cpu")

    d = sub.add_parser("demo", help="quick preset on gaussians4 with every method; prints the score table")
    d.add_argument("--simulator", default=None, choices=["detector", "calorimeter"],
                   help="instead: refine a toy black-box simulator with hidden randomness against its truth "
                        "(the direct pull-back beside OmniFold's latent weights)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--device", default="cpu")
    d.add_argument("--seed", type=_seed, default=0)
    d.add_argument("--n-samples", type=_positive_int, default=200_000)
    return p


# ---- tables -----------------------------------------------------------------------------------
def _columns(rows: list[tuple]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_lrw_table(metrics: dict) -> str:
    """The latent reweighting table: EMD, precision and recall (mean ± 97 % interval over the
    evaluations), and milliseconds per delivered sample."""
    cost = metrics.get("inference_cost") or {}
    rows = [("method", "EMD", "precision", "recall", "ms/sample", "x raw")]

    def fmt(d, digits=4):
        return "-" if d is None else f"{d['mean']:.{digits}f} ± {d['interval']:.{digits}f}"

    first = None
    for m, s in metrics["scores"].items():
        lrw = s["lrw"]
        first = first or lrw
        c = cost.get(m) if m != "base" else {"ms_per_sample": cost.get("raw_ms"), "cost_over_raw": 1.0}
        ms = "-" if not c or c.get("ms_per_sample") is None else f"{c['ms_per_sample']:.4f}"
        ratio = "-" if not c or c.get("cost_over_raw") is None else f"{c['cost_over_raw']:.2f}"
        rows.append((m, fmt(lrw["emd"]), fmt(lrw["precision"], 3), fmt(lrw["recall"], 3), ms, ratio))
    rows.append(("real vs real", fmt(first["emd"]["floor"]), fmt(first["precision"]["floor"], 3),
                 fmt(first["recall"]["floor"], 3), "", ""))
    return _columns(rows) + f"\n(n = {first['n']} points per evaluation, {first['repeats']} evaluations, k = {first['k']})"


def format_suite_table(metrics: dict) -> str:
    """Every score of the any-dimension suite, one row per method, the truth floor below."""
    scores = metrics["scores"]
    cols = [c for c in SUITE_COLUMNS if any(c in s for s in scores.values())]
    rows = [("method", *cols)]
    for m, s in scores.items():
        rows.append((m, *(f"{s[c]['value']:.4g}" if c in s else "-" for c in cols)))
    first = next(iter(scores.values()))
    rows.append(("truth floor", *(f"{first[c]['floor']:.4g}" if c in first else "-" for c in cols)))
    return (_columns(rows) + "\n(lower is better for distances, higher for precision/recall; c2st_auc: 0.5 is "
            "indistinguishable)")


def format_ranking(metrics: dict) -> str:
    """Which method to use: the ranking on held-out truth and the recommended method."""
    r = metrics.get("ranking")
    if not r:
        return ""
    better = {"lower": "lower is better", "higher": "higher is better", "half": "closest to 0.5 is best"}
    parts = [f"{e['method']} {e['value']:.4g}" + ("" if e["gap_closed"] is None else f" ({100 * e['gap_closed']:.0f}%)")
             for e in r["ranking"]]
    lines = [f"ranking by {r['key']} on held-out truth ({better[r['direction']]}; truth floor "
             f"{r['ranking'][0]['floor']:.4g}; % of the base's distance to the floor closed):",
             "  " + ", ".join(parts)]
    rec = r["recommended"]
    note = f" (no method beat the base on {r['key']})" if rec == "base" and len(r["ranking"]) > 1 else ""
    if rec != r["ranking"][0]["method"] and rec != "base":
        note = f" ({r['ranking'][0]['method']} ranks first but gives weighted samples, not a generator)"
    elif rec == "base" and r["ranking"][0]["method"] != "base":
        note = f" (only {r['ranking'][0]['method']}, weighted samples without a generator, beat the base)"
    lines.append(f"recommended: {rec}{note}")
    tied = r.get("at_floor") or []
    if len(tied) >= 2:
        lines.append(f"at the truth floor: {', '.join(tied)} (indistinguishable from held-out truth on {r['key']} at "
                     "this sample size, so their order is noise; compare them on what matters to you, e.g. the tails)")
    return "\n".join(lines)


def format_table(metrics: dict) -> str:
    """The score table (each score with the truth-against-truth floor), the ranking and the
    recommended method, the classifier's held-out checks, and timings."""
    first = next(iter(metrics["scores"].values()))
    if metrics.get("scoring") == "suite":
        lines = [format_suite_table(metrics)]
    elif "jsd_prob" not in first:
        lines = [format_lrw_table(metrics)]
    else:
        lines = [_format_laser_table(metrics)]
        if "lrw" in first:
            lines += ["", format_lrw_table(metrics)]
    ranking = format_ranking(metrics)
    if ranking:
        lines += ["", ranking]
    for name, reason in (metrics.get("failed") or {}).items():
        lines.append(f"left out: {name} refused ({' '.join(str(reason).split())})")
    clf = (metrics.get("diagnostics") or {}).get("classifier")
    if isinstance(clf, dict) and clf.get("auc") is not None:
        flag = f"; DEGENERATE weights: {clf['reason']}" if clf.get("degenerate") else ""
        lines.append(f"classifier on held-out rows: BCE {clf['bce']:.4g}, AUC {clf['auc']:.4f}, mean weight "
                     f"{clf['mean_weight']:.3g}, ESS {100 * clf['ess_fraction']:.1f}%{flag}")
        lines += _tempering_line(clf.get("tempering")) + _sharpening_line(clf.get("sharpening"))
    t = metrics["timings_seconds"]
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{k}={v:.1f}" for k, v in t.items()))
    rates = metrics.get("samples_per_second", {})
    if rates:
        lines.append("samples/s: " + ", ".join(f"{k}={v:,.3g}" for k, v in rates.items()))
    return "\n".join(lines)


def _tempering_line(rec) -> list[str]:
    """A line when the classifier's weights were tempered (``w^β``, β < 1): a partial correction,
    chosen on held-out rows, that a user should know the methods work with."""
    if not isinstance(rec, dict) or rec.get("beta") is None or float(rec["beta"]) >= 1:
        return []
    why = ("the full weights scored worse than no weights on held-out rows" if rec.get("rule") == "guard"
           else "the tempered weights came closest to held-out data")
    effect = "the methods draw the base again" if float(rec["beta"]) == 0 else "the methods correct only part of the gap"
    return [f"weights tempered to w^{float(rec['beta']):g} ({why}): {effect} (classifier.temper=off keeps the full "
            "weights)"]


def _sharpening_line(rec) -> list[str]:
    """A line saying which sharpening power the held-out rows chose (``classifier.sharpen=auto``)."""
    if not isinstance(rec, dict) or rec.get("power") is None:
        return []
    if rec.get("skipped"):
        return [f"weights not sharpened: {rec['skipped']} (classifier.sharpen=auto)"]
    p, scores = float(rec["power"]), rec.get("scores") or {}
    chosen, plain = scores.get(str(p)) or {}, scores.get("1.0") or {}
    if rec.get("capped") and p == 1.0:
        return [f"latent samplers' weights capped at min(w, c), c their {float(rec.get('quantile', 0.99)):g} quantile: as "
                "fitted they kept too few effective rows to use, and no power above 1 raised the held-out precision "
                "(classifier.sharpen=auto)"]
    if p == 1.0 or "precision" not in chosen or "precision" not in plain:
        return ["weights not sharpened: no power above 1 raised the held-out precision and kept the recall "
                "(classifier.sharpen=auto)"]
    return [f"latent samplers' weights sharpened to min(w, c)^{p:g} on held-out rows: precision {100 * plain['precision']:.1f} -> "
            f"{100 * chosen['precision']:.1f}, recall {100 * plain['recall']:.1f} -> {100 * chosen['recall']:.1f} "
            f"(rejection, SIR, MH, HMC, Langevin lean toward the typical; refiners keep w; classifier.sharpen=1 "
            f"keeps the data's density)"]


def _format_laser_table(metrics: dict) -> str:
    keys = ("jsd_prob", "emd_prob", "jsd_paper", "emd_paper", "exact_emd", "energy")
    rows = [("method", "JSD", "EMD", "JSD(paper)", "EMD(paper)", "exact EMD", "energy")]
    for m, s in metrics["scores"].items():
        rows.append((m, *(f"{s[k]['value']:.4g}" for k in keys)))
    first = next(iter(metrics["scores"].values()))
    rows.append(("truth floor", *(f"{first[k]['floor']:.4g}" for k in keys)))
    return _columns(rows)


# ---- commands -----------------------------------------------------------------------------------
def _settings(args) -> dict:
    """``--config`` then ``--set`` (a later one wins), as one nested dict."""
    from genrefine.settings import assignments_to_dict, merge, read_settings_file

    return merge(read_settings_file(args.config) if args.config else {}, assignments_to_dict(args.set))


def _user_base(args):
    """The user's model of ``--base python:FILE.py:NAME`` as a generator (a function of
    ``(z, rng)`` is a simulator: hidden randomness besides z)."""
    from genrefine.generators.adapters import as_generator
    from genrefine.usercode import is_simulator, load_user_object

    obj = load_user_object(args.base)
    if args.latent_dim is None and getattr(obj, "latent_dim", None) is None:
        raise ValueError(f"--base {args.base}: give --latent-dim D (the model has no latent_dim attribute)")
    return obj, as_generator(obj, latent_dim=args.latent_dim, data_shape=args.data_shape,
                             stochastic=is_simulator(obj))


def _base_of(args, dev):
    """``(base generator or None, family)`` from --base, --latent-dim, --base-model."""
    from genrefine.api import load_generator

    if args.base.startswith(("python:", "sim:")):
        obj, gen = _user_base(args)
        if args.base_model:
            return load_generator(args.base_model, device=dev, base=obj), gen.family
        return gen, gen.family
    if args.base not in BASE_FAMILIES:
        raise ValueError(f"--base {args.base!r}: choose {', '.join(BASE_FAMILIES)}, python:FILE.py:NAME "
                         f"or sim:NAME (a toy simulator)")
    if args.base_model:
        return load_generator(args.base_model, device=dev, family=args.base), args.base
    return None, args.base


def _latent_setting(family: str, latent_dim: int, settings: dict, preset: str) -> dict:
    """``--latent-dim D`` for a family to train: its preset section's ``latent_dim``, and the
    section's value for images when it has one (so D wins over the image default too); a
    flow's latent dimension is the data's, so it is refused there."""
    from genrefine.generators import FAMILIES
    from genrefine.presets import get_preset

    cls = FAMILIES[family]
    if "latent_dim" not in cls.arch_keys:
        raise ValueError(f"--latent-dim: a {family} base's latent dimension is the data's; leave it out")
    section = dict(settings.get(cls.preset_section, {}))
    section["latent_dim"] = latent_dim
    if "latent_dim" in get_preset(preset).get(cls.preset_section, {}).get("images", {}):
        section["images"] = {**section.get("images", {}), "latent_dim": latent_dim}
    return {**settings, cls.preset_section: section}


def _refine(args) -> int:
    from genrefine.api import load_critic
    from genrefine.data import DATASETS
    from genrefine.experiments.config import build_config
    from genrefine.experiments.run import check_device, default_methods, run_refinement

    settings = _settings(args)
    family = args.base if args.base in BASE_FAMILIES else "realnvp"
    if args.latent_dim is not None and args.base in BASE_FAMILIES:
        settings = _latent_setting(family, args.latent_dim, settings, args.preset)
    build_config(args.preset, args.data if args.data in DATASETS else None, family, settings=settings)  # checked first
    from genrefine import distributed

    dev = distributed.init(str(check_device(args.device)))
    base, family = _base_of(args, dev)
    methods = args.methods if args.methods is not None else ",".join(default_methods(base or family))
    critic = load_critic(args.critic, device=dev) if args.critic else None
    w_fit = {k: getattr(args, k) for k in ("lambda1", "lambda2") if getattr(args, k) is not None}
    w_phi = ({"m": args.m, "inputs": args.w_inputs, "fit": w_fit}
             if (args.m is not None or w_fit or args.w_inputs) else None)
    res = run_refinement(args.data, methods=methods, preset=args.preset, seed=args.seed,
                         n_samples=args.n_samples, device=str(dev), out=args.out, iterations=args.iterations,
                         key=args.key, holdout=args.holdout, progress=not args.quiet, resume=args.resume,
                         base_family=family, scoring=args.scoring, base=base, critic=critic, w_phi=w_phi,
                         data_shape=args.data_shape, settings=settings or None)
    if distributed.rank_and_size()[0] == 0:  # under torchrun the ranks share the training; rank 0 writes
        print(format_table(res.metrics))
        print(f"\nwrote {os.path.join(args.out, 'metrics.json')}, samples/, latents/, models/, figures/")
    return 0


def _check_out_file(out: str) -> None:
    """Refuse, before any work, an output file that cannot be written."""
    if os.path.isdir(out):
        raise ValueError(f"--out {out}: is a directory; name a .npy file")
    if not out.lower().endswith(".npy"):
        raise ValueError(f"--out {out}: expected a .npy file name")
    if os.path.lexists(out):
        raise ValueError(f"--out {out}: exists; sampling never replaces a file (name another, or remove it first)")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(out) and not os.access(out, os.W_OK)):
        raise ValueError(f"--out {out}: not writable (permission denied)")


def _sample(args) -> int:
    import numpy as np
    import torch

    from genrefine.api import load_generator
    from genrefine.checkpoint import atomic_save_npy
    from genrefine.experiments.run import check_device, check_memory
    from genrefine.usercode import load_user_object

    from genrefine import distributed

    streaming = not args.out.lower().endswith(".npy")
    if streaming:
        from genrefine.experiments.shards import check_out

        if not args.out.strip():
            raise ValueError("--out: name a .npy file or a directory")
        suffix = os.path.splitext(args.out.rstrip("/"))[1]
        if suffix and not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out}: samples go to a .npy file or a directory (a name without a suffix), "
                             f"not a {suffix} file")
        check_out(args.out)
    else:
        _check_out_file(args.out)
        if args.shard_rows is not None:
            raise ValueError("--shard-rows: only for a directory --out (streamed shards)")
    dev = distributed.init(str(check_device(args.device)))
    user = load_user_object(args.base) if args.base else None
    try:
        gen = load_generator(args.model, device=dev, base=user)
    except ValueError as exc:  # the API's words for the base, in the command line's
        raise ValueError(str(exc).replace("pass base=<the same model>", "pass --base python:FILE.py:NAME (the same model)")
                         .replace("base=", "--base")) from None
    if streaming:
        return _sample_shards(args, gen)
    check_memory(1, args.n, gen.data_dim, gen.latent_dim, option="-n")
    torch.manual_seed(args.seed)
    x = gen.sample(args.n).cpu().numpy()
    if not np.isfinite(x).all():
        raise ValueError(f"{args.model}: the generator produced NaN or inf samples; nothing was written")
    atomic_save_npy(args.out, x)
    shape = tuple(getattr(gen, "data_shape", (gen.data_dim,)))
    print(f"wrote {args.n} samples of shape {x.shape} (rows of shape {shape}) from {args.model} to {args.out}")
    return 0


def _sample_shards(args, gen) -> int:
    import json

    from genrefine.experiments.run import check_memory
    from genrefine.experiments.shards import SHARD_ROWS, write_shards

    with open(os.path.join(args.model, "config.json")) as fh:
        model_hash = json.load(fh).get("sha256", "")
    shard_rows = args.shard_rows or SHARD_ROWS
    check_memory(1, min(args.n, shard_rows), gen.data_dim, gen.latent_dim, option="--shard-rows")  # one shard in memory
    m = write_shards(gen, args.n, args.out, seed=args.seed, shard_rows=shard_rows, model_hash=model_hash)
    if os.environ.get("RANK", "0") == "0":
        print(f"wrote {m['rows_written']} samples in {len(m['shards'])} shards of rows of shape "
              f"{tuple(m['data_shape'])} from {args.model} to {args.out} (manifest.json)")
    return 0


def _demo(args) -> int:
    data = ["--data", args.simulator, "--base", f"sim:{args.simulator}"] if args.simulator else [
        "--data", "gaussians4", "--methods", ",".join(LASER_METHODS)]
    argv = ["refine", *data, "--preset", "quick", "--out", args.out, "--device", args.device, "--seed", str(args.seed),
            "--n-samples", str(args.n_samples)]
    return _refine(build_parser().parse_args(argv))


def _one_line(exc: BaseException) -> str:
    """The message of an exception as one line (an OSError names its file and its reason)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    elif isinstance(exc, MemoryError):
        text = f"out of memory ({exc})" if str(exc) else "out of memory; lower --n-samples or the batch sizes"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (MemoryError,) + ((oom,) if oom is not None else ())


#: seconds a failing rank other than 0 waits before it speaks (see :func:`_report`)
RANK_ERROR_WAIT = 3.0


def _report(exc: BaseException, rank: int) -> None:
    """The one ``error:`` line. Under torchrun a bad input fails every rank alike, and the first
    rank to exit makes torchrun stop the others: rank 0 speaks at once, the others only after
    :data:`RANK_ERROR_WAIT` seconds, so one line is printed, or the rank's own when it alone failed."""
    if rank != 0:
        import time

        time.sleep(RANK_ERROR_WAIT)
        sys.stderr.write(f"error: rank {rank}: {_one_line(exc)}\n")
        return
    sys.stderr.write(f"error: {_one_line(exc)}\n")


def main(argv: list[str] | None = None) -> int:
    from genrefine import distributed

    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    previous = _catch_sigterm()
    shown = warnings.showwarning
    warnings.showwarning = _warning_line
    try:
        if distributed.launched() and args.command == "sample" and args.out.lower().endswith(".npy"):
            raise ValueError("under torchrun `genrefine sample` writes shards: name a directory --out DIR "
                             "(each rank writes its own shards), or sample into one .npy in one process")
        code = {"refine": _refine, "sample": _sample, "demo": _demo}[args.command](args)
        if distributed.launched():
            distributed.finish()  # every rank got here: meet before leaving the process group
            distributed.leave(code)
        return code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except (ValueError, TypeError, OSError) + _out_of_memory_errors() as exc:
        _report(exc, rank)
        return 2
    finally:
        distributed.finish(wait=False)  # an error path: another rank may never arrive
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``warning: ...`` line on stderr (not Python's file, line and source)."""
    (file or sys.stderr).write(f"warning: {' '.join(str(message).split())}\n")


def _catch_sigterm():
    """Make SIGTERM (``kill``, a scheduler's stop) end the run as Ctrl-C does, so temporary files
    are removed and finished checkpoints and shards kept; returns the previous handler (None
    off the main thread, where handlers cannot be set)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
