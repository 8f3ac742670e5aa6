"""The one timer: wall-clock seconds of a call, synchronised with the device when it is a GPU."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def timed(fn: Callable[[], T], device: torch.device | str | None = None) -> tuple[T, float]:
    """``(fn(), seconds)``; on CUDA the device is synchronised before the clock stops, so the
    seconds include the queued kernels."""
    t0 = time.perf_counter()
    out = fn()
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def best_time(fn: Callable[[], object], repeats: int, device: torch.device | str | None = None) -> float:
    """The smallest of ``repeats`` timings of ``fn()`` (a shared machine's slow spells only add)."""
    return min(timed(fn, device)[1] for _ in range(max(1, int(repeats))))
