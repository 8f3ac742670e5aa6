"""Adversarial edge cases against the ``genrefine`` CLI and Python API (issues #21 and #22).

Every case runs in a subprocess (``python -m genrefine.cli ...`` or a Python snippet), in its
own fresh temporary directory, with a timeout, and is classified:

- ``refused``: exit code 2 (CLI) / ValueError or TypeError (API, reported by the snippet
  wrapper as exit 2), exactly one ``error: ...`` line on stderr, no traceback, and nothing
  written (the case directory, listed and hashed before and after, is unchanged);
- ``ok``: a valid input (the control cases, and valid reruns) that ran and wrote a complete,
  finite run (metrics.json present) and left the user's files alone;
- ``traceback``: a traceback on stderr, or a crash (a signal, an exit code other than 0 / 2);
- ``silent_wrong``: exit 0 on a bad input (or non-finite / wrong-shaped outputs), or a
  refusal that still wrote something;
- ``hang``: the timeout was reached (the process group is killed);
- ``data_lost_or_mixed``: a file the run did not create was removed or changed, or a
  complete-looking run directory holds files of another run;
- ``bad_message``: exit 2 without a traceback, but not exactly one ``error:`` line.

Writes ``docs/edge_cases.json`` and prints the counts per outcome and every case that is
neither ``refused`` nor ``ok``. Tiny settings everywhere, one case at a time, one thread:

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/edge_cases.py [--only SUBSTRING] [--timeout 60]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_JSON = os.path.join(ROOT, "docs", "edge_cases.json")
CLI = [sys.executable, "-m", "genrefine.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
       "PYTHONWARNINGS": "ignore"}
IGNORED_NAMES = {"__pycache__"}
LOCK = ".genrefine.lock"  # its content (a pid) may change on any run: bookkeeping, not data

# ---- inputs ---------------------------------------------------------------------------------------

USER_FILE = textwrap.dedent("""
    import numpy as np
    import torch
    from torch import nn

    NOT_CALLABLE = 42

    def numpy_gen(z):
        return 1.5 * np.asarray(z)

    def simulator(z, rng):
        return 1.5 * np.asarray(z) + 0.1 * rng.normal(size=np.shape(z))

    def raises(z):
        raise RuntimeError("the user's model is broken")

    def exits(z):
        raise SystemExit(0)

    def too_few_rows(z):
        return np.asarray(z)[:-1]

    def nan_out(z):
        return np.full(np.shape(z), np.nan)

    def huge_out(z):              # float64 1e39: inf once cast to float32
        return np.full(np.shape(z), 1e39)

    def extra_column(z):
        z = np.asarray(z)
        return np.concatenate([z, z[:, :1]], axis=1)

    def one_d(z):
        return np.asarray(z)[:, 0]

    def returns_none(z):
        return None

    def strings_out(z):
        return np.full(np.shape(z), "a")

    class Widened(nn.Module):
        latent_dim = 2
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2, bias=False)
            with torch.no_grad():
                self.lin.weight.copy_(2 * torch.eye(2))
        def forward(self, z):
            return self.lin(z)

    class NoLatentAttr(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 4)
        def forward(self, z):
            return self.lin(z)
""")

# a realnvp base small enough to train in a second
TINY_BASE = ["base.epochs=1", "base.transforms=1", "base.hidden=[8]", "base.batch_size=500"]
TINY_CLF = ["classifier.epochs=1", "classifier.hidden=8", "classifier.layers=1", "classifier.calibrate_cells=0"]


def sets(items) -> list[str]:
    return [a for s in items for a in ("--set", s)]


TINY = sets(TINY_BASE + TINY_CLF)
FAST = ["--methods", "base,dctr", "--n-samples", "200", "--quiet", *TINY]  # what a bad case runs if not refused
USER = ["--base", "python:mymodel.py:numpy_gen", "--latent-dim", "2"]


def common_inputs(d: str) -> None:
    """Files every case may use: the user's model file and small data sets."""
    with open(os.path.join(d, "mymodel.py"), "w") as fh:
        fh.write(USER_FILE)
    rng = np.random.default_rng(0)
    np.save(os.path.join(d, "d2.npy"), (rng.standard_normal((600, 2)) + [1.0, 0.0]).astype(np.float32))
    np.save(os.path.join(d, "d2b.npy"), (3 * rng.standard_normal((600, 2)) - 2).astype(np.float32))  # other data
    np.save(os.path.join(d, "d4.npy"), rng.standard_normal((400, 4)).astype(np.float32))


