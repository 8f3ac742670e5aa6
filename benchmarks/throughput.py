"""Samples per second and peak memory of ``genrefine sample --out DIR`` (streamed shards), for the
raw and the refined generators of a run, in one process and under torchrun.

    python benchmarks/throughput.py --models runs/demo/models --names base,laser,laser-flow \
        --sizes 1000000,10000000,100000000 --procs 1,2 [--docs docs]

Every measurement is one ``genrefine sample`` command in a fresh process (its start-up included)
timed by ``/usr/bin/time``: wall seconds and the peak resident memory of the largest process.
One torch thread per process (``OMP_NUM_THREADS=1``), so ``--procs 2`` on two cores compares two
one-thread processes with one. Results go to ``docs/throughput.json`` (appended by key) and
``docs/throughput.md`` with the machine they ran on.

``--rates`` adds the rate of each refined generator against its own base *in one process*, with
no start-up: ``gen.sample(n)`` and ``gen.base.sample(n)`` timed in turn, best of five, one
thread (what "samples per second of the refined generator against the raw one" means without
the second of start-up that every command pays); the name ``latentrs`` builds latentRS from the
run's saved ``base`` and ``w_phi`` as a run does. ``--chunks`` times the base in the chunks it
sizes for itself against the 50,000-row chunks every generator used before. ``--rates`` also
times each refined generator without the squeeze (its rejection steps' networks run on every
candidate), in the same turns, so the gain is measured on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

from genrefine.checkpoint import atomic_write_text


def measure(model: str, n: int, procs: int, out: str) -> dict:
    """One streamed sampling command: wall seconds and peak RSS (MiB)."""
    shutil.rmtree(out, ignore_errors=True)
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
              if procs > 1 else [sys.executable])
    cmd = ["/usr/bin/time", "-v", *launch, "-m", "genrefine", "sample", "--model", model, "-n", str(n), "--out", out]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    wall = _time_field(run.stderr, r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)")
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss_kb = float(_time_field(run.stderr, r"Maximum resident set size \(kbytes\): (\d+)"))
    shutil.rmtree(out, ignore_errors=True)
    return {"n": n, "procs": procs, "seconds": seconds, "samples_per_second": n / seconds,
            "peak_rss_mib": rss_kb / 1024}


def _time_field(text: str, pattern: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"no {pattern!r} in /usr/bin/time's output")
    return m.group(1)


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "gpu": None}


def in_process_rates(models: str, names: list[str], n: int, repeats: int = 5) -> dict:
    """``{name: {raw, refined, ratio, ...}}`` samples per second of each saved refined generator
    and of its base, one thread, best of ``repeats`` alternating calls of ``sample(n)``."""
    import torch

    from genrefine.api import load_generator
    from genrefine.experiments.scoring import sampling_rates

    torch.set_num_threads(1)
    run = os.path.basename(os.path.dirname(os.path.abspath(models)))  # the run's directory names the set
    out = {}
    for name in names:
        gen = _latentrs(models) if name == "latentrs" else load_generator(os.path.join(models, name))
        if not hasattr(gen, "base"):
            continue
        rates = sampling_rates({"raw": gen.base, "refined": gen, "unsqueezed": _Unsqueezed(gen)}, n=n,
                               repeats=repeats)
        out[f"{run}/{name}"] = {**rates, "ratio": rates["refined"] / rates["raw"],
                                "unsqueezed_ratio": rates["unsqueezed"] / rates["raw"], "n": n, "repeats": repeats,
                                "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:])}
        print(name, json.dumps(out[f"{run}/{name}"]), flush=True)
    return out


class _Unsqueezed:
    """``gen`` sampled with every rejection step evaluating its network on every candidate (no
    tabulated bounds, :mod:`genrefine.samplers.squeeze`): the same samples, the cost before."""

    MODULES = ("genrefine.samplers.rejection", "genrefine.samplers.refiner_gan", "genrefine.refine")

    def __init__(self, gen) -> None:
        self.gen, self.device = gen, gen.device

    def sample(self, n: int):
        import importlib

        mods = [importlib.import_module(m) for m in self.MODULES]
        saved = [m.SQUEEZE_MIN_ROWS for m in mods]
        try:
            for m in mods:
                m.SQUEEZE_MIN_ROWS = 1 << 62
            return self.gen.sample(n)
        finally:
            for m, v in zip(mods, saved):
                m.SQUEEZE_MIN_ROWS = v


def chunk_rates(models: str, n: int, fixed: int = 50_000) -> dict:
    """Samples per second of the saved base in its measured chunks (``chunk_size``) against
    chunks of ``fixed`` rows (the size every generator used before), one thread, best of five
    alternating calls of ``sample(n)``."""
    import torch

    from genrefine.api import load_generator

    torch.set_num_threads(1)
    base = load_generator(os.path.join(models, "base"))
    best = {"measured": float("inf"), "fixed": float("inf")}
    for _ in range(5):
        for key, size in (("measured", None), ("fixed", fixed)):
            t0 = time.perf_counter()
            base.sample(n, batch_size=size)
            best[key] = min(best[key], time.perf_counter() - t0)
    run = os.path.basename(os.path.dirname(os.path.abspath(models)))
    rec = {"family": base.family, "chunk": base.chunk_size, "fixed_chunk": fixed, "n": n,
           "measured": n / best["measured"], "fixed": n / best["fixed"],
           "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:])}
    print(run, json.dumps(rec), flush=True)
    return {run: rec}


def _latentrs(models: str):
    """latentRS as a run makes it: the saved base and ``w_phi``, rejection under the probed bound."""
    import dataclasses

    from genrefine.api import load_generator, load_latent_importance
    from genrefine.refine import SampledGenerator
    from genrefine.samplers.rejection import LatentRejectionSampler, probe_bound

    base, w_phi = load_generator(os.path.join(models, "base")), load_latent_importance(os.path.join(models, "w_phi"))
    target = w_phi.target(base.prior)
    target = dataclasses.replace(target, bound=probe_bound(target, w_phi.m))
    return SampledGenerator(base, lambda: LatentRejectionSampler(target, progress=False), "latentrs")


def render(records: dict, docs: str) -> None:
    lines = ["# Streamed sampling: samples per second and peak memory", "",
             "Written by `benchmarks/throughput.py` (command per row in `docs/throughput.json`). Each row is one "
             "`genrefine sample --out DIR` command in a fresh process, start-up included, one torch thread per "
             "process; peak memory is the largest process's resident set (`/usr/bin/time`).", "",
             f"Machine: {records['machine']['cpu']}, {records['machine']['cores']} cores, no GPU.", "",
             "| model | n | processes | seconds | samples / s | ÷ raw (same n, processes) | peak MiB |",
             "|---|---|---|---|---|---|---|"]
    rows = records["rows"]
    raw = {(r["n"], r["procs"]): r["samples_per_second"] for r in rows.values() if r["model"] == "base"}
    for key in sorted(rows, key=lambda k: (rows[k]["model"] != "base", rows[k]["model"], rows[k]["n"],
                                           rows[k]["procs"])):
        r = rows[key]
        ratio = raw.get((r["n"], r["procs"]))
        vs_raw = f"{r['samples_per_second'] / ratio:.2f}" if ratio else "-"
        lines.append(f"| {r['model']} | {r['n']:.0e} | {r['procs']} | {r['seconds']:.1f} | "
                     f"{r['samples_per_second']:.3g} | {vs_raw} | {r['peak_rss_mib']:.0f} |")
    speedups = []
    for r in rows.values():
        one = rows.get(f"{r['model']}:{r['n']}:1")
        if r["procs"] == 2 and one:
            speedups.append(f"{r['model']} at n = {r['n']:.0e}: {r['samples_per_second'] / one['samples_per_second']:.2f}x")
    if speedups:
        lines += ["", "Two processes against one: " + "; ".join(sorted(speedups)) + "."]
    lines += _chunk_lines(records.get("chunks", {})) + _rate_lines(records.get("rates", {}))
    atomic_write_text(os.path.join(docs, "throughput.md"), "\n".join(lines) + "\n")


def _chunk_lines(chunks: dict) -> list[str]:
    if not chunks:
        return []
    head = ["", "## Chunk sizes", "",
            "`python benchmarks/throughput.py --chunks --models RUN/models`: the base's `sample(n)` in the "
            "chunks it measures for itself (its largest activation per chunk within 2 MiB on a CPU, "
            "`genrefine.nn.rows_per_chunk`) against the 50,000-row chunks every generator used before; one "
            "thread, best of five alternating calls.", "",
            "| run | family | n | chunk | samples / s | 50,000-row chunks: samples / s | speed-up |",
            "|---|---|---|---|---|---|---|"]
    return head + [f"| {name} | {r['family']} | {r['n']:.0e} | {r['chunk']} | {r['measured']:.3g} | "
                   f"{r['fixed']:.3g} | {r['measured'] / r['fixed']:.2f}x |" for name, r in sorted(chunks.items())]


def _rate_lines(rates: dict) -> list[str]:
    if not rates:
        return []
    head = ["", "## Refined against raw, in one process", "",
            "`python benchmarks/throughput.py --rates --models RUN/models --names laser,laser-flow,latentrs` (the "
            "command of each row is in `docs/throughput.json`): `sample(n)` of each refined generator and "
            "of its base, timed in turn in one process (no start-up), one thread, best of five (or of "
            "`--repeats`; the json says). The row "
            "names the run directory the models came from. *Without the squeeze*: the same refined "
            "generator, timed in the same turns, with its rejection steps evaluating their networks on "
            "every candidate (the same samples; `genrefine.samplers.squeeze`).", "",
            "| model | n | raw samples / s | refined samples / s | refined ÷ raw | without the squeeze ÷ raw |",
            "|---|---|---|---|---|---|"]
    return head + [f"| {name} | {r['n']:.0e} | {r['raw']:.3g} | {r['refined']:.3g} | {r['ratio']:.2f} | "
                   f"{r['unsqueezed_ratio']:.2f} |" if "unsqueezed_ratio" in r else
                   f"| {name} | {r['n']:.0e} | {r['raw']:.3g} | {r['refined']:.3g} | {r['ratio']:.2f} | - |"
                   for name, r in sorted(rates.items())]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="a run's models/ directory")
    ap.add_argument("--names", default="base,laser,laser-flow")
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--rates", action="store_true",
                    help="only the in-process rates of the refined models against their bases (no commands)")
    ap.add_argument("--rate-n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5, help="--rates: best of this many alternating calls")
    ap.add_argument("--chunks", action="store_true",
                    help="only the base's rate in its measured chunks against 50,000-row chunks")
    args = ap.parse_args()
    path = os.path.join(args.docs, "throughput.json")
    records = json.load(open(path)) if os.path.exists(path) else {"rows": {}}
    records["machine"] = machine()
    if args.chunks:
        records.setdefault("chunks", {}).update(chunk_rates(args.models, args.rate_n))
        atomic_write_text(path, json.dumps(records, indent=1))
        render(records, args.docs)
        return
    if args.rates:
        records.setdefault("rates", {}).update(in_process_rates(args.models, args.names.split(","), args.rate_n,
                                                                     args.repeats))
        atomic_write_text(path, json.dumps(records, indent=1))
        render(records, args.docs)
        return
    tmp = tempfile.mkdtemp(prefix="genrefine-throughput-")
    try:
        for name in args.names.split(","):
            for n in (int(float(s)) for s in args.sizes.split(",")):
                for procs in (int(p) for p in args.procs.split(",")):
                    rec = measure(os.path.join(args.models, name), n, procs, os.path.join(tmp, "out"))
                    rec.update(model=name, command=" ".join(sys.argv))
                    records["rows"][f"{name}:{n}:{procs}"] = rec
                    print(json.dumps(rec), flush=True)
                    atomic_write_text(path, json.dumps(records, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    render(records, args.docs)


if __name__ == "__main__":
    main()
