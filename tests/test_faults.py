"""A run killed at any moment (while training, while writing its outputs, inside the commit)
leaves its output directory holding the old run or the new one, entire, never a mix; the next
run proceeds at once (the dead run's lock died with it) and finds the same.

The killed runs are small scripts that use :class:`RunDirectory` as ``genrefine refine``
does: checkpoints while "training", outputs into the staging directory, then the commit.
They load ``rundir.py`` by path, so each starts in milliseconds (no torch import).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import genrefine.experiments.rundir as rundir_module
from genrefine.experiments.rundir import RunDirectory

RUNDIR = rundir_module.__file__


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    # a killed process loses nothing the page cache holds; fsync only adds disk waits here
    monkeypatch.setattr(os, "fsync", lambda fd: None)

# Old and new runs write different sets (the new one has fewer methods), so a mix shows.
FILES = {
    "A": ["samples/base.npy", "samples/dctr.npy", "latents/base.npy", "models/classifier/model.safetensors",
          "figures/refinement.png"],
    "B": ["samples/base.npy", "samples/laser.npy", "latents/base.npy", "models/refiner/model.safetensors"],
    "C": ["samples/base.npy"],
}

BODY = textwrap.dedent("""
    import json, os, time

    def run(R, out, tag, files, delay=0.0, crash_at=0, epochs=3):
        calls = [0]

        def wrap(fn):  # slow every mutation down (random kills land anywhere) or die at the k-th one
            def inner(*a, **k):
                calls[0] += 1
                if calls[0] == crash_at:
                    os._exit(9)
                time.sleep(delay)
                return fn(*a, **k)
            return inner

        for name in ("replace", "rename", "unlink", "rmdir", "mkdir"):
            setattr(os, name, wrap(getattr(os, name)))
        os.fsync = lambda fd: None  # durability against power cuts is not what a kill tests

        def write(path, text):  # as genrefine writes: a ".tmp-" file of the same suffix, then a rename
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
            with open(tmp, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)

        with R.RunDirectory(out, {"options": {"tag": tag}}) as run:
            for epoch in range(epochs):  # "training": checkpoints replaced atomically
                time.sleep(delay)
                write(os.path.join(run.checkpoints, "base.safetensors"), f"{tag} epoch {epoch}")
            for rel in files:
                write(os.path.join(run.staging, rel), tag)
            write(os.path.join(run.staging, "metrics.json"), json.dumps({"run": tag}))
            run.commit()
        return calls[0]
""")

# The killed runs: a script that loads rundir.py by path (no torch import) and runs BODY.
CHILD = BODY + textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("rundir", sys.argv[1])
    R = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(R)
    print("done", run(R, sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]),
                      int(sys.argv[7])), flush=True)
""")


def _child(tmp_path, out, tag, delay=0.0, crash_at=0, epochs=3):
    script = tmp_path / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    args = [RUNDIR, out, tag, json.dumps(FILES[tag]), delay, crash_at, epochs]
    return [sys.executable, str(script), *map(str, args)]


def _outputs(out) -> dict[str, str]:
    """Output files in ``out`` (everything but the run directory's own bookkeeping) -> text."""
    found = {}
    for root, dirs, files in os.walk(out):
        rel_root = os.path.relpath(root, out)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d != "checkpoints" and not d.startswith(".genrefine-")]
            files = [f for f in files if f not in ("run.json", ".genrefine.lock") and not f.startswith(".genrefine-")]
        for f in files:
            rel = os.path.normpath(os.path.join(rel_root, f)).replace(os.sep, "/")
            with open(os.path.join(root, f)) as fh:
                found[rel] = fh.read()
    return found


def _complete_run(out) -> str | None:
    """The run ``out`` holds, checked whole: None when it holds no complete run. Fails when
    a complete-looking directory mixes runs or disagrees with run.json's manifest."""
    outputs = _outputs(out)
    if "metrics.json" not in outputs:
        return None
    tag = json.loads(outputs.pop("metrics.json"))["run"]
    assert sorted(outputs) == sorted(FILES[tag]), f"run {tag} beside other files: {sorted(outputs)}"
    assert set(outputs.values()) == {tag}, f"files of several runs under run {tag}'s metrics.json: {outputs}"
    with open(os.path.join(out, "run.json")) as fh:
        ledger = json.load(fh)
    listed = [f for f in ledger["outputs"]["files"] if not f.endswith("/")]
    assert sorted(listed) == sorted(FILES[tag] + ["metrics.json"]), "run.json's manifest is not the run in place"
    return tag


