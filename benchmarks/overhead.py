"""What the run's safety checks and atomic output cost, against the whole quick-preset run.

    python benchmarks/overhead.py [--data gaussians4] [--methods base,dctr,rejection,hmc]

Runs ``run_refinement`` once with ``out`` set and times, inside that run, every piece that only
exists to keep results whole and checked: the data fingerprints of the run record, the run
directory's lock, staging and swap-in (``RunDirectory`` enter / commit / exit), the finite
check of every output, and the checks made before training. Writes ``docs/overhead.json``
with the command; the share is their sum over the run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import genrefine.experiments.run as run_module
from genrefine.checkpoint import atomic_write_text
from genrefine.experiments.rundir import RunDirectory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(owner, name: str, spent: dict, label: str) -> None:
    """Replace ``owner.name`` by a wrapper adding its seconds to ``spent[label]``."""
    fn = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0

    setattr(owner, name, wrapper)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="gaussians4")
    p.add_argument("--methods", default="base,dctr,rejection,hmc")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "overhead.json"))
    args = p.parse_args(argv)
    spent: dict[str, float] = {}
    _timed(run_module, "_record", spent, "run record (data fingerprints)")
    _timed(run_module, "check_finite_outputs", spent, "finite check of every output")
    _timed(run_module, "check_score_rows", spent, "checks before training")
    _timed(run_module, "check_memory", spent, "checks before training")
    _timed(RunDirectory, "__enter__", spent, "run directory: lock, ledger, staging")
    _timed(RunDirectory, "commit", spent, "run directory: swap-in of the outputs")
    _timed(RunDirectory, "__exit__", spent, "run directory: release")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_module.run_refinement(args.data, methods=args.methods, out=os.path.join(tmp, "run"), progress=False)
        wall = time.perf_counter() - t0
    total = sum(spent.values())
    out = {"command": " ".join(["python benchmarks/overhead.py", *(argv if argv is not None else sys.argv[1:])]),
           "data": args.data, "methods": args.methods, "preset": "quick", "wall_seconds": wall,
           "seconds": spent, "overhead_seconds": total, "overhead_share": total / wall}
    atomic_write_text(args.out, json.dumps(out, indent=2))
    for k, v in spent.items():
        print(f"{k:40s} {v:8.3f} s")
    print(f"{'all checks and atomic output':40s} {total:8.3f} s of {wall:.1f} s ({100 * total / wall:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
