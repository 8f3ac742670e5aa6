"""What w_phi's fit costs, and what latentRS then delivers, on a saved Table 1 run's base.

    python benchmarks/wphi_cost.py --models runs/lrw/swissroll/models --patience 5 [--data swissroll]
    python benchmarks/wphi_cost.py --models runs/lrw/swissroll/models --patience 1000   # the game's 30 epochs
    python benchmarks/wphi_cost.py --models runs/lrw/swissroll/models --fit '{"epochs": 0}'   # any fit setting

One ``run_refinement`` of ``base,latentrs`` on the saved base and critic (quick preset, seed 0,
10 evaluations of 2000 points), with the game's ``patience`` set; prints one JSON line (the
fit's seconds, what w_phi kept, latentRS's and the base's EMD and precision) and appends it to
``--out`` (default ``docs/wphi_cost.json``). Run two settings side by side, one thread each, to
compare them under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from genrefine.api import load_critic, load_generator
from genrefine.checkpoint import atomic_write_text
from genrefine.pipeline import run_refinement


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="a Table 1 run's models/ directory (base, critic)")
    ap.add_argument("--data", default="swissroll")
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--fit", default="{}", help="further w_phi fit settings, as JSON")
    ap.add_argument("--hidden", type=int, default=None, help="w_phi's width (default: the preset's)")
    ap.add_argument("--out", default="docs/wphi_cost.json")
    args = ap.parse_args()
    base, critic = load_generator(os.path.join(args.models, "base")), load_critic(os.path.join(args.models, "critic"))
    res = run_refinement(args.data, methods=["base", "latentrs"], preset="quick", seed=0, n_samples=20000, out=None,
                         progress=False, base=base, critic=critic, scoring="lrw",
                         w_phi={"fit": {"patience": args.patience, **json.loads(args.fit)}},
                         overrides={"evaluation": {"n": 2000, "repeats": 10, "k": 3, "cost_n": 50_000}},
                         settings={"lrw": {"w_phi": {"hidden": args.hidden}}} if args.hidden else None)
    m, w = res.metrics, res.metrics["diagnostics"].get("w_phi", {})
    rec = {"data": args.data, "patience": args.patience, "fit": json.loads(args.fit), "hidden": args.hidden,
           "train_w_phi": m["timings_seconds"]["train_w_phi"],
           "source": w.get("source"), "best_epoch": w.get("best_epoch"), "confirmed": w.get("confirmed"),
           **{k: {s: m["scores"][k]["lrw"][s]["mean"] for s in ("emd", "precision")} for k in ("base", "latentrs")},
           "samples_per_second": m.get("samples_per_second"),
           "command": "python benchmarks/wphi_cost.py " + " ".join(sys.argv[1:])}
    print(json.dumps(rec))
    rows = json.load(open(args.out)) if os.path.exists(args.out) else []
    atomic_write_text(args.out, json.dumps(rows + [rec], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