def _recovered(out) -> str | None:
    """What a later run finds in ``out`` after it has entered (and finished any commit the
    dead run left half done); it must not hang on the dead run's lock."""
    t0 = time.perf_counter()
    with RunDirectory(out, {"options": {"tag": "probe"}}):
        pass
    assert time.perf_counter() - t0 < 5
    return _complete_run(out)


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A complete run "A" made by the child script (copied for every trial)."""
    d = tmp_path_factory.mktemp("template")
    subprocess.run(_child(d, d / "A", "A"), check=True, capture_output=True, timeout=60)
    assert _complete_run(d / "A") == "A"
    return d / "A"


def _copy(old_run, tmp_path, name) -> str:
    out = tmp_path / name
    shutil.copytree(old_run, out)
    return str(out)


def _commit_here(out, tag) -> None:
    with RunDirectory(out, {"options": {"tag": tag}}) as run:
        for rel in FILES[tag]:
            os.makedirs(os.path.dirname(os.path.join(run.staging, rel)), exist_ok=True)
            with open(os.path.join(run.staging, rel), "w") as fh:
                fh.write(tag)
        with open(os.path.join(run.staging, "metrics.json"), "w") as fh:
            json.dump({"run": tag}, fh)
        run.commit()


def _check_after_death(out, then_commit=True) -> str:
    seen = _complete_run(out)  # as the dead run left it (a complete marker is never beside a mix)
    after = _recovered(out)
    assert after in ("A", "B"), f"after recovery the directory holds {after!r}, not the old run or the new one"
    assert seen in (None, after)
    if then_commit:
        _commit_here(out, "C")  # a later run proceeds and commits
        assert _complete_run(out) == "C"
    return after


def _forked_run(out, tag, crash_at, epochs) -> int:
    """BODY in a forked copy of this process (milliseconds, not a fresh interpreter); its
    exit status: 9 when it died at ``crash_at``, 0 when it completed."""
    ns: dict = {}
    exec(BODY, ns)
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            ns["run"](rundir_module, out, tag, FILES[tag], crash_at=crash_at, epochs=epochs)
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_crash_at_every_file_operation(tmp_path, old_run):
    """The new run dies (os._exit, as hard as SIGKILL for the file system) before its k-th
    rename / unlink / rmdir / mkdir, for every k until it completes."""
    seen = set()
    for k in range(1, 200):
        out = _copy(old_run, tmp_path, f"k{k}")
        code = _forked_run(out, "B", crash_at=k, epochs=0)  # kills in training: the random test
        if code == 0:
            assert _complete_run(out) == "B"
            break
        assert code == 9
        seen.add(_check_after_death(out, then_commit=k % 8 == 0))
    else:
        pytest.fail("the run never completed")
    assert k > 10 and seen == {"A", "B"}  # crashes on both sides of the commit point were tried


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_at_random_moments(tmp_path, old_run, seed):
    """SIGKILL at random moments of a run whose every file operation is slowed down, so the
    kills land in training, in writing and inside the commit."""
    rng = np.random.default_rng(seed)
    for i in range(3):
        out = _copy(old_run, tmp_path, f"s{i}")
        proc = subprocess.Popen(_child(tmp_path, out, "B", delay=0.01), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        _check_after_death(out)


def test_live_run_in_another_process_is_refused_then_its_death_frees_the_directory(tmp_path):
    out = tmp_path / "busy"
    proc = subprocess.Popen(_child(tmp_path, out, "B", delay=0.5), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while not (out / ".genrefine.lock").exists() or not (out / "run.json").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    with pytest.raises(ValueError, match=rf"in use by another genrefine run \(pid {proc.pid}\)"):
        with RunDirectory(out, {"options": {}}):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert _recovered(out) is None  # the new directory held no complete run; nothing was left half-written
