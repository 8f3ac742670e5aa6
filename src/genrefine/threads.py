"""Independent solver calls on the threads the process may use.

POT's exact solvers release the GIL, so exact EMDs and transport plans of independent point sets
run side by side on the threads that torch is allowed (``torch.get_num_threads()``): one at a
time in a one-thread process, as many as the cores a user gives it otherwise. Results come back
in the order of the inputs, so a seeded fit gives the same numbers on any thread count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def workers() -> int:
    """The threads a solver may use: torch's intra-op thread count (at least 1)."""
    import torch

    return max(1, int(torch.get_num_threads()))


def map_solves(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, the calls spread over :func:`workers` threads."""
    items = list(items)
    n = min(workers(), len(items))
    if n <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, items))
