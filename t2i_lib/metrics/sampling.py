"""Sampling a trained generator for evaluation: per-sample seeded noise, streamed or saved as PNG.

Sample ``i`` of an evaluation uses noise drawn from its own generator seeded ``eval_seed + i`` and the caption
``(item_index[i], caption_index[i])`` of the test split, so the images do not depend on the batch size, on the
order of generation or on how many runs came before.  Captions longer than ``max_words`` are truncated (the
deterministic mode) unless the dataset says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..data.text import fixed_length
from ..utils.seed import item_rng


def sample_noise(indices: Sequence[int], z_dim: int, eval_seed: int) -> torch.Tensor:
    """Noise rows for sample indices, each from its own generator (seed = eval_seed + index)."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(eval_seed) + int(i)))
                        for i in indices])


def class_interleaved_order(class_ids: Sequence[int], seed: int) -> np.ndarray:
    """All item indices, ordered so that every prefix covers the classes evenly: classes in a seeded order, items
    of a class in a seeded order, then round-robin over the classes (one item of each class, then a second of
    each, ...).  Depends only on the class ids and ``seed``, so it is the same for every arm of a study."""
    cls = np.asarray(class_ids)
    rng = np.random.default_rng([int(seed) % (2**63), 3])
    classes = rng.permutation(np.unique(cls))
    queues = [rng.permutation(np.flatnonzero(cls == c)) for c in classes]
    order = [int(q[r]) for r in range(max(len(q) for q in queues)) for q in queues if r < len(q)]
    return np.asarray(order, dtype=np.int64)


def eval_plan(dataset, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(item_index, caption_index) of ``n_samples`` queries: passes over the test split in class-interleaved order
    (:func:`class_interleaved_order`, so fewer samples than images still spread over all classes; test splits are
    often stored class by class), one seeded random caption per image per pass (T2I_CL/DM-GAN's sampler makes
    several passes to reach 30,000).  Seeded, the same for every arm."""
    n = len(dataset)
    order = class_interleaved_order(dataset.class_ids, seed)
    items = order[np.arange(n_samples) % n]
    caps = np.array([int(item_rng(seed, 2, i).integers(len(dataset.records[items[i]]["tokens"])))
                     for i in range(n_samples)], dtype=np.int64)
    return items, caps


def encode_captions(dataset, items: Sequence[int], caps: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    ids, lens = [], []
    for i, c in zip(items, caps):
        arr, k = fixed_length(dataset.records[int(i)]["tokens"][int(c)], dataset.max_words, "truncate")
        ids.append(torch.from_numpy(arr))
        lens.append(k)
    return torch.stack(ids), torch.tensor(lens)


@torch.no_grad()
def generate(G, generate_fn: Callable, text_enc, dataset, items: Sequence[int], caps: Sequence[int],
             z_dim: int, eval_seed: int, device, batch_size: int = 50, sample_ids: Sequence[int] | None = None,
             noise: torch.Tensor | None = None, progress: bool | str = False) -> Iterator[torch.Tensor]:
    """Yield batches of generated images (float, [-1, 1], on CPU) for the given captions.

    ``sample_ids`` (default 0..n-1) seed the noise of each sample; pass ``noise`` to force it.
    """
    from ..utils.logging import progress as bar

    n = len(items)
    sample_ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids)
    for k in bar(range(0, n, batch_size), enabled=progress, desc="sampling", total=(n + batch_size - 1) // batch_size):
        sl = slice(k, min(n, k + batch_size))
        caps_t, lens = encode_captions(dataset, items[sl], caps[sl])
        words, sent = text_enc(caps_t.to(device), lens.to(device))
        z = (noise[sl] if noise is not None else sample_noise(sample_ids[sl], z_dim, eval_seed)).to(device)
        mask = caps_t.to(device) == 0
        yield generate_fn(G, z, sent, words, mask).float().clamp(-1, 1).cpu()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 (round half away), B x 3 x H x W."""
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def save_png(images_uint8: torch.Tensor, out_dir: str | Path, names: Sequence[str]) -> list[Path]:
    """Save uint8 images losslessly as PNG (never JPEG: it moves FID)."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for img, name in zip(images_uint8, names):
        p = out_dir / f"{name}.png"
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(p, format="PNG")
        paths.append(p)
    return paths
