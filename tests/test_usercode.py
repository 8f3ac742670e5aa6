"""python:FILE.py:NAME targets: modules, factories, functions, and one error line per mistake."""

import textwrap

import pytest
from torch import nn

from genrefine.usercode import is_simulator, load_user_object, parse_target

USER_FILE = textwrap.dedent("""
    import numpy as np
    import torch
    from torch import nn

    class Gen(nn.Module):
        latent_dim = 2
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)
        def forward(self, z):
            return self.lin(z)

    instance = Gen()

    def factory():
        return Gen()

    def numpy_gen(z):
        return np.tanh(z)

    def simulator(z, rng):
        return z + rng.normal(size=z.shape)

    def broken_factory():
        raise RuntimeError("weights file missing")

    def three(a, b, c):
        return a

    number = 3
""")


@pytest.fixture()
def user_file(tmp_path):
    p = tmp_path / "mymodel.py"
    p.write_text(USER_FILE)
    return str(p)


def test_instances_factories_and_functions(user_file):
    assert isinstance(load_user_object(f"python:{user_file}:instance"), nn.Module)
    assert isinstance(load_user_object(f"python:{user_file}:Gen"), nn.Module)
    assert isinstance(load_user_object(f"python:{user_file}:factory"), nn.Module)
    fn = load_user_object(f"python:{user_file}:numpy_gen")
    assert callable(fn) and not is_simulator(fn)
    assert is_simulator(load_user_object(f"python:{user_file}:simulator"))


@pytest.mark.parametrize("target, words", [
    ("python:{f}:missing", "no such name"),
    ("python:{f}:broken_factory", "RuntimeError: weights file missing"),
    ("python:{f}:three", "3 required arguments"),
    ("python:{f}:number", "not a model"),
    ("python:/nonexistent/x.py:Gen", "no such file"),
    ("python:{f}", "expected python:FILE.py:NAME"),
    ("mymodel.py:Gen", "python:FILE.py:NAME"),
])
def test_each_mistake_is_one_line(user_file, target, words):
    with pytest.raises(ValueError) as info:
        load_user_object(target.format(f=user_file))
    msg = str(info.value)
    assert words in msg and "\n" not in msg


def test_import_error_is_one_line(tmp_path):
    p = tmp_path / "bad.py"
    p.write_text("import not_a_module_anywhere\n")
    with pytest.raises(ValueError, match="importing it raised ModuleNotFoundError"):
        load_user_object(f"python:{p}:G")


def test_parse_target_keeps_colons_in_the_path():
    assert parse_target("python:C:/models/g.py:make") == ("C:/models/g.py", "make")
