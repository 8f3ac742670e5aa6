"""Adapters: one call turns what a user has into a :class:`~genrefine.generators.base.Generator`.

:func:`as_generator` takes

* a torch ``nn.Module`` ``z -> x`` (or a bound method of one, e.g. ``vae.decode``): family
  ``"module"``, its weights are saved with the generator;
* any batched torch callable ``z -> x``: family ``"callable"``;
* a numpy callable ``x = f(z)`` (ndarray in, ndarray out): family ``"callable"``;
* a numpy callable ``x = f(z, rng)`` whose output also depends on hidden randomness drawn from
  ``rng`` (``stochastic=True``): the adapter owns a seeded ``numpy.random.Generator``, so the
  same seed gives the same samples.

A probe call on 2 fixed latent points (torch first, then numpy) finds the backend, the row
shape of ``x`` (``(n, C, H, W)`` and ``(n, H, W)`` are flattened to ``(n, D)``; ``data_shape``
records ``(C, H, W)``, ``(1, H, W)`` for ``(H, W)``) and, for torch, whether ``x`` depends on
``z`` through autograd (``differentiable``). ``invertible`` is never guessed. The probe leaves
the global torch and numpy random streams as it found them. Outputs are float32 rows on the
generator's device; generated values are checked finite chunk by chunk.

A checkpoint of an adapter holds its settings (and a module's weights), never code: loading
needs the same model again, ``load_generator(path, base=model)``.

Example:
    >>> gen = as_generator(decoder, latent_dim=2)            # nn.Module (n, 2) -> (n, 1, 28, 28)
    >>> gen.data_shape, gen.differentiable                   # ((1, 28, 28), True)
    >>> sim = as_generator(lambda z, rng: z + rng.normal(size=z.shape), latent_dim=4,
    ...                    stochastic=True, seed=1)          # numpy simulator, hidden noise
    >>> x = sim.sample(1000)                                 # (1000, 4) float32
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import operator
import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Transform

from genrefine.generators.base import DiagonalNormal, Generator, register_family
from genrefine.validation import check_data_shape

#: latent points of the probe call that finds the backend and the output shape
PROBE_ROWS = 2

NEEDS_BASE = "this checkpoint was built on a user's model; pass base=<the same model> to load it"


def _label(model: Any, name: str | None) -> str:
    if name is not None:
        return str(name)
    inner = getattr(model, "func", model)  # functools.partial
    qualname = getattr(inner, "__qualname__", None)
    return qualname.rsplit("<locals>.", 1)[-1] if isinstance(qualname, str) else type(model).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


#: errors of the user's code that pass through as they are: running out of memory is the run's
#: problem (the command line names it and suggests smaller batches), not the model's
_PASS_THROUGH = (MemoryError,) + ((torch.OutOfMemoryError,) if hasattr(torch, "OutOfMemoryError") else ())


def _user_call(name: str, fn: Callable, *args):
    """``fn(*args)``; whatever the user's code raises (or a ``sys.exit``) becomes one ValueError
    line naming it, the original kept as its cause."""
    try:
        return fn(*args)
    except SystemExit as exc:
        raise ValueError(f"{name}: the generator called sys.exit({exc.code!r}) while generating") from None
    except _PASS_THROUGH:
        raise
    except Exception as exc:
        raise ValueError(f"{name}: the generator raised {_first_line(exc)} while generating") from exc


def _owner(model: Any) -> tuple[nn.Module | None, str | None]:
    """``(module, method name)`` for an ``nn.Module`` or a bound method of one, else ``(None, None)``."""
    if isinstance(model, nn.Module):
        return model, None
    if inspect.ismethod(model) and isinstance(model.__self__, nn.Module):
        return model.__self__, model.__name__
    return None, None


def _private_copy(module: nn.Module, label: str) -> nn.Module:
    """A deep copy of the user's module, which genrefine may put in eval mode and freeze: the
    user's own stays as it was (still trainable). A module that cannot be copied is used
    itself, with a warning that it will be changed."""
    try:
        return copy.deepcopy(module)
    except Exception as exc:  # noqa: BLE001 - any failure of a user's __deepcopy__ means "cannot copy"
        warnings.warn(f"as_generator({label}): the module could not be copied ({type(exc).__name__}: {exc}); "
                      "genrefine uses it itself and puts it in eval mode with its parameters frozen", stacklevel=3)
        return module


def _module_dtype(module: nn.Module | None) -> torch.dtype:
    """The floating dtype of the module's first floating parameter or buffer (float32 for a plain
    function or a module without one): the latent points are handed over in it."""
    if module is not None:
        for t in itertools.chain(module.parameters(), module.buffers()):
            if t.is_floating_point():
                return t.dtype
    return torch.float32


def _module_device(module: nn.Module | None) -> torch.device:
    """Where the module's first parameter or buffer lives (CPU for a plain function)."""
    if module is not None:
        for t in itertools.chain(module.parameters(), module.buffers()):
            return t.device
    return torch.device("cpu")


