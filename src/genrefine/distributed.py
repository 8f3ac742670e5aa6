"""Running under ``torchrun``: the process group and the few collective steps genrefine needs.

``torchrun --nproc-per-node N -m genrefine sample ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`init` joins them in a process
group (gloo on CPU, nccl on CUDA). Outside torchrun every function here is the one-process case:
rank 0 of 1, gathers of one item, no barrier.
"""

from __future__ import annotations

import os
import sys
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


def finish(wait: bool = True) -> None:
    """Leave the process group, if this process joined one. ``wait``: first meet every rank at a
    barrier, so that no rank tears its connections down while another still uses them (gloo
    can abort the process then); pass False on an error path, where another rank may never
    arrive."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def leave(code: int) -> None:
    """End a torchrun process that has finished its work (and left the process group) with exit
    status ``code``, skipping the interpreter's teardown: there the process group's C++ threads
    are sometimes destroyed while still joinable, and the process aborts ("terminate called
    without an active exception", about one run in twenty) after all of its work is done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


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
    """``work()`` run on rank 0 and its result given to every rank; an error there (a ValueError,
    TypeError or OSError naming a bad input) is raised on every rank as a ValueError, so no rank
    waits forever. Rank 0 raises its own exception, with its type."""
    rank, world = rank_and_size()
    if world == 1:
        return work()
    box: list[Any] = [None]
    error: BaseException | None = None
    if rank == 0:
        try:
            box[0] = ("ok", work())
        except (ValueError, TypeError, OSError) as exc:
            box[0], error = ("error", str(exc)), exc
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        if error is not None:
            raise error
        raise ValueError(value)
    return value


class DataParallel:
    """DistributedDataParallel's rule for :func:`genrefine.training.train_loop`: every rank starts
    from rank 0's parameters and buffers, trains on its own share of each global batch, and
    before every optimizer step the gradients are summed over the ranks, each weighted by its
    share of the batch (:attr:`share`), so that every rank takes the step one process would take
    on the whole batch. The ranks' parameters stay equal without being sent again.

    It hooks the optimizers (``register_step_pre_hook``) instead of wrapping the modules in
    ``torch.nn.parallel.DistributedDataParallel`` because genrefine's training steps drive
    several optimizers over modules they call directly (a GAN's k critic steps per generator
    step, gradient penalties through ``torch.autograd.grad``, which DDP does not support).
    The gradients of one step travel as one flat tensor (one all-reduce per optimizer step);
    a gradient that is ``None`` stays ``None`` (the ranks run the same code, so the same ones are).
    """

    def __init__(self, modules: dict, optimizers: dict) -> None:
        self.modules = list(modules.values())
        self.share = 1.0
        self.sync_buffers()
        with torch.no_grad():
            for m in self.modules:
                for p in m.parameters():
                    dist.broadcast(p.data, 0)
        self.handles = [opt.register_step_pre_hook(self._average) for opt in optimizers.values()]

    def _average(self, opt, args, kwargs) -> None:
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(self.share)
        dist.all_reduce(flat)
        for g, part in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    def sync_buffers(self) -> None:
        """Rank 0's buffers (batch-norm statistics) on every rank."""
        with torch.no_grad():
            for m in self.modules:
                for b in m.buffers():
                    dist.broadcast(b.data, 0)

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """``values`` (in key order) summed over the ranks."""
        if not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_wire())
        dist.all_reduce(t)
        return dict(zip(keys, t.cpu().tolist()))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _wire() -> torch.device:
    """Where a collective's tensor must lie: the rank's GPU under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shared_seed() -> int:
    """A seed drawn from rank 0's torch stream and given to every rank."""
    box = torch.randint(0, 2 ** 62, (1,), dtype=torch.int64)
    if rank_and_size()[1] > 1:
        box = box.to(_wire())
        dist.broadcast(box, 0)
    return int(box.cpu())


def agree_max(value: float) -> float:
    """The largest of every rank's ``value`` (a rejection bound); ``value`` itself in one process."""
    if rank_and_size()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_wire())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.cpu())
