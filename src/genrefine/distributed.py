"""Running under ``torchrun``: the process group and the few collective steps genrefine needs.

``torchrun --nproc-per-node N -m genrefine sample ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`init` joins them in a process
group (gloo on CPU, nccl on CUDA). Outside torchrun every function here is the one-process case:
rank 0 of 1, gathers of one item, no barrier.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str) -> torch.device:
    """Join torchrun's process group when launched by it (gloo for CPU, nccl for CUDA) and return
    this rank's device (``cuda:LOCAL_RANK`` for a CUDA request)."""
    dev = torch.device(device)
    if dev.type == "cuda" and launched():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if launched() and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def finish() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_and_size() -> tuple[int, int]:
    """``(rank, world size)``: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(item: Any) -> list[Any]:
    """Every rank's ``item``, in rank order, on every rank (a picklable record)."""
    _, world = rank_and_size()
    if world == 1:
        return [item]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, item)
    return out


def from_rank0(work: Callable[[], Any]) -> Any:
    """``work()`` run on rank 0 and its result given to every rank; an error there (a ValueError
    naming a bad input) is raised on every rank, so no rank waits forever."""
    rank, world = rank_and_size()
    if world == 1:
        return work()
    box: list[Any] = [None]
    if rank == 0:
        try:
            box[0] = ("ok", work())
        except ValueError as exc:
            box[0] = ("error", str(exc))
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise ValueError(value)
    return value
