"""A run directory is owned by one run: refused before any work when it cannot be used,
locked against a second run, checked on resume, swapped in whole, and it never removes what a
genrefine run did not make."""

import json
import os

import numpy as np
import pytest
import torch

from genrefine.experiments.rundir import RunDirectory, fingerprint, make_record


def _write(root, rel, text="x"):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def _commit(out, files, tag, record=None):
    with RunDirectory(out, record or {"options": {"tag": tag}}) as run:
        for rel in files:
            _write(run.staging, rel, tag)
        _write(run.staging, "metrics.json", json.dumps({"run": tag}))
        return run.commit()


def _tree(out):
    found = set()
    for root, dirs, files in os.walk(out):
        for f in files:
            found.add(os.path.relpath(os.path.join(root, f), out).replace(os.sep, "/"))
    return found


@pytest.mark.parametrize("bad, words", [("", "empty path"), ("FILE", "not a directory"),
                                        ("FILE/sub", "cannot create")])
def test_unusable_out_is_refused_before_anything_is_written(tmp_path, bad, words):
    (tmp_path / "f.txt").write_text("mine")
    out = bad.replace("FILE", str(tmp_path / "f.txt"))
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=words) as err:
        with RunDirectory(out, {}):
            pytest.fail("entered")
    assert "\n" not in str(err.value)
    assert _tree(tmp_path) == before and (tmp_path / "f.txt").read_text() == "mine"


