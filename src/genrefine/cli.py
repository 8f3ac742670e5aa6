"""The ``genrefine`` command line.

    genrefine refine --data gaussians4 --methods base,dctr,rejection,hmc,laser,laser-flow --out runs/g4
    genrefine refine --data swissroll --base wgan-gp --methods base,latentrs,latentga,latentrsga,drs,mhgan,sir,dot --out runs/sr
    genrefine sample --model runs/g4/models/laser --n 100000 --out laser.npy
    genrefine demo

Bad input ends with one ``error: ...`` line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from genrefine.pipeline import BASE_FAMILIES, LASER_METHODS, METHODS


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{s}'") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own code)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genrefine", description="Refine a trained generative model after the fact (LaSeR and friends).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("refine", help="fit a base generator, refine it with every method, score and save")
    r.add_argument("--data", required=True,
                   help="built-in set (gaussians4, double_donut, rings3, moons, swissroll, gaussians25) or a .npy/.npz/.csv file")
    r.add_argument("--key", default=None, help="array name inside a .npz file (default: the first)")
    r.add_argument("--methods", default=None,
                   help=f"comma-separated subset of {','.join(METHODS)} (default: every LaSeR method for a realnvp "
                        "base, every latent reweighting method for a wgan-gp base)")
    r.add_argument("--base", default="realnvp", choices=list(BASE_FAMILIES), help="base generator family to train")
    r.add_argument("--base-model", default=None,
                   help="refine this saved generator (a models/<name> directory) instead of training one; "
                        "its family must match --base")
    r.add_argument("--critic", default=None, help="a saved critic (models/critic) to start w_phi, DOT and the "
                                                  "discriminator from; default: the base's own, or a new one")
    r.add_argument("--m", type=float, default=None, help="w_phi's soft-clipping bound m (latentRS accepts with w/m)")
    r.add_argument("--lambda1", type=float, default=None, help="w_phi's self-normalisation weight")
    r.add_argument("--lambda2", type=float, default=None, help="w_phi's soft-clipping weight")
    r.add_argument("--w-inputs", choices=["latent", "data"], default=None,
                   help="who plays w_phi's game: w_phi(z) itself, or a data-space h(G(z)) distilled into "
                        "w_phi afterwards (the quick preset's default)")
    r.add_argument("--scoring", default="auto", choices=["auto", "laser", "lrw", "all"],
                   help="laser: histogram JSD/EMD; lrw: exact EMD and precision/recall with 97%% intervals and "
                        "inference cost; auto: lrw when a latent reweighting method or a wgan-gp base is used")
    r.add_argument("--preset", default="quick", choices=["quick", "paper"])
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--n-samples", type=_positive_int, default=200_000, help="unweighted samples per method")
    r.add_argument("--iterations", type=_positive_int, default=1, help="refine the refined generator K times")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--resume", action="store_true", help="continue training from the checkpoints in OUT/checkpoints")
    r.add_argument("--quiet", action="store_true", help="no progress bars")

    s = sub.add_parser("sample", help="draw samples from a saved (refined) generator")
    s.add_argument("--model", required=True, help="a model directory, e.g. OUT/models/laser")
    s.add_argument("--n", type=_positive_int, required=True)
    s.add_argument("--out", required=True, help="output .npy file")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")

    d = sub.add_parser("demo", help="quick preset on gaussians4 with every method; prints the score table")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--device", default="cpu")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--n-samples", type=_positive_int, default=200_000)
    return p


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
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"(n = {first['n']} points per evaluation, {first['repeats']} evaluations, k = {first['k']})")
    return "\n".join(lines)


def format_table(metrics: dict) -> str:
    """The score table: each score with the truth-against-truth floor, and timings."""
    first = next(iter(metrics["scores"].values()))
    if "jsd_prob" not in first:
        lines = [format_lrw_table(metrics)]
    else:
        lines = [_format_laser_table(metrics)]
        if "lrw" in first:
            lines += ["", format_lrw_table(metrics)]
    t = metrics["timings_seconds"]
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{k}={v:.1f}" for k, v in t.items()))
    rates = metrics.get("samples_per_second", {})
    if rates:
        lines.append("samples/s: " + ", ".join(f"{k}={v:,.3g}" for k, v in rates.items()))
    return "\n".join(lines)


def _format_laser_table(metrics: dict) -> str:
    rows = [("method", "JSD", "EMD", "JSD(paper)", "EMD(paper)", "exact EMD", "energy")]
    for m, s in metrics["scores"].items():
        rows.append((m, *(f"{s[k]['value']:.4g}" for k in ("jsd_prob", "emd_prob", "jsd_paper", "emd_paper", "exact_emd", "energy"))))
    first = next(iter(metrics["scores"].values()))
    rows.append(("truth floor", *(f"{first[k]['floor']:.4g}" for k in ("jsd_prob", "emd_prob", "jsd_paper", "emd_paper", "exact_emd", "energy"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _refine(args) -> int:
    from genrefine.pipeline import run_refinement

    methods = args.methods
    if methods is None:
        methods = ",".join(LASER_METHODS) if args.base == "realnvp" else "base,latentrs,latentga,latentrsga,drs,mhgan,sir,dot"
    from genrefine.checkpoint import load_critic, load_generator
    from genrefine.validation import resolve_device

    w_fit = {k: getattr(args, k) for k in ("lambda1", "lambda2") if getattr(args, k) is not None}
    base = critic = None
    if args.base_model:
        base = load_generator(args.base_model, device=resolve_device(args.device), family=args.base)
    if args.critic:
        critic = load_critic(args.critic, device=resolve_device(args.device))
    res = run_refinement(args.data, methods=methods, preset=args.preset, seed=args.seed,
                         n_samples=args.n_samples, device=args.device, out=args.out, iterations=args.iterations,
                         key=args.key, progress=not args.quiet, resume=args.resume, base_family=args.base,
                         scoring=args.scoring, base=base, critic=critic,
                         w_phi={"m": args.m, "inputs": args.w_inputs, "fit": w_fit}
                         if (args.m is not None or w_fit or args.w_inputs) else None)
    print(format_table(res.metrics))
    print(f"\nwrote {os.path.join(args.out, 'metrics.json')}, samples/, latents/, models/, figures/")
    return 0


def _sample(args) -> int:
    import torch

    from genrefine.checkpoint import atomic_save_npy, load_generator
    from genrefine.validation import resolve_device

    if not args.out.endswith(".npy"):
        raise ValueError(f"--out {args.out}: expected a .npy file name")
    gen = load_generator(args.model, device=resolve_device(args.device))
    torch.manual_seed(args.seed)
    x = gen.sample(args.n).cpu().numpy()
    atomic_save_npy(args.out, x)
    print(f"wrote {args.n} samples of shape {x.shape} from {args.model} to {args.out}")
    return 0


def _demo(args) -> int:
    args.data, args.methods, args.preset, args.iterations = "gaussians4", ",".join(LASER_METHODS), "quick", 1
    args.base, args.scoring = "realnvp", "auto"
    args.base_model = args.critic = args.m = args.lambda1 = args.lambda2 = args.w_inputs = None
    args.key, args.resume, args.quiet = None, False, False
    return _refine(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"refine": _refine, "sample": _sample, "demo": _demo}[args.command](args)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
