"""Where a config's canonical dataset lives, and making it exist (prepare once, reuse by config hash).

- ``caption-shapes`` / ``caption-scenes``: generated into ``<results>/<profile>/data/<dataset>-<hash8>``, the hash
  covering the generator and its settings (images, seed, captions, split, size); reused when its manifest records
  the same settings.
- ``cub`` / ``coco`` / ``flowers``: converted from the AttnGAN layout in ``data.source_dir`` (default
  ``$T2I_DATA_DIR/birds``, ``$T2I_DATA_DIR/coco`` or ``$T2I_DATA_DIR/flowers``) into
  ``$T2I_DATA_DIR/canonical/<dataset>-<size>px``;
- ``flickr30k``: converted from ``dataset_flickr30k.json`` and its image folder in ``data.source_dir`` (default
  ``$T2I_DATA_DIR/flickr30k``; :func:`~t2i_lib.data.karpathy.find_karpathy`), restval joining train.
- ``data.root`` set explicitly: used as is (must already be a canonical dataset).

Every reuse is logged, so an executed notebook records which dataset it read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .. import paths
from ..config import SYNTHETIC_DATASETS, Config
from ..utils.io import canonical_json, dir_lock, sha256_hex
from .dataset import read_manifest
from .errors import ManifestError

log = logging.getLogger(__name__)

# default folder of each real dataset's source under $T2I_DATA_DIR (data.source_dir overrides it)
SOURCE_SUBDIRS = {"cub": "birds", "coco": "coco", "flowers": "flowers", "flickr30k": "flickr30k"}
KARPATHY_DATASETS = ("flickr30k",)


def synthetic_settings(cfg: Config) -> dict:
    """The generator settings of a synthetic dataset (``data.dataset`` in :data:`~t2i_lib.config.SYNTHETIC_DATASETS`),
    as its manifest's ``source`` records them."""
    d = cfg.data
    if d.dataset not in SYNTHETIC_DATASETS:
        raise ValueError(f"data.dataset={d.dataset!r} is not generated; synthetic datasets: {SYNTHETIC_DATASETS}")
    return {"generator": d.dataset, "n_images": d.n_images, "seed": d.generator_seed,
            "n_captions": d.n_captions, "test_fraction": d.test_fraction, "size": d.stored_size or d.image_size}


def dataset_root(cfg: Config) -> Path:
    """The canonical dataset directory this config reads."""
    d = cfg.data
    if d.root:
        return Path(d.root).expanduser().resolve()
    if d.dataset in SYNTHETIC_DATASETS:
        h = sha256_hex(canonical_json(synthetic_settings(cfg)))[:8]
        return paths.profile_dir(cfg.profile, cfg.run.results_dir) / "data" / f"{d.dataset}-{h}"
    return paths.data_root() / "canonical" / f"{d.dataset}-{d.stored_size or 304}px"


def source_dir(cfg: Config) -> Path:
    if cfg.data.source_dir:
        return Path(cfg.data.source_dir).expanduser().resolve()
    return paths.data_root() / SOURCE_SUBDIRS[cfg.data.dataset]


def ensure_dataset(cfg: Config, force: bool = False, progress: bool | str = "auto") -> Path:
    """Return the canonical dataset of ``cfg``, preparing it first if missing (or if ``force``).  A second process
    asking for a dataset being prepared waits for it (:func:`~t2i_lib.utils.io.dir_lock`), then reuses it."""
    root = dataset_root(cfg)
    if force or (not cfg.data.root and not root.exists()):
        with dir_lock(root):
            return _ensure_dataset(cfg, root, force, progress)
    return _ensure_dataset(cfg, root, force, progress)