def _int_at_least(value: Any, low: int, what: str, label: str) -> int:
    try:
        ok = not isinstance(value, bool) and operator.index(value) >= low
    except TypeError:
        ok = False
    if not ok:
        kind = "a positive" if low == 1 else "a non-negative"
        raise ValueError(f"as_generator({label}): {what} must be {kind} integer, got {value!r}")
    return operator.index(value)


def _latent_dim(model: Any, latent_dim: Any, label: str) -> int:
    """The declared latent dimension, checked against a ``latent_dim`` the model exposes."""
    owner = _owner(model)[0]
    own = getattr(model, "latent_dim", getattr(owner, "latent_dim", None))
    if latent_dim is None:
        if own is None:
            raise ValueError(f"as_generator({label}): latent_dim is required (the model has no latent_dim attribute)")
        return _int_at_least(own, 1, f"{label}.latent_dim", label)
    latent_dim = _int_at_least(latent_dim, 1, "latent_dim", label)
    if own is not None and own != latent_dim:
        raise ValueError(f"as_generator({label}): latent_dim={latent_dim} but {label}.latent_dim is {own}")
    return latent_dim


@contextlib.contextmanager
def _streams_kept(device: torch.device):
    """Run a block without moving the global torch (CPU, and ``device``'s) and numpy random streams."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            np.random.set_state(state)


def _check_rows(shape: tuple[int, ...], n: int, label: str) -> None:
    if len(shape) == 0 or shape[0] != n:
        raise ValueError(f"as_generator({label}): returned shape {tuple(shape)} for {n} latent points; "
                         "expected one row per latent point")


def _numeric_array(out: Any, label: str) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"as_generator({label}): returned {type(out).__name__}; expected a numpy.ndarray "
                        "(a numpy function: ndarray in, ndarray out)")
    if not (np.issubdtype(out.dtype, np.number) or out.dtype == bool) or np.issubdtype(out.dtype, np.complexfloating):
        raise TypeError(f"as_generator({label}): returned an array of dtype {out.dtype}; expected real numbers")
    return out


def _check_finite(x: Tensor, label: str, where: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"as_generator({label}): returned NaN or inf values {where}")


def _depends_on(out: Tensor, z: Tensor) -> bool:
    """Whether ``out`` depends on ``z`` through autograd."""
    if not (out.requires_grad and out.is_floating_point()):
        return False
    try:
        return torch.autograd.grad(out.sum(), z, allow_unused=True)[0] is not None
    except RuntimeError:
        return False


def _probe_torch(fn: Callable, z: Tensor, label: str, where: str) -> tuple[tuple | None, Any]:
    """``((row shape, depends on z), None)`` when ``fn`` maps a tensor to a tensor, else ``(None,
    the exception it raised or what it returned)``."""
    zt = z.clone().requires_grad_(True)
    try:  # a numpy function may warn about a tensor it was not written for: only a guess, so hushed
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(zt)
    except (Exception, SystemExit) as exc:
        return None, exc
    if not isinstance(out, Tensor):
        return None, out
    _check_rows(tuple(out.shape), len(z), label)
    if out.device != z.device:
        raise ValueError(f"as_generator({label}): returned a tensor on device {out.device} for latents on {z.device}; "
                         "the model must return its output on the device of its input")
    _check_finite(out.detach(), label, where)
    return (tuple(out.shape[1:]), _depends_on(out, zt)), None


def _probe_numpy(fn: Callable, z: Tensor, stochastic: bool, seed: int, torch_err: Exception | None, label: str,
                 where: str) -> tuple[int, ...]:
    """Row shape of ``fn(z)`` (``fn(z, rng)`` when stochastic) on an ndarray."""
    zn = z.cpu().numpy().astype(np.float64)
    try:
        out = fn(zn, np.random.default_rng(seed)) if stochastic else fn(zn)
    except (Exception, SystemExit) as exc:
        msg = _first_line(exc)
        if torch_err is not None and _first_line(torch_err) != msg:
            msg = f"{_first_line(torch_err)} with a torch tensor and {msg} with a numpy array"
        hint = ""
        if not stochastic and _required_positional(fn) == 2:
            hint = " (a simulator f(z, rng)? pass stochastic=True)"
        elif stochastic and _required_positional(fn) == 1:
            hint = " (stochastic=True calls a numpy function as f(z, rng), and this one takes only z)"
        raise ValueError(f"as_generator({label}): raised {msg} {where}{hint}") from None
    out = _numeric_array(out, label)
    _check_rows(out.shape, len(zn), label)
    _check_finite(torch.as_tensor(out.astype(np.float64)), label, where)
    return tuple(out.shape[1:])


def _required_positional(fn: Callable) -> int | None:
    """How many positional arguments ``fn`` needs (2 for a simulator ``f(z, rng)``); None when
    its signature cannot be read."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds and p.default is inspect.Parameter.empty for p in params)


