"""Sharding a sweep over processes started by torchrun (one GPU each).

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for a
single process. The run directory is the only thing ranks share: each unit is a file,
so merging is reading the files, and rank 0 evaluates and reports after a barrier.
"""

from __future__ import annotations

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
