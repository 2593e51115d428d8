"""One seeding function, explicit generators, one determinism switch."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Turn deterministic algorithms on or off (cuDNN, cuBLAS workspace, TF32)."""
    import torch

    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: a few CUDA kernels (e.g. bilinear-interpolation backward) have no deterministic version; on CPU
    # every op used here is deterministic, which is where bitwise claims are made and tested.
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cuda.matmul.allow_tf32 = not enabled
    torch.backends.cudnn.allow_tf32 = not enabled


def item_rng(*keys: int) -> np.random.Generator:
    """A NumPy generator that depends only on ``keys`` (e.g. seed, epoch, index).

    Sampling drawn from it is the same in the main process and in any DataLoader worker, whatever the worker count.
    """
    return np.random.default_rng([int(k) % (2**63) for k in keys])