def _ensure_dataset(cfg: Config, root: Path, force: bool, progress: bool | str) -> Path:
    d = cfg.data
    if d.root and not force:
        read_manifest(root)  # clear error if it is not a dataset
        log.info("using dataset %s (data.root)", root)
        return root
    if root.exists() and not force:
        try:
            m = read_manifest(root)
        except ManifestError:
            raise ManifestError(f"{root} exists but is not a complete dataset; rerun with force=True (--force)")
        if d.dataset in SYNTHETIC_DATASETS:
            want = synthetic_settings(cfg)
            have = {k: m.get("source", {}).get(k) for k in want}
            if have != want:
                raise ManifestError(f"{root} holds {m.get('name')} made with {have}, not {want}; "
                                    "rerun with force=True (--force)")
        log.info("reusing dataset %s (%d images)", root, m["n_images"])
        return root
    if d.dataset in SYNTHETIC_DATASETS:
        from .scenes import prepare_scenes
        from .synthetic import prepare_synthetic

        s = synthetic_settings(cfg)
        fn = prepare_scenes if d.dataset == "caption-scenes" else prepare_synthetic
        log.info("generating %s into %s", d.dataset, root)
        return fn(root, n_images=s["n_images"], seed=s["seed"], size=s["size"], n_captions=s["n_captions"],
                  test_fraction=s["test_fraction"], overwrite=force, progress=progress)
    on_bad = "skip" if d.on_bad_image == "skip" else "raise"
    if d.dataset in KARPATHY_DATASETS:
        from .karpathy import find_karpathy, prepare_karpathy

        js, images = find_karpathy(source_dir(cfg), d.dataset)
        log.info("converting %s from %s and %s into %s", d.dataset, js, images, root)
        return prepare_karpathy(js, images, root, overwrite=force, store_size=d.stored_size or 304, on_bad=on_bad,
                                vocab_from="auto", progress=progress)
    from .attngan import prepare_coco, prepare_cub, prepare_flowers

    fn = {"cub": prepare_cub, "coco": prepare_coco, "flowers": prepare_flowers}[d.dataset]
    log.info("converting %s from %s into %s", d.dataset, source_dir(cfg), root)
    return fn(source_dir(cfg), root, overwrite=force, store_size=d.stored_size or 304,
              on_bad=on_bad, vocab_from="auto", progress=progress)


def make_dataset(cfg: Config, root: str | Path, split: str = "train", captions_per_sample: int | None = None,
                 image_sizes: tuple[int, ...] | None = None, seed: int | None = None, train: bool = True):
    """A :class:`~t2i_lib.data.dataset.CaptionDataset` for ``cfg`` (augmentation only when ``train``)."""
    from .dataset import CaptionDataset

    d = cfg.data
    if image_sizes is None:
        image_sizes = (d.image_size,)
        if cfg.model.family in ("attngan", "style_attngan"):
            image_sizes = tuple(s for s in (64, 128, 256) if s <= d.image_size)
    return CaptionDataset(root, split=split, image_sizes=image_sizes,
                          captions_per_sample=captions_per_sample or cfg.captions_per_sample,
                          max_words=d.max_words, long_caption_mode=d.long_caption_mode,
                          seed=cfg.run.seed if seed is None else seed, random_crop=d.random_crop and train,
                          random_flip=d.random_flip and train, on_bad_image=d.on_bad_image)


def fingerprint(root: str | Path) -> str:
    """Content hash of a canonical dataset: its records, vocabulary and every image's decoded RGB pixels (sorted by
    file name; pixels, not file bytes, so two zlib builds encoding the same image agree).

    Two machines that generate a synthetic dataset with the same settings must agree on it; a run moved between
    machines checks it before reusing encoders trained on the other copy."""
    import hashlib

    import numpy as np
    from PIL import Image

    root = Path(root)
    m = read_manifest(root)
    h = hashlib.sha256()
    h.update(canonical_json({"records": m["records"].get("sha256"), "vocab": m["vocab"].get("hash")}).encode())
    for p in sorted((root / "images").rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            with Image.open(p) as im:
                h.update(np.asarray(im.convert("RGB")).tobytes())
    return h.hexdigest()
