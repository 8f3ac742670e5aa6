"""Command line: bad input gives one 'error:' line, exit code 2, and nothing in --out;
a tiny end-to-end run writes the documented layout and a loadable model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from genrefine.cli import main
from genrefine.pipeline import run_refinement

from .test_data import _bad_files

# tiny models: one intra-op thread (two thrash on a busy 2-core machine: 10x slower measured)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_bad_data_files_exit_2_and_write_nothing(tmp_path, capsys):
    bad = _bad_files(tmp_path)
    for fname in bad:
        out = tmp_path / f"out_{fname}"
        code = main(["refine", "--data", str(tmp_path / fname), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, fname
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fname in lines[0], err
        assert not out.exists(), f"{fname}: output directory was created"


def test_bad_arguments(tmp_path, capsys):
    for argv in (["refine", "--data", "gaussians4", "--methods", "base,nope", "--out", str(tmp_path / "o")],
                 ["refine", "--data", "gaussians4", "--n-samples", "0", "--out", str(tmp_path / "o")],
                 ["sample", "--model", str(tmp_path / "missing"), "--n", "10", "--out", str(tmp_path / "x.npy")]):
        with pytest.raises(SystemExit) as ei:
            sys.exit(main(argv))
        assert ei.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "o").exists() and not (tmp_path / "x.npy").exists()


def test_subprocess_no_traceback(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [2.0, 3.0]]))
    r = subprocess.run([sys.executable, "-m", "genrefine.cli", "refine", "--data", str(tmp_path / "nan.npy"),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error: ")


TINY = {
    "n_train": 3000,
    "base": {"transforms": 2, "hidden": [16], "epochs": 2, "batch_size": 500},
    "classifier": {"hidden": 16, "layers": 2, "epochs": 2, "batch_size": 500},
    "hmc": {"paper": False, "n_chains": 200, "burn_in": 5, "n_leapfrog": 3},
    "laser": {"hidden": 16, "layers": 2, "epochs": 2, "batch_size": 500, "drs": {"n": 5000, "steps": 50},
              "data_rejection": {"epochs": 1, "steps": 50, "boost": {"n": 20_000, "steps": 50}}},
    "laser-flow": {"transforms": 1, "hidden": [16], "epochs": 2, "batch_size": 500},
}


def test_end_to_end_layout_and_sampling(tmp_path, capsys):
    out = tmp_path / "run"
    res = run_refinement("gaussians4", n_samples=2000, out=str(out), progress=False, overrides=TINY, iterations=2)
    np.testing.assert_allclose(res.models["base"].data_loc.numpy(), 0.0, atol=0.3)  # standardised: data mean ~0
    assert (res.models["base"].data_scale > 3).all()  # gaussians4 has std ~4.1 per axis
    for m in ("base", "dctr", "rejection", "hmc", "laser", "laser-flow"):
        assert (out / "samples" / f"{m}.npy").exists() and (out / "latents" / f"{m}.npy").exists()
        assert np.load(out / "samples" / f"{m}.npy").shape == (2000, 2)
    assert np.load(out / "samples" / "dctr_weights.npy").shape == (2000,)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"base", "dctr", "rejection", "hmc", "laser", "laser-flow"}
    s = metrics["scores"]["base"]["jsd_paper"]
    assert s["value"] > 0 and s["floor"] > 0
    assert (out / "figures" / "refinement.png").exists()
    assert metrics["scoring"] == "laser" and metrics["ranking"]["key"] == "energy"  # the 2-D benchmark's scores
    assert metrics["ranking"]["recommended"] in metrics["methods"] and (out / "run.json").exists()
    assert len(metrics["diagnostics"]["laser"]["iterations"]) == 2
    assert 0.5 < metrics["diagnostics"]["laser"]["iterations"][1]["rejection"]["acceptance_rate"] <= 1
    assert 0.5 < metrics["diagnostics"]["laser"]["iterations"][1]["data_rejection"]["acceptance_rate"] <= 1
    boost = metrics["diagnostics"]["laser"]["iterations"][1]["data_rejection"]["boost"]
    assert 0.69 < boost["acceptance_rate"] <= 1 and 0.5 < boost["data_acceptance_after"] <= 1
    assert np.load(out / "latents" / "laser.npy").shape == (2000, 2)  # base latent space, also when nested
    assert res.models["laser"].depth == 2
    code = main(["sample", "--model", str(out / "models" / "laser"), "--n", "500", "--out", str(tmp_path / "s.npy")])
    assert code == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (500, 2) and np.isfinite(x).all()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


@pytest.mark.parametrize("bad, words", [
    (np.array([[1.0, np.nan]] * 20), "NaN"),
    (np.ones(20), "2-D"),
    (np.zeros((0, 2)), "at least"),
    (np.array([["a", "b"]] * 20), "numbers"),
])
def test_python_api_raises_valueerror(tmp_path, bad, words):
    with pytest.raises(ValueError, match=words):
        run_refinement(bad, out=str(tmp_path / "o"), progress=False, overrides=TINY)
    assert not (tmp_path / "o").exists()


def test_tempered_weights_are_said_in_the_summary():
    """A partial correction (weights tempered to w^β, β < 1, on held-out rows) is one line of the
    run's summary; full weights say nothing."""
    from genrefine.cli import _tempering_line

    assert _tempering_line({"beta": 1.0, "rule": "guard"}) == [] and _tempering_line(None) == []
    (line,) = _tempering_line({"beta": 0.5, "rule": "guard"})
    assert "w^0.5" in line and "worse than no weights" in line and "part of the gap" in line
    (line,) = _tempering_line({"beta": 0.0, "rule": "best"})
    assert "w^0" in line and "base again" in line


def test_the_chosen_sharpening_is_said_in_the_summary():
    """classifier.sharpen=auto: the summary names the power and its held-out precision and recall."""
    from genrefine.cli import _sharpening_line

    assert _sharpening_line(None) == []
    scores = {"1.0": {"precision": 0.70, "recall": 0.60}, "2.0": {"precision": 0.75, "recall": 0.61}}
    (line,) = _sharpening_line({"power": 2.0, "scores": scores})
    assert "min(w, c)^2" in line and "70.0 -> 75.0" in line and "60.0 -> 61.0" in line
    (line,) = _sharpening_line({"power": 1.0, "scores": scores})
    assert line.startswith("weights not sharpened")
    (line,) = _sharpening_line({"power": 1.0, "skipped": "too few rows to choose on (20 held-out data rows)"})
    assert line.startswith("weights not sharpened: too few rows")


def test_a_warning_is_one_line_on_stderr(tmp_path, capsys):
    """Warnings reach the command line as ``warning: ...`` lines, without Python's file, line
    number and source line."""
    (tmp_path / "pandas.csv").write_text(",x,y\n0,1.0,2.0\n1,0.5,1.5\n2,0.2,0.1\n")
    assert main(["refine", "--data", str(tmp_path / "pandas.csv"), "--methods", "base",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("warning: pandas.csv: the first column is a row index"), err
    assert err[1].startswith("error: ") and len(err) == 2 and "UserWarning" not in "".join(err)
    assert not (tmp_path / "run").exists()
