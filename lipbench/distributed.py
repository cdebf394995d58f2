"""Sharding a sweep over processes started by torchrun (one GPU each).

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for a
single process. The run directory is the only thing ranks share: each unit is a file,
so merging is reading the files, and rank 0 evaluates and reports after a barrier.
"""

from __future__ import annotations

import contextlib
import os


def rank_and_world() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        _init()
    return int(os.environ.get("RANK", "0")), world


def _init() -> None:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)


def rank_device(device: str) -> str:
    """'cuda' becomes this rank's own GPU (cuda:LOCAL_RANK) under torchrun."""
    if str(device) == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return str(device)


def barrier() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        _init()
        dist.barrier()


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def all_ranks_agree(ok: bool) -> bool:
    """True on every rank when `ok` is True on every rank (one all-reduce)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ok
    import torch
    import torch.distributed as dist

    _init()
    flag = torch.tensor([1 if ok else 0])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


@contextlib.contextmanager
def rank0_lock(run, wait: bool = False):
    """The run directory's lock, held by rank 0 for the whole job. When rank 0 cannot get
    it, every rank stops with the reason (instead of waiting forever at a barrier)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        with run.lock(wait):
            yield
        return
    with contextlib.ExitStack() as stack:
        error = None
        if is_main():
            try:
                stack.enter_context(run.lock(wait))
            except Exception as exc:
                error = exc
        if not all_ranks_agree(error is None):
            if error is not None:
                raise error
            from lipbench.rundir import RunLocked

            raise RunLocked(f"{run.root}: rank 0 could not take the run directory's lock")
        yield
