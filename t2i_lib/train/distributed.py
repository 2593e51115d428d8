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

- batch normalisation uses the statistics of the global batch: ``torch.nn.SyncBatchNorm`` on GPUs, and on CPU
  (gloo, where SyncBatchNorm does not run) :class:`CrossRankBatchNorm`, the same computation written with the
  autograd-aware ``torch.distributed.nn.functional.all_reduce`` (:func:`sync_batchnorm` picks one);
- GAN discriminators are called through :class:`Heads`, a module whose forward returns the logits a loss needs,
  so that every forward whose backward updates D goes through DDP (a method of the unwrapped module would
  bypass DDP's gradient averaging silently); the generator step calls the unwrapped, frozen D.

Launch: ``torchrun --nproc_per_node=N -m t2i_lib pretrain-damsm ...`` or ``... train-gan EXPERIMENT`` (one
node); several nodes: the same on each node with ``--nnodes=M --node_rank=K
--rdzv_backend=c10d --rdzv_endpoint=HOST:PORT``.
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


def check_divisible(batch_size: int | None, info: DistInfo) -> None:
    """Refuse a global batch that does not split evenly over the processes."""
    if info.enabled and (batch_size is None or batch_size % info.world_size):
        raise ValueError(f"the global batch size {batch_size} is not divisible by the {info.world_size} "
                         f"processes; choose a multiple of {info.world_size}")


def rank_slices(order: list[int], batch_size: int, info: DistInfo) -> list[int]:
    """This rank's part of ``order`` cut into global batches of ``batch_size`` (the last partial one dropped):
    slice ``rank`` of ``world_size`` equal slices of each.  With one process, the whole batches in order."""
    local = batch_size // info.world_size
    lo = info.rank * local
    return [i for k in range(len(order) // batch_size) for i in order[k * batch_size + lo:k * batch_size + lo + local]]


class ShardSampler(torch.utils.data.Sampler):
    """This rank's slice of every global batch of one epoch: a seeded permutation of ``n`` items, cut into global
    batches of ``batch_size`` (the last partial one dropped), each split into ``world_size`` equal slices.  With
    one process it is the plain seeded shuffled order."""

    def __init__(self, n: int, batch_size: int, seed: int, info: DistInfo = SINGLE):
        check_divisible(batch_size, info)
        self.n, self.batch_size, self.seed, self.info = n, batch_size, int(seed), info
        self.local = batch_size // info.world_size

    def __len__(self) -> int:
        return (self.n // self.batch_size) * self.local

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        return iter(rank_slices(torch.randperm(self.n, generator=g).tolist(), self.batch_size, self.info))


def gather_nograd(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Every rank's ``x`` concatenated along dim 0 in rank order, without gradients (labels, text features)."""
    if not info.enabled:
        return x
    out = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(out, x.contiguous(), group=_gather_group())
    return torch.cat(out, dim=0)


def mean_over_ranks(terms: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """The mean over ranks of scalar loss terms (one all-reduce for all of them); identity on one process."""
    if not info.enabled or not terms:
        return terms
    keys = sorted(terms)
    flat = torch.stack([terms[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat = flat / info.world_size
    return {k: flat[i] for i, k in enumerate(keys)}


class CrossRankBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all ranks, for CPU process groups (gloo) where
    ``torch.nn.SyncBatchNorm`` refuses to run.  Training mode: per-channel sum and sum of squares (and the sample
    count) are summed over ranks with the autograd-aware ``torch.distributed.nn.functional.all_reduce`` (its
    backward sums the gradients over ranks, so each rank receives the gradient of the global statistics), the
    input is normalised with the biased global variance and the running statistics are updated with the unbiased
    one, as ``BatchNorm`` does on one process holding the whole batch.  Evaluation mode and single processes use
    the running statistics / plain ``F.batch_norm``.  Accepts any input of rank >= 2 (channels on dim 1)."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"CrossRankBatchNorm expects at least 2-D input (N, C, ...), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        info = current()
        use_batch = self.training or not self.track_running_stats
        if not use_batch or not info.enabled:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        stats = torch.cat([xf.sum(dims), xf.pow(2).sum(dims), count])
        stats = all_reduce(stats, group=_gather_group())
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean.pow(2)).clamp_min(0)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / max(float(n) - 1, 1.0), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """Every ``BatchNorm*d`` of ``module`` normalising over the global batch when distributed: PyTorch's
    ``SyncBatchNorm`` on CUDA, :class:`CrossRankBatchNorm` on CPU.  Parameters and buffers are kept (the same
    tensors), so state dicts and checkpoints are interchangeable with single-process runs."""
    if not info.enabled:
        return module
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: torch.nn.Module) -> torch.nn.Module:
    bn = torch.nn.modules.batchnorm._BatchNorm
    if isinstance(module, bn) and not isinstance(module, CrossRankBatchNorm):
        out = CrossRankBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        new = _convert_cpu(child)
        if new is not child:
            setattr(module, name, new)
    return module


class Heads(torch.nn.Module):
    """``fn(module, *args)`` as a module holding ``module``: the unit DDP wraps for a discriminator, whose losses
    need its feature trunk and one or more heads in one forward."""

    def __init__(self, module: torch.nn.Module, fn):
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *args, **kwargs):
        return self.fn(self.module, *args, **kwargs)


def launch(argv: list[str], nproc_per_node: int, nnodes: int = 1, rdzv_endpoint: str = "localhost:0",
           max_restarts: int = 0) -> None:
    """Run ``python -m t2i_lib *argv`` on ``nproc_per_node`` processes through PyTorch's elastic launcher (what
    ``torchrun`` calls), e.g. from a notebook: ``launch(["train-gan", "ssagan_both", "--profile", "demo"], 2)``.
    Raises ``torch.distributed.elastic.multiprocessing.errors.ChildFailedError`` naming the failed rank."""
    import sys
    import uuid

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    cfg = LaunchConfig(min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=nproc_per_node, run_id=uuid.uuid4().hex,
                       rdzv_backend="c10d", rdzv_endpoint=rdzv_endpoint, max_restarts=max_restarts,
                       monitor_interval=0.5)
    elastic_launch(cfg, sys.executable)("-m", "t2i_lib", *[str(a) for a in argv])


def shutdown(info: DistInfo) -> None:
    """Leave the process group (end of a torchrun command)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
