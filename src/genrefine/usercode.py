"""``--base python:FILE.py:NAME``: the user's own model, from the user's own file.

The file is the user's code, run because they asked for it on the command line; a saved
checkpoint never names code to import. ``NAME`` may be

- an ``nn.Module`` instance, or any other callable ``z -> x`` (torch or numpy), used as it is;
- a class (an ``nn.Module`` subclass) or a function without required arguments: a *factory*,
  called once; what it returns must be a module or a callable;
- a function of one required argument ``z`` (a generator) or of two, ``(z, rng)`` (a
  simulator with hidden randomness): used as it is.

``--base sim:NAME`` names one of the package's toy simulators instead
(:mod:`genrefine.data.simulators`, at its base parameters).

Every failure is one ``ValueError`` line naming the file and the name.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from typing import Any

from torch import nn

from genrefine.validation import not_a_file

PREFIX = "python:"
SIM_PREFIX = "sim:"  # a built-in toy simulator


def parse_target(spec: str) -> tuple[str, str]:
    """``"python:path/to/file.py:NAME"`` -> ``(path, NAME)``; the path may itself hold colons."""
    if not spec.startswith(PREFIX):
        raise ValueError(f"--base {spec!r}: a user's model is named as python:FILE.py:NAME")
    path, sep, name = spec[len(PREFIX):].rpartition(":")
    if not sep or not path or not name:
        raise ValueError(f"--base {spec!r}: expected python:FILE.py:NAME (a file and the name of a module, "
                         "factory or function in it)")
    if not name.isidentifier():
        raise ValueError(f"--base {spec!r}: {name!r} is not a Python name")
    return path, name


def _import_file(path: str) -> Any:
    why = not_a_file(path)
    if why is not None:
        raise ValueError(f"{path}: {why} (the python: target must name an existing .py file)")
    if not path.endswith(".py"):
        raise ValueError(f"{path}: the python: target must be a .py file")
    mod_name = "genrefine_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(mod_name, os.path.abspath(path))
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the user's file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's code: any failure is theirs to see, in one line
        raise ValueError(f"{path}: importing it raised {type(exc).__name__}: {exc}") from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    return module


def _required_args(fn) -> int | None:
    """Number of required positional parameters of ``fn``, or None when it cannot be told."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in sig.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty)


def _call_factory(factory, where: str):
    try:
        made = factory()
    except (Exception, SystemExit) as exc:
        raise ValueError(f"{where}: calling it raised {type(exc).__name__}: {exc}") from None
    if not callable(made):
        raise ValueError(f"{where}: the factory returned a {type(made).__name__}, not a model or callable")
    return made


def load_user_object(spec: str):
    """The object ``python:FILE.py:NAME`` names, with factories called (see the module docstring).

    Returns the model or callable; whether it is a torch module, a torch or numpy function, or a
    simulator ``f(z, rng)`` is then told by :func:`genrefine.generators.adapters.as_generator`.
    """
    if spec.startswith(SIM_PREFIX):
        from genrefine.data.simulators import simulator

        return simulator(spec[len(SIM_PREFIX):])
    path, name = parse_target(spec)
    module = _import_file(path)
    where = f"{path}:{name}"
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items() if not k.startswith("_") and callable(v))
        raise ValueError(f"{where}: no such name in the file (callables there: {', '.join(found) or 'none'})")
    obj = getattr(module, name)
    if isinstance(obj, nn.Module):
        return obj
    if inspect.isclass(obj):
        if not issubclass(obj, nn.Module):
            raise ValueError(f"{where}: a class that is not a torch nn.Module; name an instance, a factory or a function")
        return _call_factory(obj, where)
    if not callable(obj):
        raise ValueError(f"{where}: a {type(obj).__name__}, not a model, factory or function")
    n_args = _required_args(obj)
    if n_args == 0:
        return _call_factory(obj, where)
    if n_args in (1, 2, None):
        return obj
    raise ValueError(f"{where}: a function of {n_args} required arguments; a generator takes z, a simulator (z, rng)")


def is_simulator(obj) -> bool:
    """Whether ``obj`` is a plain function ``f(z, rng)``: a simulator with hidden randomness."""
    return not isinstance(obj, nn.Module) and inspect.isfunction(obj) and _required_args(obj) == 2