def bad_data_files(d: str) -> None:
    good = np.ones((50, 2))
    nan = good.copy(); nan[3, 1] = np.nan
    inf = good.copy(); inf[0, 0] = np.inf
    np.save(os.path.join(d, "nan.npy"), nan)
    np.save(os.path.join(d, "inf.npy"), inf)
    np.save(os.path.join(d, "oned.npy"), np.ones(50))
    np.save(os.path.join(d, "empty.npy"), np.zeros((0, 2)))
    np.save(os.path.join(d, "three_rows.npy"), np.random.default_rng(0).standard_normal((3, 2)))
    np.save(os.path.join(d, "zero_cols.npy"), np.zeros((50, 0)))
    np.save(os.path.join(d, "strings.npy"), np.array([["a", "b"], ["c", "d"]]))
    np.save(os.path.join(d, "objects.npy"), np.array([[1, None]] * 20, dtype=object), allow_pickle=True)
    np.save(os.path.join(d, "complex.npy"), np.ones((50, 2), dtype=complex))
    np.save(os.path.join(d, "fivedim.npy"), np.ones((20, 2, 2, 2, 2)))
    np.save(os.path.join(d, "huge_vals.npy"), np.full((50, 2), 1e39))  # float64, inf in float32
    np.save(os.path.join(d, "const.npy"), np.ones((200, 2)))
    full = os.path.join(d, "full.npy")
    np.save(full, np.random.default_rng(0).standard_normal((200, 2)))
    raw = open(full, "rb").read()
    with open(os.path.join(d, "truncated.npy"), "wb") as fh:
        fh.write(raw[: len(raw) // 2])
    os.remove(full)
    with open(os.path.join(d, "corrupt.npy"), "wb") as fh:
        fh.write(b"\x93NUMPY garbage that is not an array")
    for name, text in (("ragged.csv", "1,2\n3\n4,5,6\n"), ("cell.csv", "1,2\n3,abc\n5,6\n"), ("empty.csv", ""),
                       ("header_only.csv", "x,y\n"), ("nan.csv", "1,2\nnan,3\n4,5\n")):
        with open(os.path.join(d, name), "w") as fh:
            fh.write(text)
    np.savez(os.path.join(d, "k.npz"), a=np.ones((50, 2)))
    os.mkdir(os.path.join(d, "adir.npy"))
    os.mkfifo(os.path.join(d, "x.npy"))
    os.symlink("loop_b.npy", os.path.join(d, "loop_a.npy"))
    os.symlink("loop_a.npy", os.path.join(d, "loop_b.npy"))
    with open(os.path.join(d, "binary.csv"), "wb") as fh:
        fh.write(bytes(range(256)) * 4)


def write_json(d: str, name: str, obj=None, text: str | None = None) -> None:
    with open(os.path.join(d, name), "w") as fh:
        fh.write(text if text is not None else json.dumps(obj))


def safetensors_layout(path: str) -> tuple[int, dict]:
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
    return 8 + n, header


def corrupt_safetensors(path: str, how: str) -> None:
    """Flip payload bytes, write NaN / a huge value into a float tensor, or truncate."""
    start, header = safetensors_layout(path)
    data = bytearray(open(path, "rb").read())
    tensors = [(k, v) for k, v in header.items() if k != "__metadata__" and v.get("dtype") == "F32"]
    name, info = max(tensors, key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])
    b, e = (start + o for o in info["data_offsets"])
    if how == "flip":
        for i in range(b, min(e, b + 64)):
            data[i] ^= 0xFF
    elif how == "nan":
        data[b:e] = struct.pack("<f", float("nan")) * ((e - b) // 4)
    elif how == "huge":
        data[b:e] = struct.pack("<f", 1e30) * ((e - b) // 4)
    elif how == "truncate":
        data = data[: start + (len(data) - start) // 2]
    with open(path, "wb") as fh:
        fh.write(bytes(data))


def make_immutable(path: str) -> None:
    """A directory that not even root may write into (chattr +i); undone before cleanup."""
    subprocess.run(["chattr", "+i", path], check=True, capture_output=True)


def undo_immutable(root: str) -> None:
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                subprocess.run(["chattr", "-i", p], capture_output=True)
    subprocess.run(["chattr", "-i", root], capture_output=True)


# ---- snapshots ------------------------------------------------------------------------------------

def snapshot(root: str) -> dict[str, str]:
    """Relative path -> sha256 (or 'dir', 'fifo', 'link:target') of everything under ``root``."""
    found = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in IGNORED_NAMES]
        rel_dir = os.path.relpath(dirpath, root)
        for n in dirs:
            p = os.path.join(dirpath, n)
            found[os.path.normpath(os.path.join(rel_dir, n))] = "link:" + os.readlink(p) if os.path.islink(p) else "dir"
        for n in files:
            p = os.path.join(dirpath, n)
            rel = os.path.normpath(os.path.join(rel_dir, n))
            if os.path.islink(p):
                found[rel] = "link:" + os.readlink(p)
            elif not os.path.isfile(p):
                found[rel] = "special"
            elif n == LOCK:
                found[rel] = "lock"
            else:
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                found[rel] = h.hexdigest()
    return found


def diff(before: dict, after: dict, protected: Callable[[str], bool]) -> tuple[list, list, list]:
    """(removed or changed protected paths, new paths, other changed paths)."""
    lost = [p for p in before if protected(p) and after.get(p) != before[p]]
    new = sorted(p for p in after if p not in before)
    changed = [p for p in before if not protected(p) and after.get(p) != before[p]]
    return lost, new, changed


# ---- output checks --------------------------------------------------------------------------------

def check_run_dir(out: str, n_samples: int | None = None) -> list[str]:
    """Problems of a run directory that says it is complete: non-finite scores or samples,
    wrong shapes, files the manifest does not list (another run's), methods' files missing."""
    problems = []
    try:
        metrics = json.load(open(os.path.join(out, "metrics.json")))
    except (OSError, ValueError) as exc:
        return [f"metrics.json unreadable: {exc}"]
    methods = metrics.get("methods") or list(metrics.get("scores", {}))
    for m, sc in (metrics.get("scores") or {}).items():
        for k, v in (sc or {}).items():
            if isinstance(v, dict) and isinstance(v.get("value"), float) and not math.isfinite(v["value"]):
                problems.append(f"score {m}.{k} = {v['value']}")
    dim = metrics.get("dim")
    for sub in ("samples", "latents"):
        d = os.path.join(out, sub)
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            stem = f[:-4]
            owner = stem[: -len("_weights")] if stem.endswith("_weights") else stem
            if owner not in methods:
                problems.append(f"{sub}/{f} beside a metrics.json of methods {methods}")
                continue
            try:
                a = np.load(os.path.join(d, f))
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{sub}/{f} unreadable: {exc}")
                continue
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                problems.append(f"{sub}/{f} holds NaN/inf")
            if n_samples and sub == "samples" and not stem.endswith("_weights") and len(a) != n_samples:
                problems.append(f"{sub}/{f} has {len(a)} rows, asked {n_samples}")
            if sub == "samples" and dim and not stem.endswith("_weights") and a.ndim == 2 and a.shape[1] != dim:
                problems.append(f"{sub}/{f} rows of {a.shape[1]} values, data is {dim}-D")
    for m in methods:
        if not os.path.exists(os.path.join(out, "samples", f"{m}.npy")) and m in ("base", "rejection"):
            problems.append(f"samples/{m}.npy missing")
    try:
        ledger = json.load(open(os.path.join(out, "run.json")))
        listed = {f.rstrip("/") for f in ledger["outputs"]["files"]}
        for sub in ("samples", "latents", "models", "figures"):
            d = os.path.join(out, sub)
            for dirpath, _, files in os.walk(d):
                for f in files:
                    rel = os.path.relpath(os.path.join(dirpath, f), out).replace(os.sep, "/")
                    if rel not in listed:
                        problems.append(f"{rel} not in run.json's manifest (another run's file)")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"run.json unreadable or without a manifest: {exc}")
    if methods == ["base"] and os.path.isdir(os.path.join(out, "models", "classifier")):
        problems.append("models/classifier beside a base-only metrics.json")
    return problems


# ---- cases ----------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    group: str
    cmd: list[str] | None = None           # CLI arguments after ``genrefine``
    snippet: str | None = None              # Python API snippet (sets RESULT = {...} on success)
    setup: Callable[[str], None] | None = None
    expect: str = "refuse"                  # refuse | ok (a valid input)
    out: str | None = None                  # run directory (relative) checked on exit 0
    n_samples: int | None = None
    protect: Callable[[str], bool] | None = None  # pre-existing paths that must survive (default: all)
    run: Callable | None = None              # custom runner (concurrent runs)
    fixture: bool = False                    # copy the fixture run into ./run first
    notes: list = field(default_factory=list)


API_PRELUDE = textwrap.dedent("""
    import json, sys, traceback, warnings
    warnings.simplefilter("ignore")
    sys.path.insert(0, ".")
    import numpy as np
    import torch
    import genrefine
    from genrefine.weights.classifier import DensityRatioClassifier
    from genrefine.generators import RealNVPGenerator
    import mymodel
    x2 = np.load("d2.npy"); x4 = np.load("d4.npy")
    TINY = {"classifier": {"hidden": 8, "layers": 1, "epochs": 1, "calibrate_cells": 0}}
    def finite(t):
        return bool(np.isfinite(np.asarray(t.detach().cpu() if hasattr(t, "detach") else t, dtype=float)).all())
    RESULT = {}
    try:
        exec(compile(open("snippet.py").read(), "snippet.py", "exec"))
    except (ValueError, TypeError) as exc:
        sys.stderr.write("error: " + " ".join(f"{type(exc).__name__}: {exc}".split()) + "\\n")
        sys.exit(2)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    print("RESULT=" + json.dumps(RESULT, default=str))
""")


def cli(name, group, args, **kw) -> Case:
    return Case(name, group, cmd=args, **kw)


def api(name, snippet, **kw) -> Case:
    return Case(name, "api", snippet=textwrap.dedent(snippet).strip(), **kw)


def build_cases() -> list[Case]:
    C: list[Case] = []
    add = C.append

    # --- controls -----------------------------------------------------------------------------------
    add(cli("control_cli_user_numpy_fn", "control",
            ["refine", "--data", "d2.npy", *USER, "--methods", "base,dctr,rejection", "--n-samples", "200",
             "--out", "o", "--quiet", *sets(TINY_CLF)], expect="ok", out="o", n_samples=200))
    add(api("control_api_compare", """
        rep = genrefine.compare(mymodel.numpy_gen, x2, methods=["rejection"], latent_dim=2, settings=TINY,
                                n_samples=200, progress=False)
        s = {m: {k: v.value for k, v in sc.items()} for m, sc in rep.scores.items()}
        ok = all(np.isfinite(v) for sc in s.values() for v in sc.values()) and rep.recommended in rep.methods
        x = rep.generators[rep.recommended].sample(50)
        RESULT = {"ok": ok and tuple(x.shape) == (50, 2) and finite(x), "recommended": rep.recommended}
    """, expect="ok"))
    add(cli("control_sample_saved_model", "control",
            ["sample", "--model", "run/models/base", "--n", "50", "--out", "s.npy"], expect="ok", fixture=True))

    # --- bad data files -----------------------------------------------------------------------------
    for f in ("nan.npy", "inf.npy", "oned.npy", "empty.npy", "three_rows.npy", "zero_cols.npy", "strings.npy",
              "huge_vals.npy", "truncated.npy", "corrupt.npy", "ragged.csv", "cell.csv", "empty.csv",
              "header_only.csv", "nan.csv", "adir.npy", "missing.npy", "x.npy", "loop_a.npy"):
        label = {"x.npy": "fifo_x.npy", "adir.npy": "directory.npy", "loop_a.npy": "symlink_loop"}.get(f, f)
        add(cli(f"data_{label}", "data", ["refine", "--data", f, "--out", "o", *FAST], setup=bad_data_files))
    add(cli("data_npz_missing_key", "data", ["refine", "--data", "k.npz", "--key", "b", "--out", "o", *FAST],
            setup=bad_data_files))
    add(cli("data_unknown_builtin", "data", ["refine", "--data", "not_a_set", "--out", "o", *FAST]))
    add(cli("data_width_vs_user_model", "data",
            ["refine", "--data", "d4.npy", *USER, "--out", "o", *FAST]))  # model makes 2-D, data is 4-D

    # --- --out ---------------------------------------------------------------------------------------
    def out_file(d):
        write_json(d, "afile", text="the user's file")

    def out_ro(d):
        os.mkdir(os.path.join(d, "ro"))
        make_immutable(os.path.join(d, "ro"))

    def out_foreign(d):
        os.mkdir(os.path.join(d, "mine"))
        write_json(d, "mine/thesis.txt", text="a user's own file")

    add(cli("out_is_a_file", "out", ["refine", "--data", "d2.npy", "--out", "afile", *FAST], setup=out_file))
    add(cli("out_unwritable_parent", "out", ["refine", "--data", "d2.npy", "--out", "ro/o", *FAST], setup=out_ro))
    add(cli("out_unwritable_dir", "out", ["refine", "--data", "d2.npy", "--out", "ro", *FAST], setup=out_ro))
    add(cli("out_empty_string", "out", ["refine", "--data", "d2.npy", "--out", "", *FAST]))
    add(cli("out_under_a_file", "out", ["refine", "--data", "d2.npy", "--out", "afile/sub", *FAST], setup=out_file))
    add(cli("out_dir_with_users_files", "out", ["refine", "--data", "d2.npy", "--out", "mine", *FAST],
            setup=out_foreign))

    # --- --device / --n-samples / --iterations -------------------------------------------------------
    for dev in ("gpu", "mps", "meta", "cuda:7", "cuda"):
        add(cli(f"device_{dev or 'empty'}", "device",
                ["refine", "--data", "d2.npy", "--device", dev, "--out", "o", *FAST]))
    add(cli("sample_device_meta", "device", ["sample", "--model", "run/models/base", "--n", "10", "--device", "meta",
                                             "--out", "s.npy"], fixture=True))
    base_fast = [a for a in FAST if a not in ("--n-samples", "200")]
    for n in ("1", "1e12", "-5", "0", "1000000000000", "2.5"):
        add(cli(f"n_samples_{n}", "n-samples",
                ["refine", "--data", "d2.npy", "--n-samples", n, "--out", "o", *base_fast]))
    add(cli("iterations_0", "n-samples", ["refine", "--data", "d2.npy", "--iterations", "0", "--out", "o", *FAST]))
    add(cli("holdout_1", "n-samples", ["refine", "--data", "d2.npy", "--holdout", "1", "--out", "o", *FAST]))

    # --- config files --------------------------------------------------------------------------------
    # the tiny settings live in the file too (a --set would be laid over the bad value)
    tiny = {"base": {"epochs": 1, "transforms": 1, "hidden": [8], "batch_size": 500},
            "classifier": {"epochs": 1, "hidden": 8, "layers": 1, "calibrate_cells": 0}}

    def over(bad: dict) -> str:
        merged = json.loads(json.dumps(tiny))
        for k, v in bad.items():
            merged[k] = {**merged[k], **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
        return json.dumps(merged)

    configs = {
        "list": "[1, 2]",
        "unknown_section": over({"nosuch": {"x": 1}}),
        "unknown_key": over({"classifier": {"nope": 1}}),
        "wrong_type": over({"classifier": {"epochs": "ten"}}),
        "section_not_object": over({"classifier": 5}),
        "negative_size": over({"classifier": {"hidden": -4}}),
        "negative_transforms": over({"base": {"transforms": -1}}),
        "nan_lr": over({"classifier": {"lr": 0.5}}).replace("0.5", "NaN"),
        "deep_nesting_50": over({"classifier": {"epochs": json.loads("[" * 50 + "]" * 50)}}),
        "deep_nesting_100k": "[" * 100_000 + "]" * 100_000,
        "huge_transforms": over({"base": {"transforms": 200_000}}),
        "huge_hidden": over({"classifier": {"hidden": 10 ** 7}}),
        "huge_epochs": over({"classifier": {"epochs": 10 ** 12}}),
        "huge_int_overflow": over({"classifier": {"epochs": 10 ** 400}}),
        "not_json": "{classifier: epochs=3",
    }
    cfg_args = ["refine", "--data", "d2.npy", "--config", "cfg.json", "--out", "o", "--methods", "base,dctr",
                "--n-samples", "200", "--quiet"]
    for label, text in configs.items():
        add(cli(f"config_{label}", "config", cfg_args, setup=lambda d, t=text: write_json(d, "cfg.json", text=t)))
    add(cli("config_is_directory", "config", ["refine", "--data", "d2.npy", "--config", "cfgdir", "--out", "o", *FAST],
            setup=lambda d: os.mkdir(os.path.join(d, "cfgdir"))))
    add(cli("config_missing", "config", ["refine", "--data", "d2.npy", "--config", "none.json", "--out", "o", *FAST]))

    # --- --set ---------------------------------------------------------------------------------------
    for s in ("classifier", "classifier.epochs", "classifier.epochs=", ".epochs=3", "classifier.epochs=[",
              "classifier.lr=nan", "classifier.epochs=1e3", "hmc.burn_in=abc",
              "classifier.epochs=99999999999999999999999"):
        valid = s == "classifier.epochs=1e3"  # a whole number written as a float: fine to take
        add(cli(f"set_{s}", "set", ["refine", "--data", "d2.npy", "--out", "o", *FAST, "--set", s],
                **(dict(expect="ok", out="o", n_samples=200) if valid else {})))

    # --- python: base front door ---------------------------------------------------------------------
    def syntax_file(d):
        write_json(d, "broken.py", text="def f(z):\n    return z +\n")
        write_json(d, "boom.py", text="raise RuntimeError('import-time failure')\n")
        write_json(d, "exits.py", text="import sys\nsys.exit(3)\n")

    for label, target, extra in (
            ("file_missing", "python:nosuch.py:g", ["--latent-dim", "2"]),
            ("name_missing", "python:mymodel.py:nope", ["--latent-dim", "2"]),
            ("name_not_callable", "python:mymodel.py:NOT_CALLABLE", ["--latent-dim", "2"]),
            ("syntax_error", "python:broken.py:f", ["--latent-dim", "2"]),
            ("import_raises", "python:boom.py:f", ["--latent-dim", "2"]),
            ("import_sys_exit", "python:exits.py:f", ["--latent-dim", "2"]),
            ("callable_raises", "python:mymodel.py:raises", ["--latent-dim", "2"]),
            ("callable_sys_exit", "python:mymodel.py:exits", ["--latent-dim", "2"]),
            ("too_few_rows", "python:mymodel.py:too_few_rows", ["--latent-dim", "2"]),
            ("returns_nan", "python:mymodel.py:nan_out", ["--latent-dim", "2"]),
            ("returns_1e39", "python:mymodel.py:huge_out", ["--latent-dim", "2"]),
            ("returns_1d", "python:mymodel.py:one_d", ["--latent-dim", "2"]),
            ("returns_none", "python:mymodel.py:returns_none", ["--latent-dim", "2"]),
            ("other_dim_than_data", "python:mymodel.py:extra_column", ["--latent-dim", "2"]),
            ("latent_dim_0", "python:mymodel.py:numpy_gen", ["--latent-dim", "0"]),
            ("latent_dim_-1", "python:mymodel.py:numpy_gen", ["--latent-dim", "-1"]),
            ("latent_dim_mismatch_module", "python:mymodel.py:Widened", ["--latent-dim", "3"]),
            ("latent_dim_mismatch_fn", "python:mymodel.py:numpy_gen", ["--latent-dim", "3"]),
            ("latent_dim_missing", "python:mymodel.py:NoLatentAttr", []),
            ("module_wrong_input_dim", "python:mymodel.py:NoLatentAttr", ["--latent-dim", "3"]),
            ("hmc_on_numpy_fn", "python:mymodel.py:numpy_gen", ["--latent-dim", "2", "--methods", "base,hmc"]),
            # a simulator's weights pulled back to z are not a function of z: refused where a method needs that
            ("simulator_sir_dctr", "python:mymodel.py:simulator", ["--latent-dim", "2", "--methods",
                                                                    "base,sir-dctr"]),
            ("simulator_hmc", "python:mymodel.py:simulator", ["--latent-dim", "2", "--methods", "base,hmc"]),
            ("base_model_missing", "python:mymodel.py:numpy_gen", ["--latent-dim", "2", "--base-model", "nodir"]),
    ):
        fast = [a for a in FAST] if "--methods" not in extra else [a for a in FAST if a not in ("--methods", "base,dctr")]
        add(cli(f"base_{label}", "front-door",
                ["refine", "--data", "d2.npy", "--base", target, *extra, "--out", "o", *fast], setup=syntax_file))

    # --- resume and reruns into an existing run directory --------------------------------------------
    run_args = ["refine", "--data", "d2.npy", "--out", "run", "--n-samples", "200", "--quiet", *TINY]
    add(cli("resume_other_data", "rundir",
            ["refine", "--data", "d2b.npy", "--out", "run", "--n-samples", "200", "--quiet", *TINY,
             "--methods", "base,dctr,rejection", "--resume"], fixture=True))
    add(cli("resume_other_shape", "rundir",
            run_args[:-len(TINY)] + sets(["base.epochs=1", "base.transforms=2", "base.hidden=[16]"] + TINY_CLF)
            + ["--methods", "base,dctr,rejection", "--resume"], fixture=True))
    add(cli("resume_other_methods_seed", "rundir",
            run_args + ["--methods", "base,dctr", "--seed", "7", "--resume"], fixture=True))

    def truncate_ckpt(d):
        ck = os.path.join(d, "run", "checkpoints")
        for f in sorted(os.listdir(ck)):
            if f.endswith(".safetensors"):
                corrupt_safetensors(os.path.join(ck, f), "truncate")

    add(cli("resume_truncated_checkpoint", "rundir", run_args + ["--methods", "base,dctr,rejection", "--resume"],
            fixture=True, setup=truncate_ckpt))
    add(cli("resume_on_users_dir", "rundir",
            ["refine", "--data", "d2.npy", "--out", "mine", *FAST, "--resume"], setup=out_foreign))
    add(cli("rerun_fewer_methods", "rundir", run_args + ["--methods", "base"], fixture=True, expect="ok", out="run",
            n_samples=200, protect=lambda p: False))

    add(cli("rerun_users_file_beside_run", "rundir", run_args + ["--methods", "base"], fixture=True, expect="ok",
            out="run", n_samples=200, setup=lambda d: write_json(d, "run/notes.txt", text="the user's notes"),
            protect=lambda p: p == "run/notes.txt"))
    add(cli("rerun_users_file_in_checkpoints", "rundir", run_args + ["--methods", "base"], fixture=True, expect="ok",
            out="run", n_samples=200, setup=lambda d: write_json(d, "run/checkpoints/mine.txt", text="the user's"),
            protect=lambda p: p == "run/checkpoints/mine.txt"))
    add(Case("two_runs_one_out_at_once", "rundir", cmd=run_args + ["--methods", "base,dctr"], run=run_concurrent,
             expect="ok", out="run", n_samples=200))

    # --- genrefine sample ----------------------------------------------------------------------------
    smp = ["sample", "--model", "run/models/base", "--n", "50"]

    def ckpt(how):
        return lambda d: corrupt_safetensors(os.path.join(d, "run", "models", "base", "model.safetensors"), how)

    def rm_ckpt(d):
        os.remove(os.path.join(d, "run", "models", "base", "model.safetensors"))

    def bad_config(d):
        write_json(d, "run/models/base/config.json", text="{not json")

    def other_family(d):
        p = os.path.join(d, "run", "models", "base", "config.json")
        cfg = json.load(open(p))
        cfg["family"] = "os.system"
        write_json(d, "run/models/base/config.json", cfg)

    def bigger_config(d):
        p = os.path.join(d, "run", "models", "base", "config.json")
        cfg = json.load(open(p))
        txt = json.dumps(cfg).replace('"transforms": 1', '"transforms": 2')
        write_json(d, "run/models/base/config.json", text=txt)

    add(cli("sample_model_missing", "sample", ["sample", "--model", "nodir", "--n", "10", "--out", "s.npy"]))
    add(cli("sample_checkpoint_missing", "sample", smp + ["--out", "s.npy"], fixture=True, setup=rm_ckpt))
    add(cli("sample_payload_flipped", "sample", smp + ["--out", "s.npy"], fixture=True, setup=ckpt("flip")))
    add(cli("sample_payload_nan", "sample", smp + ["--out", "s.npy"], fixture=True, setup=ckpt("nan")))
    add(cli("sample_payload_1e30", "sample", smp + ["--out", "s.npy"], fixture=True, setup=ckpt("huge")))
    add(cli("sample_checkpoint_truncated", "sample", smp + ["--out", "s.npy"], fixture=True, setup=ckpt("truncate")))
    add(cli("sample_config_not_json", "sample", smp + ["--out", "s.npy"], fixture=True, setup=bad_config))
    add(cli("sample_config_other_family", "sample", smp + ["--out", "s.npy"], fixture=True, setup=other_family))
    add(cli("sample_config_other_shape", "sample", smp + ["--out", "s.npy"], fixture=True, setup=bigger_config))
    add(cli("sample_out_is_directory", "sample", smp + ["--out", "run"], fixture=True))
    add(cli("sample_out_unwritable", "sample", smp + ["--out", "ro/s.npy"], fixture=True, setup=out_ro))
    add(cli("sample_n_1e12_int", "sample", ["sample", "--model", "run/models/base", "--n", "1000000000000",
                                            "--out", "s.npy"], fixture=True))
    add(cli("sample_classifier_as_generator", "sample", ["sample", "--model", "run/models/classifier", "--n", "10",
                                                        "--out", "s.npy"], fixture=True))

    # --- Python API ----------------------------------------------------------------------------------
    add(api("api_refine_wrong_width", """
        g = genrefine.refine(mymodel.numpy_gen, x4, "rejection", latent_dim=2, settings=TINY, progress=False)
        RESULT = {"shape": list(g.sample(10).shape)}"""))
    add(api("api_compare_wrong_width", """
        r = genrefine.compare(mymodel.numpy_gen, x4, methods=["rejection"], latent_dim=2, settings=TINY,
                              n_samples=200, progress=False)
        RESULT = {"recommended": r.recommended}"""))
    add(api("api_refine_nan_data", """
        x = x2.copy(); x[5, 0] = np.nan
        g = genrefine.refine(mymodel.numpy_gen, x, "rejection", latent_dim=2, settings=TINY, progress=False)
        RESULT = {"finite": finite(g.sample(10))}"""))
    add(api("api_compare_nan_data", """
        x = x2.copy(); x[5, 0] = np.inf
        r = genrefine.compare(mymodel.numpy_gen, x, methods=["rejection"], latent_dim=2, settings=TINY,
                              n_samples=200, progress=False)
        RESULT = {"recommended": r.recommended}"""))
    add(api("api_refine_unknown_method", """
        g = genrefine.refine(mymodel.numpy_gen, x2, "nope", latent_dim=2, settings=TINY, progress=False)"""))
    add(api("api_refine_hmc_numpy_fn", """
        g = genrefine.refine(mymodel.numpy_gen, x2, "hmc", latent_dim=2, settings=TINY, progress=False)
        RESULT = {"finite": finite(g.sample(10))}"""))
    add(api("api_compare_hmc_numpy_fn", """
        r = genrefine.compare(mymodel.numpy_gen, x2, methods=["hmc"], latent_dim=2, settings=TINY, n_samples=200,
                              progress=False)
        RESULT = {"methods": r.methods}"""))
    add(api("api_refine_method_param_negative", """
        g = genrefine.refine(mymodel.numpy_gen, x2, "laser", latent_dim=2, settings=TINY, progress=False, epochs=-1)
        RESULT = {"finite": finite(g.sample(10))}"""))
    add(api("api_refine_method_param_unknown", """
        g = genrefine.refine(mymodel.numpy_gen, x2, "rejection", latent_dim=2, settings=TINY, progress=False,
                             nosuch=3)"""))
    add(api("api_compare_n_samples_0", """
        r = genrefine.compare(mymodel.numpy_gen, x2, methods=["rejection"], latent_dim=2, settings=TINY,
                              n_samples=0, progress=False)"""))
    add(api("api_compare_holdout_1.5", """
        r = genrefine.compare(mymodel.numpy_gen, x2, methods=["rejection"], latent_dim=2, settings=TINY,
                              n_samples=200, holdout=1.5, progress=False)"""))
    add(api("api_compare_settings_bad", """
        r = genrefine.compare(mymodel.numpy_gen, x2, methods=["rejection"], latent_dim=2, n_samples=200,
                              settings={"classifier": {"epochs": -1}}, progress=False)"""))
    add(api("api_as_generator_latent_0", """
        g = genrefine.as_generator(mymodel.numpy_gen, latent_dim=0)
        RESULT = {"shape": list(g.sample(5).shape)}"""))
    add(api("api_as_generator_latent_-1", """
        g = genrefine.as_generator(mymodel.numpy_gen, latent_dim=-1)
        RESULT = {"shape": list(g.sample(5).shape)}"""))
    add(api("api_as_generator_not_callable", """
        g = genrefine.as_generator(42, latent_dim=2)"""))
    add(api("api_run_refinement_out_empty", """
        from genrefine.pipeline import run_refinement
        res = run_refinement(x2, methods="base", base=genrefine.as_generator(mymodel.numpy_gen, latent_dim=2),
                             n_samples=200, out="", progress=False, settings=TINY)
        RESULT = {"metrics": bool(res.metrics)}"""))
    fit_data = "gen = np.random.default_rng(1).standard_normal((600, 2)).astype(np.float32)"
    for label, kw in (("epochs_-1", "epochs=-1"), ("epochs_2.5", "epochs=2.5"), ("batch_size_0", "batch_size=0"),
                      ("lr_1e6", "lr=1e6"), ("lr_nan", "lr=float('nan')")):
        # lr cases: 20 epochs of 6 batches, room to diverge
        base_kw = "dict(epochs=20, batch_size=100)" if label.startswith("lr") else "dict(epochs=2)"
        add(api(f"api_classifier_fit_{label}", f"""
            {fit_data}
            kw = {base_kw}; kw.update({kw})
            c = DensityRatioClassifier(2, hidden=8, layers=2).fit(x2, gen, progress=False, **kw)
            w = c.weight(torch.as_tensor(gen))
            h = getattr(c, "history_", None) or []
            RESULT = {{"weights_finite": finite(w), "epochs_run": len(h), "last": str(h[-1] if h else None)[:120]}}"""))
        add(api(f"api_realnvp_fit_{label}", f"""
            kw = {base_kw}; kw.update({kw})
            g = RealNVPGenerator(2, transforms=1, hidden=[8]).fit(x2, progress=False, **kw)
            h = getattr(g, "history_", None) or []
            RESULT = {{"samples_finite": finite(g.sample(100)), "epochs_run": len(h),
                      "last": str(h[-1] if h else None)[:120]}}"""))
    for n in ("2.5", "-1", "float('nan')"):
        add(api(f"api_sample_{n}", f"""
            g = RealNVPGenerator(2, transforms=1, hidden=[8])
            s = g.sample({n})
            RESULT = {{"shape": list(s.shape)}}"""))
        add(api(f"api_adapter_sample_{n}", f"""
            g = genrefine.as_generator(mymodel.numpy_gen, latent_dim=2)
            s = g.sample({n})
            RESULT = {{"shape": list(s.shape)}}"""))
    for label, ctor in (("realnvp_dim_0", "RealNVPGenerator(0)"), ("realnvp_transforms_0", "RealNVPGenerator(2, transforms=0)"),
                        ("realnvp_hidden_0", "RealNVPGenerator(2, hidden=[0])"),
                        ("classifier_dim_0", "DensityRatioClassifier(0)"),
                        ("classifier_hidden_0", "DensityRatioClassifier(2, hidden=0)"),
                        ("classifier_layers_-1", "DensityRatioClassifier(2, layers=-1)")):
        add(api(f"api_build_{label}", f"""
            m = {ctor}
            RESULT = {{"built": type(m).__name__}}"""))
    return C


# ---- running --------------------------------------------------------------------------------------

def run_proc(argv, cwd, timeout, env=ENV):
    """(rc or None on timeout, stdout, stderr, seconds); the whole process group is killed on timeout."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = None
    return rc, out, err, time.perf_counter() - t0


def run_concurrent(case: Case, d: str, timeout: float) -> dict:
    """Two runs into one --out: the second starts while the first trains (a longer base fit)."""
    slow = [a if a != "base.epochs=1" else "base.epochs=40" for a in case.cmd]
    t0 = time.perf_counter()
    kw = dict(cwd=d, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
              start_new_session=True)
    a = subprocess.Popen(CLI + slow, **kw)
    lock = os.path.join(d, "run", LOCK)
    while not os.path.exists(lock) and a.poll() is None and time.perf_counter() - t0 < timeout / 2:
        time.sleep(0.05)
    time.sleep(0.5)
    b = subprocess.Popen(CLI + [x if x != "base,dctr" else "base,dctr,rejection" for x in case.cmd], **kw)
    res = {}
    for tag, p in (("a", a), ("b", b)):
        try:
            out, err = p.communicate(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
            res[tag] = (p.returncode, out, err)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            res[tag] = (None, out, err)
    return {"res": res, "seconds": time.perf_counter() - t0}


def first_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    if any(ln.startswith("Traceback") for ln in lines):
        return lines[-1][:300]  # the exception itself
    errs = [ln for ln in lines if ln.startswith("error:")]
    return (errs[0] if errs else lines[0])[:300]


def classify_stderr(rc, err) -> tuple[str, str]:
    """An outcome from the exit code and stderr alone, or '' when the files decide."""
    if rc is None:
        return "hang", "timeout"
    if "Traceback (most recent call last)" in err:
        return "traceback", f"rc={rc}"
    if rc not in (0, 2):
        return "traceback", f"crashed without a traceback, rc={rc}"
    if rc == 2:
        errs = [ln for ln in err.splitlines() if ln.startswith("error:")]
        if len(errs) != 1:
            return "bad_message", f"{len(errs)} 'error:' lines"
    return "", ""


def read_jsons(d: str, snap: dict) -> dict:
    """The .json files of a snapshot, parsed (to say which keys a run changed)."""
    found = {}
    for p in snap:
        if p.endswith(".json") and os.path.isfile(os.path.join(d, p)):
            try:
                found[p] = json.load(open(os.path.join(d, p)))
            except (OSError, ValueError, RecursionError):
                pass
    return found


def json_changes(d: str, p: str, old) -> str:
    """``p`` and, for a JSON file still there, the top-level keys whose values changed."""
    if old is None or not os.path.isfile(os.path.join(d, p)):
        return p + (" (removed)" if not os.path.exists(os.path.join(d, p)) else "")
    try:
        new = json.load(open(os.path.join(d, p)))
    except (OSError, ValueError, RecursionError):
        return p + " (now unreadable)"
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return f"{p} (keys {', '.join(f'{k}: {str(old.get(k))[:25]} -> {str(new.get(k))[:25]}' for k in keys)})"
    return p


def evaluate(case: Case, d: str, before: dict, rc, out: str, err: str, before_json: dict) -> tuple[str, str]:
    after = snapshot(d)
    protect = case.protect or (lambda p: True)
    lost, new, changed = diff(before, after, protect)
    if lost:
        return "data_lost_or_mixed", "removed or changed: " + ", ".join(json_changes(d, p, before_json.get(p))
                                                                         for p in sorted(lost)[:6])
    outcome, detail = classify_stderr(rc, err)
    if outcome:
        if outcome != "hang" and case.expect == "refuse" and (new or changed):
            detail += f"; and wrote {', '.join((new + changed)[:4])}"
        return outcome, detail
    extra = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("error:")]
    note = f" (+{len(extra)} other stderr lines)" if extra else ""
    if rc == 2:
        if new or changed:
            return "silent_wrong", f"refused, but wrote: {', '.join((new + changed)[:6])}{note}"
        if case.expect == "ok":
            return "refused", "a valid input was refused" + note
        return "refused", note.strip()
    # rc == 0
    result = None
    for ln in out.splitlines():
        if ln.startswith("RESULT="):
            result = json.loads(ln[len("RESULT="):])
    problems = []
    if case.out:
        o = os.path.join(d, case.out)
        if not os.path.exists(os.path.join(o, "metrics.json")):
            problems.append("no metrics.json")
        else:
            problems += check_run_dir(o, case.n_samples)
    if case.cmd and case.cmd[0] == "sample" and "--out" in case.cmd:
        f = os.path.join(d, case.cmd[case.cmd.index("--out") + 1])
        n = int(case.cmd[case.cmd.index("--n") + 1])
        try:
            a = np.load(f)
            if a.shape[0] != n or not np.isfinite(a).all():
                problems.append(f"samples shape {a.shape}, finite={bool(np.isfinite(a).all())}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"no readable samples: {exc}")
    if case.snippet and case.expect == "ok" and not (result or {}).get("ok"):
        problems.append(f"result {result}")
    if case.expect == "ok":
        if any("run.json's manifest" in p or "beside" in p for p in problems):
            return "data_lost_or_mixed", "; ".join(problems[:4])
        if problems:
            return "silent_wrong", "; ".join(problems[:4])
        return "ok", (json.dumps(result) if result else "")
    what = f"exit 0 on a bad input; result {json.dumps(result)}" if result is not None else "exit 0 on a bad input"
    if case.cmd and case.cmd[0] == "refine":
        what += "; wrote " + (", ".join(sorted({p.split(os.sep)[0] for p in new})) or "nothing")
        outs = [a for a in case.cmd[case.cmd.index("--out") + 1:case.cmd.index("--out") + 2]]
        if outs and outs[0] and os.path.exists(os.path.join(d, outs[0], "metrics.json")):
            probs = check_run_dir(os.path.join(d, outs[0]))
            if probs:
                what += "; " + "; ".join(probs[:3])
    if problems:
        what += "; " + "; ".join(problems[:3])
    return "silent_wrong", what


def evaluate_concurrent(case: Case, d: str, before: dict, r: dict) -> tuple[str, str, int | None, str]:
    (ra, _, ea), (rb, _, eb) = r["res"]["a"], r["res"]["b"]
    detail = f"first rc={ra} ({first_line(ea)!r}), second rc={rb} ({first_line(eb)!r})"
    if ra is None or rb is None:
        return "hang", detail, rb, eb
    for rc, err in ((ra, ea), (rb, eb)):
        o, why = classify_stderr(rc, err)
        if o:
            return o, detail, rb, eb
    if ra == 0 and rb == 0:
        return "data_lost_or_mixed", "both runs into one --out exited 0; " + detail, rb, eb
    if ra == 0 and rb == 2:
        probs = check_run_dir(os.path.join(d, "run"), 200)
        if probs:
            return "data_lost_or_mixed", "; ".join(probs[:3]) + "; " + detail, rb, eb
        return "refused", "second run refused while the first lived; " + detail, rb, eb
    return "refused" if rb == 2 else "silent_wrong", detail, rb, eb


def make_fixture(root: str, timeout: float) -> str:
    """A tiny complete run (realnvp base, base,dctr,rejection) to copy into the cases that need one."""
    d = os.path.join(root, "fixture")
    os.mkdir(d)
    common_inputs(d)
    rc, out, err, s = run_proc(CLI + ["refine", "--data", "d2.npy", "--out", "run", "--n-samples", "200", "--quiet",
                                      "--methods", "base,dctr,rejection", *TINY], d, timeout)
    if rc != 0:
        sys.exit(f"the fixture run failed (rc={rc}):\n{err[-3000:]}")
    print(f"fixture run: {s:.1f} s; {sorted(os.listdir(os.path.join(d, 'run')))}", flush=True)
    return os.path.join(d, "run")


def run_case(case: Case, root: str, fixture: str, timeout: float) -> dict:
    d = tempfile.mkdtemp(prefix=case.name[:40].replace("/", "_") + "-", dir=root)
    try:
        common_inputs(d)
        if case.fixture or case.run is not None:
            shutil.copytree(fixture, os.path.join(d, "run"), symlinks=True)  # its dead run's lock file too
        if case.setup:
            case.setup(d)
        if case.snippet is not None:
            with open(os.path.join(d, "snippet.py"), "w") as fh:
                fh.write(case.snippet)
        before = snapshot(d)
        before_json = read_jsons(d, before)
        if case.run is not None:
            r = case.run(case, d, timeout)
            outcome, detail, rc, err = evaluate_concurrent(case, d, before, r)
            secs = r["seconds"]
            command = "genrefine " + " ".join(case.cmd) + "  (twice, the second while the first trains)"
        else:
            if case.snippet is not None:
                argv = [sys.executable, "-c", API_PRELUDE]
                command = case.snippet
            else:
                argv = CLI + case.cmd
                command = "genrefine " + " ".join(repr(a) if (not a or " " in a) else a for a in case.cmd)
            rc, out, err, secs = run_proc(argv, d, timeout)
            outcome, detail = evaluate(case, d, before, rc, out, err, before_json)
        return {"name": case.name, "group": case.group, "kind": "api" if case.snippet else "cli",
                "expect": case.expect, "command": command, "outcome": outcome, "exit_code": rc,
                "stderr_first_line": first_line(err), "detail": detail, "seconds": round(secs, 2)}
    finally:
        undo_immutable(d)
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=None, help="run the cases whose name contains one of these (comma-separated)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", default=OUT_JSON)
    args = ap.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    only = [o for o in (args.only or "").split(",") if o]
    cases = [c for c in build_cases() if not only or any(o in c.name for o in only)]
    root = tempfile.mkdtemp(prefix="genrefine-edge-")
    t0 = time.perf_counter()
    rows = []
    try:
        fixture = make_fixture(root, args.timeout)
        for i, c in enumerate(cases, 1):
            r = run_case(c, root, fixture, args.timeout)
            rows.append(r)
            print(f"[{i:3d}/{len(cases)}] {r['outcome']:18s} {r['seconds']:6.1f}s  {c.name}: "
                  f"{r['stderr_first_line'][:110]}", flush=True)
    finally:
        undo_immutable(root)
        shutil.rmtree(root, ignore_errors=True)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    import genrefine  # noqa: PLC0415 (the version swept)
    doc = {"genrefine_version": getattr(genrefine, "__version__", None), "cases": len(rows), "counts": counts,
           "wall_seconds": round(time.perf_counter() - t0, 1), "timeout_seconds": args.timeout,
           "outcomes": "refused | ok | traceback | silent_wrong | hang | data_lost_or_mixed | bad_message",
           "results": rows}
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print("\noutcome              cases")
    for k in ("refused", "ok", "traceback", "silent_wrong", "hang", "data_lost_or_mixed", "bad_message"):
        if counts.get(k):
            print(f"{k:20s} {counts[k]:5d}")
    print(f"{'total':20s} {len(rows):5d}   ({doc['wall_seconds']:.0f} s wall)")
    bad = [r for r in rows if r["outcome"] not in ("refused", "ok")
           or (r["expect"] == "ok" and r["outcome"] != "ok")]
    if bad:
        print("\nnot refused / ok:")
        for r in bad:
            print(f"  {r['outcome']:18s} {r['name']}: {r['stderr_first_line'][:140]} | {r['detail'][:160]}")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