def _probe(fn: Callable, latent_dim: int, device: torch.device, stochastic: bool, seed: int, torch_only: bool,
           label: str, dtype: torch.dtype = torch.float32) -> tuple[str, tuple[int, ...], bool]:
    """Call ``fn`` on fixed latent points (of ``dtype``, a module's own), torch first then numpy:
    ``(backend, row shape, x depends on z through autograd)``."""
    z = torch.randn(PROBE_ROWS, latent_dim, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    where = f"on {PROBE_ROWS} latent points of dimension {latent_dim}"
    with _streams_kept(device):
        found, other = _probe_torch(fn, z, label, where)
        if found is not None:
            return "torch", found[0], found[1]
        torch_err = other if isinstance(other, Exception) else None
        if torch_only and torch_err is not None:
            raise ValueError(f"as_generator({label}): raised {_first_line(torch_err)} {where}")
        if torch_only:
            raise TypeError(f"as_generator({label}): returned {type(other).__name__}; expected a torch.Tensor")
        return "numpy", _probe_numpy(fn, z, stochastic, seed, torch_err, label, where), False


def _data_shape(rows: tuple[int, ...], data_shape: Any, label: str) -> tuple[int, ...]:
    """The layout of one output row: declared (same number of values) or read off the probe."""
    if len(rows) not in (0, 1, 2, 3) or int(np.prod(rows)) == 0:
        raise ValueError(f"as_generator({label}): returned rows of shape {rows}; expected (D,), (H, W) or (C, H, W)")
    found = check_data_shape(rows or (1,), name=f"as_generator({label}) output rows")
    if data_shape is None:
        return found
    shape = check_data_shape(data_shape, name=f"as_generator({label}): data_shape")
    if int(np.prod(shape)) != int(np.prod(found)):
        raise ValueError(f"as_generator({label}): data_shape {shape} holds {int(np.prod(shape))} values per row, "
                         f"but the model returns rows of shape {rows} ({int(np.prod(found))} values)")
    return shape


def _flag(value: Any, what: str, label: str) -> bool | None:
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"as_generator({label}): {what} must be True, False or None, got {value!r}")
    return None if value is None else bool(value)


