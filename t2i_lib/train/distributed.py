"""Multi-process training on PyTorch's own stack: ``torchrun`` sets the environment, ``torch.distributed`` joins
the processes, ``DistributedDataParallel`` averages gradients.  Nothing here launches processes or reduces
gradients by hand.

Semantics (documented in the README, tested with 2 CPU processes and gloo in ``tests/test_distributed.py``):

- the configured batch size is the **global** batch; each of the W ranks loads its B / W slice of every global
  batch (:class:`ShardSampler`: one global order per epoch, identical on every rank);
- losses that couple the samples of a batch (DAMSM's B x B word/sentence matching, NT-Xent) see the global batch:
  each rank gathers the others' features with the autograd-aware ``torch.distributed.nn.functional.all_gather``
  and computes the same global loss.  The backward of the gather sums the W identical contributions to each
  rank's own slice and DDP's averaging divides by W, so the gradient equals the single-process gradient of the
  global batch;
- learning rates are those of the global batch (no scaling);
- rank 0 alone writes logs, checkpoints, samples and metrics; the other ranks wait at barriers.

Launch: ``torchrun --nproc_per_node=N -m t2i_lib pretrain-damsm ...`` (one node); several nodes: the same on each
node with ``--nnodes=M --node_rank=K --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init(device_spec: str | torch.device | None = None) -> tuple[DistInfo, torch.device | None]:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); returns ``(info, device)``.

    ``device_spec`` "cpu" uses gloo; otherwise, with CUDA available, NCCL and ``cuda:LOCAL_RANK``.  Outside
    torchrun returns ``(SINGLE, None)`` (the caller resolves the device as usual).  Idempotent."""
    if env_world_size() <= 1:
        return SINGLE, None
    info = DistInfo(int(os.environ["RANK"]), env_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    want_cpu = str(device_spec or "").startswith("cpu") or not torch.cuda.is_available()
    if want_cpu:
        device = torch.device("cpu")
    else:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("gloo" if want_cpu else "nccl")
    return info, device


def current() -> DistInfo:
    """The DistInfo of this process (SINGLE when no process group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return SINGLE
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast(obj, info: DistInfo, src: int = 0):
    """``obj`` of rank ``src`` on every rank (picklable objects)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_cat(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0, in rank order, with gradients flowing back to each rank's own
    slice (identity on a single process)."""
    if not info.enabled:
        return x
    from torch.distributed.nn.functional import all_gather

    return _ContiguousGrad.apply(torch.cat(all_gather(x.contiguous(), group=_gather_group()), dim=0))


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.  The gather's backward hands each slice of
    its gradient to a collective; a gradient with broadcast (stride-0) or permuted strides from the loss would
    otherwise be exchanged as raw memory in the wrong layout."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


_GATHER_GROUP = None


def _gather_group():
    """A process group of its own for the feature gathers inside the loss: their backward collectives run while
    DDP's gradient all-reduces are in flight, and sharing one group lets the two interleave differently on
    different ranks (wrong tensors exchanged silently on gloo)."""
    global _GATHER_GROUP
    if _GATHER_GROUP is None:
        _GATHER_GROUP = dist.new_group()
    return _GATHER_GROUP


def wrap(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` when distributed and the module has trainable parameters."""
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, output_device=ids[0] if ids else None, broadcast_buffers=False)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)


class ShardSampler(torch.utils.data.Sampler):
    """This rank's slice of every global batch of one epoch: a seeded permutation of ``n`` items, cut into global
    batches of ``batch_size`` (the last partial one dropped), each split into ``world_size`` equal slices.  With
    one process it is the plain seeded shuffled order."""

    def __init__(self, n: int, batch_size: int, seed: int, info: DistInfo = SINGLE):
        if batch_size % info.world_size:
            raise ValueError(f"the global batch size {batch_size} is not divisible by the {info.world_size} "
                             f"processes; choose a multiple of {info.world_size}")
        self.n, self.batch_size, self.seed, self.info = n, batch_size, int(seed), info
        self.local = batch_size // info.world_size

    def __len__(self) -> int:
        return (self.n // self.batch_size) * self.local

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(self.n, generator=g).tolist()
        lo = self.info.rank * self.local
        for b in range(self.n // self.batch_size):
            yield from order[b * self.batch_size + lo: b * self.batch_size + lo + self.local]


def shutdown(info: DistInfo) -> None:
    """Leave the process group (end of a torchrun command)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
