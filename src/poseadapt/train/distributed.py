"""DDP plumbing: process-group setup from torchrun's environment, rank queries and small collectives.

`torchrun --nproc_per_node N -m poseadapt.cli.main train RECIPE` (or `torchrun ... $(which poseadapt) train ...`)
sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; a plain run is world size 1 and never touches
torch.distributed. The backend is NCCL on CUDA and gloo on CPU. Rank 0 logs and writes checkpoints; the others
wait at a barrier where it matters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from poseadapt.errors import PoseAdaptError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank / world size / local rank from torchrun's environment variables (world size 1 without them)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def resolve_device(spec: str, info: DistInfo) -> torch.device:
    """'auto' -> cuda:LOCAL_RANK when CUDA is available, else cpu; 'cuda' gets the local rank appended."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise PoseAdaptError(f"recipe key 'train.device': '{spec}' but CUDA is not available here (use auto or cpu)")
    if spec == "cuda" and info.enabled:
        spec = f"cuda:{info.local_rank}"
    device = torch.device(spec)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched with world size > 1 (NCCL on CUDA, gloo otherwise)."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (a stop request must stop all ranks at the same step)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj` on every rank (a list of world-size entries); [obj] without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank.

    DDP broadcasts them at the start of each forward, so after the last step each rank holds its own batch's
    statistics; syncing before validation and saving makes every rank hold the exact model rank 0 saves.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def weights_checksum(module: torch.nn.Module) -> str:
    """A digest of every parameter and buffer, bit for bit."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_ranks_agree(module: torch.nn.Module, device: torch.device) -> None:
    """All ranks must hold the same weights at the end of a DDP run; one line naming the ranks otherwise.

    Cheap insurance against a gradient that was never all-reduced (a stage switch without re-wrapping DDP).
    """
    sums = gather_objects(weights_checksum(module))
    if len(set(sums)) > 1:
        differ = [r for r, s in enumerate(sums) if s != sums[0]]
        raise PoseAdaptError(f"DDP ranks ended with different weights (rank 0 vs ranks {differ}): training is broken")