def _differentiable(declared: bool | None, backend: str, depends: bool, label: str) -> bool:
    if declared and backend == "numpy":
        raise ValueError(f"as_generator({label}): differentiable=True, but a numpy function passes no gradients")
    if declared and not depends:
        raise ValueError(f"as_generator({label}): differentiable=True, but its output does not depend on z "
                         "through autograd")
    return depends if declared is None else declared


def _invertible(declared: bool | None, model: Any, label: str) -> bool:
    owner = _owner(model)[0]
    if declared and not callable(getattr(model, "inverse", getattr(owner, "inverse", None))):
        raise ValueError(f"as_generator({label}): invertible=True, but it has no inverse(x) method")
    return bool(declared)


def _check_prior(prior: Any, latent_dim: int, label: str) -> Distribution | None:
    if prior is None:
        return None
    if not isinstance(prior, Distribution):
        raise TypeError(f"as_generator({label}): prior must be a torch.distributions.Distribution, "
                        f"got {type(prior).__name__}")
    if tuple(prior.batch_shape) != () or tuple(prior.event_shape) != (latent_dim,):
        raise ValueError(f"as_generator({label}): prior has batch shape {tuple(prior.batch_shape)} and event shape "
                         f"{tuple(prior.event_shape)}; expected event shape ({latent_dim},) (latent_dim), e.g. "
                         "Independent(Normal(loc, scale), 1)")
    return prior


def _map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """A copy of a distribution (or transform) with ``fn`` applied to every tensor it holds, so a
    user's prior follows ``.to(device)`` like a buffer."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    if not isinstance(obj, (Distribution, Transform)):
        return obj
    new = copy.copy(obj)
    for k, v in vars(obj).items():
        if isinstance(v, (Tensor, Distribution, Transform, list, tuple)):
            new.__dict__[k] = _map_tensors(v, fn)
    return new


class AdaptedGenerator(Generator):
    """What every adapter shares: settings, the prior (standard normal or the user's, on the
    generator's device), float32 rows checked against the probed shape, finite generation."""

    wraps_user_model = True

    def __init__(self, latent_dim: int, data_shape, differentiable: bool, invertible: bool, stochastic: bool,
                 seed: int, name: str, prior: Distribution | None, device: torch.device) -> None:
        shape = check_data_shape(data_shape)
        super().__init__(latent_dim, int(np.prod(shape)), own_prior=False, data_shape=shape)
        self.differentiable, self.invertible, self.stochastic = bool(differentiable), bool(invertible), bool(stochastic)
        self.seed, self.name = int(seed), str(name)
        self.register_buffer("device_anchor", torch.zeros(0, device=device), persistent=False)
        self.user_prior = None if prior is None else _map_tensors(prior, lambda t: t.to(device))

    @property
    def device(self) -> torch.device:
        return self.device_anchor.device

    @property
    def prior(self) -> Distribution:
        """The user's prior, or a standard normal, on the generator's device."""
        if self.user_prior is not None:
            return self.user_prior
        zero = torch.zeros(self.latent_dim, device=self.device)
        return DiagonalNormal(zero, torch.ones_like(zero))

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.user_prior is not None:
            self.user_prior = _map_tensors(self.user_prior, fn)
        return self

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "data_shape": list(self.data_shape),
                "differentiable": self.differentiable, "invertible": self.invertible, "stochastic": self.stochastic,
                "seed": self.seed, "name": self.name, "prior": "standard_normal" if self.user_prior is None else "user"}

    def _rows(self, x: Tensor, n: int) -> Tensor:
        """``x`` as float32 rows ``(n, data_dim)`` on the generator's device."""
        if not isinstance(x, Tensor):
            raise TypeError(f"as_generator({self.name}): returned {type(x).__name__}; expected a torch.Tensor")
        _check_rows(tuple(x.shape), n, self.name)
        if n and x[0].numel() != self.data_dim:
            raise ValueError(f"as_generator({self.name}): returned rows of shape {tuple(x.shape[1:])}, but "
                             f"{self.data_shape} ({self.data_dim} values) at the first call")
        return x.reshape(n, self.data_dim).to(self.device, torch.float32)

    def check_chunk(self, x: Tensor) -> Tensor:
        """A user's model is not trusted to stay finite away from the probe: each generated chunk is checked."""
        _check_finite(x, self.name, f"in a chunk of {len(x)} generated rows")
        return x

    @classmethod
    def from_config(cls, cfg: dict, user: Any = None) -> "AdaptedGenerator":
        """The generator of the user's ``user`` (a model, function, or a generator built by
        :func:`as_generator`), checked against the saved settings."""
        if user is None:
            raise ValueError(NEEDS_BASE)
        if isinstance(user, Generator):
            gen = user
        elif cfg.get("prior", "standard_normal") != "standard_normal":
            raise ValueError("this checkpoint's base has its own prior; pass base=as_generator(<the same model>, "
                             "prior=<the same prior>, ...)")
        else:
            gen = cls._adapt(user, cfg)
        want = (cls.family, cfg.get("latent_dim"), list(cfg.get("data_shape") or ()), cfg.get("backend"), cfg.get("call"))
        have = (gen.family, gen.latent_dim, list(gen.data_shape), getattr(gen, "backend", None), getattr(gen, "call", None))
        if want != have:
            raise ValueError(f"base= does not match the checkpoint: it gives (family, latent_dim, data_shape, backend, "
                             f"method) = {have}, the checkpoint holds {want}")
        return gen


    @staticmethod
    def _adapt(user: Any, cfg: dict) -> "AdaptedGenerator":
        """``as_generator(user)`` with the saved settings; a misfit is one line about ``base=``."""
        call = cfg.get("call")  # the saved model was a method of the module, e.g. vae.decode
        fn = getattr(user, call, user) if call and isinstance(user, nn.Module) else user
        keys = ("latent_dim", "data_shape", "differentiable", "invertible", "stochastic", "seed")
        try:
            return as_generator(fn, **{k: cfg.get(k) for k in keys})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"base= does not match the checkpoint: {exc}") from None


