import os

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


def test_a_written_row_index_is_not_a_feature(tmp_path):
    """pandas' ``to_csv`` writes the row index first under a blank header cell: it is left out
    (with a warning); a named first column that merely counts is data and stays."""
    a = np.random.default_rng(1).normal(size=(30, 2))
    body = "\n".join(f"{i},{x:.6f},{y:.6f}" for i, (x, y) in enumerate(a))
    (tmp_path / "pandas.csv").write_text(",x,y\n" + body + "\n")
    (tmp_path / "named.csv").write_text("index,x,y\n" + body + "\n")
    (tmp_path / "count.csv").write_text("step,x,y\n" + body + "\n")
    for name in ("pandas.csv", "named.csv"):
        with pytest.warns(UserWarning, match="row index"):
            got = load_array(str(tmp_path / name))
        np.testing.assert_allclose(got, a, atol=1e-6)
    assert load_array(str(tmp_path / "count.csv")).shape == (30, 3)


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
    os.symlink(tmp_path / "loop_b.npy", tmp_path / "loop_a.npy")
    os.symlink(tmp_path / "loop_a.npy", tmp_path / "loop_b.npy")
    os.mkdir(tmp_path / "dir.npy")
    return {
        "nan.npy": "NaN", "inf.npy": "inf", "oned.npy": "2-D", "empty.npy": "at least", "strings.npy": "numbers",
        "corrupt.npy": "", "cell.csv": "abc", "empty.csv": "empty", "missing.npy": "no such file",
        "loop_a.npy": "link loop", "dir.npy": "is a directory",
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


# ---- images, IDX files, data_shape ------------------------------------------------------------

import gzip  # noqa: E402
from pathlib import Path  # noqa: E402

from genrefine.data import dataset_shape, load_flat, read_idx, to_flat, write_idx  # noqa: E402
from genrefine.validation import check_array  # noqa: E402

MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def _one_line_error(fn, *words):
    with pytest.raises(ValueError) as ei:
        fn()
    msg = str(ei.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(1)
    a = (rng.normal(size=(3, 5, 7)) * 50).astype(dtype)
    p = tmp_path / f"tiny-idx3-ubyte{suffix}"
    write_idx(p, a)
    b = read_idx(p)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    if not suffix:  # the header of the spec: 0 0 type ndim, then big-endian sizes
        raw = p.read_bytes()
        assert raw[:4] == bytes([0, 0, {"u1": 8, "i1": 9, "i2": 11, "i4": 12, "f4": 13, "f8": 14}[dtype], 3])
        assert raw[4:16] == bytes([0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 7])
        assert len(raw) == 16 + a.size * a.dtype.itemsize


def test_idx_gzip_is_deterministic_and_refuses_other_types(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", a)
    write_idx(tmp_path / "b-idx3-ubyte.gz", a)
    assert (tmp_path / "a-idx3-ubyte.gz").read_bytes() == (tmp_path / "b-idx3-ubyte.gz").read_bytes()
    _one_line_error(lambda: write_idx(tmp_path / "c-idx1-ubyte", np.arange(3, dtype=np.uint64)), "uint64")


def test_idx_corrupt_and_truncated_files_are_refused(tmp_path):
    a = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    write_idx(tmp_path / "good-idx3-ubyte", a)
    raw = (tmp_path / "good-idx3-ubyte").read_bytes()
    cases = {
        "magic-idx3-ubyte": (b"\x01\x00" + raw[2:], "magic"),
        "type-idx3-ubyte": (raw[:2] + b"\x07" + raw[3:], "type code"),
        "zero-idx3-ubyte": (raw[:3] + b"\x00" + raw[4:], "0 dimensions"),
        "short-idx3-ubyte": (raw[:-5], "truncated"),
        "long-idx3-ubyte": (raw + b"\x00\x00", "corrupt"),
        "head-idx3-ubyte": (raw[:6], "truncated"),
        "huge-idx3-ubyte": (raw[:4] + b"\xff\xff\xff\xff" + raw[8:], "truncated"),
        "short-idx3-ubyte.gz": (gzip.compress(raw[:-5]), "truncated"),
        "long-idx3-ubyte.gz": (gzip.compress(raw + b"\x00"), "corrupt"),
        "cut-idx3-ubyte.gz": (gzip.compress(raw)[:-12], ""),
        "notgz-idx3-ubyte.gz": (raw, "IDX"),
    }
    for fname, (content, words) in cases.items():
        (tmp_path / fname).write_bytes(content)
        _one_line_error(lambda: read_idx(tmp_path / fname), fname, words)
        _one_line_error(lambda: load_array(str(tmp_path / fname)), fname, words)
    _one_line_error(lambda: read_idx(tmp_path / "absent-idx3-ubyte"), "no such file")


def test_idx_images_load_as_unit_floats(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, size=(6, 5, 4)).astype(np.uint8)
    write_idx(tmp_path / "img-idx3-ubyte.gz", a)
    x = load_array(str(tmp_path / "img-idx3-ubyte.gz"))
    assert x.shape == (6, 5, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x, a / 255.0, atol=1e-7)
    flat, shape = load_flat(str(tmp_path / "img-idx3-ubyte.gz"))
    assert flat.shape == (6, 20) and shape == (1, 5, 4)
    np.testing.assert_array_equal(flat[2], x[2].ravel())
    np.testing.assert_array_equal(load_data(str(tmp_path / "img-idx3-ubyte.gz")), flat)


def test_mnist_test_images_read():
    images, labels = MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        pytest.skip(f"MNIST IDX files not found under {MNIST.resolve()}")
    x, shape = load_flat(str(images), data_shape=(1, 28, 28))
    y = read_idx(labels)
    assert x.shape == (10_000, 784) and shape == (1, 28, 28) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert abs(x.mean() - 0.1325) < 0.001  # the test set's mean intensity
    assert y.shape == (10_000,) and y.dtype == np.uint8 and list(y[:5]) == [7, 2, 1, 0, 4]
    assert np.array_equal(np.bincount(y, minlength=10) > 800, np.ones(10, bool))
    _one_line_error(lambda: load_flat(str(images), data_shape=(3, 28, 28)), "3 channel", "got 1")
    _one_line_error(lambda: load_flat(str(images), data_shape=(1, 32, 32)), "32x32")


def test_shapes_become_flat_rows_with_their_data_shape(tmp_path):
    rng = np.random.default_rng(0)
    cases = [((5, 3), (3,)), ((5, 6, 7), (1, 6, 7)), ((5, 3, 6, 7), (3, 6, 7)), ((5, 1, 6, 7), (1, 6, 7))]
    for shape, data_shape in cases:
        a = rng.random(shape).astype(np.float32)
        np.save(tmp_path / "a.npy", a)
        flat, got = load_flat(str(tmp_path / "a.npy"))
        assert got == data_shape and flat.shape == (5, int(np.prod(shape[1:])))
        np.testing.assert_array_equal(flat, a.reshape(5, -1))
    nhwc = rng.random((4, 6, 7, 3)).astype(np.float32)  # channels last is recognised
    np.save(tmp_path / "nhwc.npy", nhwc)
    flat, got = load_flat(str(tmp_path / "nhwc.npy"))
    assert got == (3, 6, 7)
    np.testing.assert_array_equal(flat.reshape(4, 3, 6, 7), nhwc.transpose(0, 3, 1, 2))
    # flat rows a caller declares to be images, and (n, H, W) for a declared (1, H, W)
    assert to_flat(rng.random((4, 42)), (1, 6, 7))[1] == (1, 6, 7)
    assert to_flat(rng.random((4, 6, 7)), (6, 7))[1] == (1, 6, 7)


def test_bad_image_input_is_one_line(tmp_path):
    u8 = np.zeros((4, 6, 7), np.uint8)
    np.save(tmp_path / "u8.npy", u8)
    assert load_array(str(tmp_path / "u8.npy")).dtype == np.float32
    _one_line_error(lambda: to_flat(np.zeros((4, 3, 6, 7)), (1, 6, 7)), "1 channel", "got 3")
    _one_line_error(lambda: to_flat(np.zeros((4, 6, 8)), (1, 6, 7)), "6x7 pixels")
    _one_line_error(lambda: to_flat(np.zeros((4, 40)), (1, 6, 7)), "42 values")
    _one_line_error(lambda: to_flat(np.zeros((0, 6, 7))), "at least 1 rows")
    _one_line_error(lambda: to_flat(np.zeros(5)), "2-D to 4-D")
    img = np.zeros((4, 6, 7))
    img[1, 2, 3] = np.nan
    _one_line_error(lambda: to_flat(img), "1 NaN")
    _one_line_error(lambda: to_flat(np.zeros((4, 6, 7)), (1, 0, 7)), "data_shape")
    np.save(tmp_path / "five.npy", np.zeros((3, 2, 2, 2, 2)))
    _one_line_error(lambda: load_array(str(tmp_path / "five.npy")), "five.npy", "2-D to 4-D")


def test_check_array_with_and_without_data_shape():
    x = np.ones((3, 2))
    assert check_array(x, dim=2).shape == (3, 2)  # unchanged for (n, D)
    _one_line_error(lambda: check_array(x, dim=3), "expected 3 features per row")
    assert check_array(np.ones((3, 1, 4, 4)), data_shape=(1, 4, 4)).shape == (3, 16)
    assert check_array(np.ones((3, 16)), data_shape=(1, 4, 4)).shape == (3, 16)
    _one_line_error(lambda: check_array(np.ones((3, 2, 4, 4)), data_shape=(1, 4, 4)), "channel")


def test_digits_builtin_image_set():
    x = make_dataset("digits", 500, seed=2)
    assert x.shape == (500, 8, 8) and x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x, make_dataset("digits", 500, seed=2))
    assert not np.array_equal(x, make_dataset("digits", 500, seed=3))
    assert len(np.unique(make_dataset("digits", 1797, seed=0).reshape(1797, -1), axis=0)) > 1700  # no repeats drawn
    assert dataset_shape("digits") == (1, 8, 8) and dataset_shape("moons") == (2,)
    flat, shape = load_flat("digits")
    assert flat.shape == (1797, 64) and shape == (1, 8, 8)
    _one_line_error(lambda: make_dataset("digits", 5000), "1797")


def test_csv_dialects_a_user_brings(tmp_path):
    """Old-Mac line ends, a byte-order mark before a headerless first row, comment lines and
    trailing delimiters all read; an empty cell, a non-zip .npz and a .npz whose first array is
    not rows are refused in one line that says so."""
    files = {"cr.csv": b"a,b\r1,2\r3,4\r", "bom.csv": b"\xef\xbb\xbf1,2\n3,4\n", "trail.csv": b"1,2,\n3,4,\n",
             "comment.csv": b"# made by hand\na,b\n1,2\n# a note\n3,4\n"}
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
        np.testing.assert_allclose(load_array(str(tmp_path / name)), [[1, 2], [3, 4]], err_msg=name)
    (tmp_path / "gap.csv").write_text("1.0,2.0,3.0\n1.0,,2.0\n")
    (tmp_path / "fake.npz").write_text("not a zip")
    np.savez(tmp_path / "two.npz", labels=np.arange(30), x=np.ones((30, 2)))
    for name, words in (("gap.csv", "row 2, column 2: empty value"), ("fake.npz", "not a valid .npz"),
                        ("two.npz", "first array 'labels'.*--key")):
        with pytest.raises(ValueError, match=words):
            load_array(str(tmp_path / name))
    assert load_array(str(tmp_path / "two.npz"), key="x").shape == (30, 2)