def test_unwritable_out_is_refused(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere a permission bit forbids: use a kernel directory
        out = "/proc/self"
    else:
        out = str(tmp_path / "ro")
        os.mkdir(out, 0o500)
    with pytest.raises(ValueError, match="not writable"):
        with RunDirectory(out, {}):
            pytest.fail("entered")


def test_second_run_is_refused_while_the_first_lives(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, {"options": {}}):
        with pytest.raises(ValueError, match=rf"in use by another genrefine run \(pid {os.getpid()}\)"):
            with RunDirectory(out, {"options": {}}):
                pytest.fail("entered")
    with RunDirectory(out, {"options": {}}):  # free again once the first has left
        pass


def test_commit_replaces_the_old_outputs_whole(tmp_path):
    out = tmp_path / "run"
    _commit(out, ["samples/base.npy", "samples/dctr.npy", "models/classifier/model.safetensors"], "A")
    manifest = _commit(out, ["samples/base.npy", "latents/base.npy"], "B")  # fewer methods
    assert "samples/base.npy" in manifest and "metrics.json" in manifest
    assert _tree(out) == {"samples/base.npy", "latents/base.npy", "metrics.json", "run.json", ".genrefine.lock"}
    assert (out / "samples" / "base.npy").read_text() == "B"
    ledger = json.loads((out / "run.json").read_text())
    assert ledger["outputs"]["record"] == {"options": {"tag": "B"}} and "pending" not in ledger


@pytest.mark.parametrize("fault", [RuntimeError, KeyboardInterrupt])
def test_staging_removed_and_old_run_kept_when_the_run_fails(tmp_path, fault):
    out = tmp_path / "run"
    _commit(out, ["samples/base.npy"], "A")
    with pytest.raises(fault):
        with RunDirectory(out, {"options": {"tag": "B"}}) as run:
            _write(run.staging, "samples/base.npy", "B")
            _write(run.staging, "metrics.json", "{}")
            raise fault()
    assert _tree(out) == {"samples/base.npy", "metrics.json", "run.json", ".genrefine.lock"}
    assert (out / "samples" / "base.npy").read_text() == "A"
    assert not [n for n in os.listdir(out) if n.startswith(".genrefine-")]


def test_new_out_left_by_a_failed_run_is_removed(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(ValueError):
        with RunDirectory(out, {}) as run:
            run.checkpoints  # created, never written
            raise ValueError("diverged")
    assert not out.exists()


@pytest.mark.parametrize("where", ["checkpoints/mine.pt", "notes.txt", "samples/mine.npy"])
def test_files_a_run_did_not_make_are_never_touched(tmp_path, where):
    out = tmp_path / "run"
    if where != "checkpoints/mine.pt":
        _commit(out, ["samples/base.npy"], "A")
    _write(out, where, "mine")
    before = _tree(out)
    with pytest.raises(ValueError, match="genrefine did not make") as err:
        with RunDirectory(out, {"options": {"tag": "B"}}):
            pytest.fail("entered")
    assert where.split("/")[0] in str(err.value)
    assert _tree(out) == before and (out / where).read_text() == "mine"


def test_output_of_an_older_genrefine_is_refused_with_a_hint(tmp_path):
    _write(tmp_path, "metrics.json", "{}")
    _write(tmp_path, "samples/base.npy")
    with pytest.raises(ValueError, match="older genrefine"):
        with RunDirectory(tmp_path, {}):
            pytest.fail("entered")


def test_rerun_restarts_checkpoints_and_resume_keeps_them(tmp_path):
    out = tmp_path / "run"
    rec = {"data": "abc", "options": {"epochs": 3}, "version": "0.1.0"}
    with RunDirectory(out, rec) as run:
        _write(run.checkpoints, "base.safetensors", "epoch 2")
    with RunDirectory(out, {**rec, "version": "0.2.0"}, resume=True) as run:  # the version may differ
        assert run.resumed and os.listdir(run.checkpoints) == ["base.safetensors"]
    with RunDirectory(out, rec) as run:
        assert os.listdir(run.checkpoints) == []


def test_resume_with_other_data_or_options_is_refused_naming_them(tmp_path):
    out = tmp_path / "run"
    x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    with RunDirectory(out, make_record({"train": x}, {"epochs": 3, "lr": 1e-3})) as run:
        _write(run.checkpoints, "base.safetensors", "epoch 2")
    y = x.copy()
    y[0, 0] += 1  # same shape, other data
    with pytest.raises(ValueError, match=r"different data\.train, options\.epochs") as err:
        with RunDirectory(out, make_record({"train": y}, {"epochs": 5, "lr": 1e-3}), resume=True):
            pytest.fail("entered")
    assert "\n" not in str(err.value)
    assert (out / "checkpoints" / "base.safetensors").read_text() == "epoch 2"  # untouched


def test_fingerprint_sees_shape_dtype_and_values_and_reads_in_chunks():
    x = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    f = fingerprint(x)
    assert fingerprint(x, chunk_bytes=100) == f == fingerprint(torch.from_numpy(x))
    assert fingerprint(np.asfortranarray(x)) == f  # layout is not content
    y = x.copy()
    y[-1, -1] = np.nextafter(y[-1, -1], np.inf)
    assert len({f, fingerprint(y), fingerprint(x.reshape(3000, 1)), fingerprint(x.astype(np.float64))}) == 4


def test_a_users_file_in_checkpoints_is_never_removed(tmp_path):
    out = str(tmp_path / "run")
    with RunDirectory(out, {"options": {"tag": "a"}}) as run:
        _write(run.checkpoints, "base.safetensors", "weights")
        _write(run.staging, "metrics.json", "{}")
        run.commit()
    _write(out, "checkpoints/mine.txt", "the user's own")
    with pytest.raises(ValueError, match=r"checkpoints/ holds files genrefine did not make \(mine.txt\)"):
        with RunDirectory(out, {"options": {"tag": "b"}}):
            pass
    assert _tree(out) >= {"checkpoints/mine.txt", "checkpoints/base.safetensors", "metrics.json"}


def test_a_failed_rerun_keeps_the_standing_runs_commit_time(tmp_path):
    out = str(tmp_path / "run")
    _commit(out, ["samples/a.npy"], "a")
    before = json.loads(open(os.path.join(out, "run.json")).read())
    with pytest.raises(RuntimeError, match="training failed"):
        with RunDirectory(out, {"options": {"tag": "a"}}, resume=True):
            raise RuntimeError("training failed")
    after = json.loads(open(os.path.join(out, "run.json")).read())
    assert before["committed"] and after == before  # a failed resume leaves run.json as it was
    assert after["outputs"] == before["outputs"] and _tree(out) >= {"samples/a.npy", "metrics.json"}