@register_family("module")
class ModuleGenerator(AdaptedGenerator):
    """A user's ``nn.Module`` (or its method ``call``, e.g. ``"decode"``) as a generator; its
    weights are the generator's state and are saved with it."""

    def __init__(self, model: nn.Module, call: str | None = None, **settings) -> None:
        super().__init__(**settings)
        self.model, self.call = model, call

    def config(self) -> dict:
        return {**super().config(), "call": self.call}

    def _fn(self) -> Callable:
        return self.model if self.call is None else getattr(self.model, self.call)

    def forward(self, z: Tensor) -> Tensor:
        # the latent points in the module's own dtype (a float64 model takes float64 z)
        return self._rows(_user_call(self.name, self._fn(), z.to(_module_dtype(self.model))), len(z))

    def inverse(self, x: Tensor) -> Tensor:
        """``z = g⁻¹(x)`` by the model's own ``inverse`` (only when declared invertible)."""
        if not self.invertible:
            raise ValueError(f"{self.name} was not declared invertible (as_generator(..., invertible=True))")
        return self.model.inverse(x)

    def log_prob(self, x: Tensor) -> Tensor:
        """The model's own ``log_prob(x)``, when it has one."""
        if not callable(getattr(self.model, "log_prob", None)):
            raise ValueError(f"{self.name} has no log_prob(x) method")
        return self.model.log_prob(x)


