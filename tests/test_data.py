import numpy as np
import pytest

from genrefine.data import load_array, load_data, make_dataset


@pytest.mark.parametrize("name", ["gaussians4", "double_donut", "rings3", "moons"])
def test_builtin_sets_shape_and_seed(name):
    a = make_dataset(name, 1000, seed=3)
    assert a.shape == (1000, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, make_dataset(name, 1000, seed=3))
    assert not np.array_equal(a, make_dataset(name, 1000, seed=4))


def test_gaussians4_moments():
    x = make_dataset("gaussians4", 200_000, seed=0)
    assert np.allclose(np.abs(x).mean(0), 4.0, atol=0.05)  # |N(4,1)| has mean ~4
    quad = (x[:, 0] > 0) * 2 + (x[:, 1] > 0)
    assert np.allclose(np.bincount(quad) / len(x), 0.25, atol=0.01)


def test_rings_radius_distribution():
    # rings3's rings are 12 apart, so nearest-centre assignment is essentially exact
    x = make_dataset("rings3", 200_000, seed=0)
    centres = np.array([[-12.0, 0.0], [0.0, 0.0], [12.0, 0.0]])
    d = np.linalg.norm(x[:, None, :] - centres[None], axis=2)
    r = d.min(1)
    assert abs(np.median(r) - 4.0) < 0.02 and abs(r.std() - 1.0) < 0.02
    assert np.allclose(np.bincount(d.argmin(1)) / len(x), 1 / 3, atol=0.01)
    x2 = make_dataset("double_donut", 100_000, seed=0)
    assert abs(x2[:, 0].mean()) < 0.05 and abs(np.abs(x2[:, 0]).mean() - 4.0) < 1.0


def test_load_formats(tmp_path):
    a = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "a.npz", first=a, second=a * 2)
    np.savetxt(tmp_path / "a.csv", a, delimiter=",")
    np.savetxt(tmp_path / "h.csv", a, delimiter=",", header="x,y,z", comments="")
    np.testing.assert_allclose(load_array(str(tmp_path / "a.npy")), a)
    np.testing.assert_allclose(load_array(str(tmp_path / "a.npz")), a)
    np.testing.assert_allclose(load_array(str(tmp_path / "a.npz"), key="second"), 2 * a)
    np.testing.assert_allclose(load_array(str(tmp_path / "a.csv")), a, rtol=1e-6)
    np.testing.assert_allclose(load_array(str(tmp_path / "h.csv")), a, rtol=1e-6)


def _bad_files(tmp_path):
    good = np.ones((10, 2))
    nan = good.copy(); nan[3, 1] = np.nan
    inf = good.copy(); inf[0, 0] = np.inf
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "inf.npy", inf)
    np.save(tmp_path / "oned.npy", np.ones(10))
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage that is not an array")
    (tmp_path / "cell.csv").write_text("1,2\n3,abc\n5,6\n")
    (tmp_path / "empty.csv").write_text("")
    np.savez(tmp_path / "k.npz", a=good)
    return {
        "nan.npy": "NaN", "inf.npy": "inf", "oned.npy": "2-D", "empty.npy": "at least", "strings.npy": "numbers",
        "corrupt.npy": "", "cell.csv": "abc", "empty.csv": "empty", "missing.npy": "no such file",
    }


def test_bad_files_raise_clear_valueerror(tmp_path):
    for fname, words in _bad_files(tmp_path).items():
        with pytest.raises(ValueError) as ei:
            load_array(str(tmp_path / fname))
        msg = str(ei.value)
        assert fname in msg and words in msg and "\n" not in msg, msg
    with pytest.raises(ValueError, match="no array named 'b'"):
        load_array(str(tmp_path / "k.npz"), key="b")


def test_unknown_name():
    with pytest.raises(ValueError, match="neither a built-in"):
        load_data("not_a_set")