@register_family("callable")
class CallableGenerator(AdaptedGenerator):
    """A user's batched function ``z -> x`` (torch or numpy; ``f(z, rng)`` with hidden randomness
    when stochastic, drawn from the adapter's own seeded stream). It has no weights: a checkpoint
    holds its settings only."""

    def __init__(self, fn: Callable, backend: str, **settings) -> None:
        super().__init__(**settings)
        self.fn, self.backend = fn, backend
        self.reseed()

    def reseed(self, seed: int | None = None) -> "CallableGenerator":
        """Restart the hidden-randomness stream at ``seed`` (default: the adapter's own)."""
        self.seed = self.seed if seed is None else int(seed)
        self.rng = np.random.default_rng(self.seed)
        return self

    @contextlib.contextmanager
    def seeded_stream(self, seed: int):
        """Run the block with the hidden-randomness stream started at ``seed``; afterwards the
        adapter's own seed and stream are back where they were."""
        own = self.seed, self.rng
        self.rng = np.random.default_rng(int(seed))
        try:
            yield self
        finally:
            self.seed, self.rng = own

    def config(self) -> dict:
        return {**super().config(), "backend": self.backend}

    def forward(self, z: Tensor) -> Tensor:
        if self.backend == "torch":
            return self._rows(_user_call(self.name, self.fn, z), len(z))
        zn = z.detach().cpu().numpy().astype(np.float64)
        args = (zn, self.rng) if self.stochastic else (zn,)
        out = _numeric_array(_user_call(self.name, self.fn, *args), self.name)
        return self._rows(torch.from_numpy(np.asarray(out, dtype=np.float32)), len(z))

    def inverse(self, x: Tensor) -> Tensor:
        if not self.invertible:
            raise ValueError(f"{self.name} was not declared invertible (as_generator(..., invertible=True))")
        return self.fn.inverse(x)


def as_generator(model: Any, latent_dim: int | None = None, data_shape=None, prior: Distribution | None = None,
                 differentiable: bool | None = None, invertible: bool | None = None, stochastic: bool = False,
                 seed: int = 0, name: str | None = None) -> Generator:
    """Wrap a user's model or function as a :class:`Generator` (see the module docstring).

    Args:
        model: an ``nn.Module`` or a bound method of one (genrefine works on a copy in eval mode,
            fed latent points in the module's dtype; yours is left as it is), a batched torch
            callable, a numpy callable ``f(z)``, or ``f(z, rng)`` with ``stochastic=True``.
        latent_dim: dimension of ``z``; may be left out when ``model.latent_dim`` exists.
        data_shape: layout of one output row (``(D,)``, ``(C, H, W)``); read off the output if None.
        prior: a ``torch.distributions.Distribution`` with event shape ``(latent_dim,)``
            (default standard normal); it follows ``.to(device)``.
        differentiable: None infers it (torch: does ``x`` depend on ``z`` through autograd?).
        invertible: only when declared (the model must then have ``inverse``).
        stochastic: ``x`` carries hidden randomness besides ``z``; a numpy function then takes
            ``(z, rng)`` and is fed from a ``numpy.random.Generator`` seeded with ``seed``.
        name: how errors and the checkpoint name the model (default its class or function name).

    Returns a ``"module"`` generator (weights saved with it) or a ``"callable"`` one (settings only).
    Every bad input is one ValueError/TypeError line naming the model.
    """
    if isinstance(model, Generator):
        return model
    label = _label(model, name)
    if isinstance(model, type):
        raise TypeError(f"as_generator({label}): got the class {model.__name__}, not a model; pass an instance "
                        f"({model.__name__}(...)) or a function")
    if not callable(model):
        raise TypeError(f"as_generator: model must be a torch nn.Module or a callable z -> x, got {type(model).__name__}")
    latent_dim = _latent_dim(model, latent_dim, label)
    declared = (_flag(differentiable, "differentiable", label), _flag(invertible, "invertible", label),
                _flag(stochastic, "stochastic", label))
    seed = _int_at_least(seed, 0, "seed", label)
    owner, call = _owner(model)
    if owner is not None:
        owner = _private_copy(owner, label).eval()
        model = owner if call is None else getattr(owner, call)
    device = _module_device(owner)
    backend, rows, depends = _probe(model, latent_dim, device, bool(stochastic), seed, owner is not None, label,
                                    _module_dtype(owner))
    settings = dict(latent_dim=latent_dim, data_shape=_data_shape(rows, data_shape, label),
                    differentiable=_differentiable(declared[0], backend, depends, label),
                    invertible=_invertible(declared[1], model, label), stochastic=bool(stochastic), seed=seed,
                    name=label, prior=_check_prior(prior, latent_dim, label), device=device)
    if owner is not None:
        return ModuleGenerator(owner, call, **settings)
    return CallableGenerator(model, backend, **settings)
