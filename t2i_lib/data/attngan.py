"""Adapters from the AttnGAN dataset layouts (CUB-200-2011 "birds", COCO-2014, Oxford-102 flowers) to the canonical
dataset, and the shared scan-and-convert machinery (:func:`convert_source`) that ``karpathy.py`` reuses.

Source layouts (docs/datasets.md#cub-200-2011, docs/datasets.md#coco-2014, docs/datasets.md#oxford-102-flowers).
``src`` is the directory the reference code calls ``data/birds``, ``data/coco`` or ``data/flowers``; every path
below is relative to it.

CUB-200-2011 (``src`` = ``data/birds/``)::

    CUB_200_2011/images/<class_dir>/<img>.jpg   the photographs (key = "<class_dir>/<img>")
    CUB_200_2011/images.txt                     "<index> <class_dir>/<img>.jpg" per line
    CUB_200_2011/bounding_boxes.txt             "<index> <x> <y> <w> <h>" per line (floats, pixels)
    text/<key>.txt                              10 captions, one per line (text.zip of the AttnGAN metadata)
    train/filenames.pickle, test/filenames.pickle     lists of keys (Python-2 protocol-0 pickles)
    train/class_info.pickle, test/class_info.pickle   one 1-based class id per key (NumPy int64 scalars);
                                                      optional: when missing, the id is the leading number of
                                                      the class directory ("002.Laysan_Albatross" -> 2)
    captions.pickle                             optional: AttnGAN's cached captions and vocabulary

COCO-2014 (``src`` = ``data/coco/``)::

    train/filenames.pickle, test/filenames.pickle     keys "COCO_train2014_..." / "COCO_val2014_..." (test = val2014)
    text/<key>.txt                              5 captions per image (train2014-text.zip + val2014-text.zip)
    images/<key>.jpg                            AttnGAN/DM-GAN layout (train and val merged), or
    images/train2014/<key>.jpg, images/val2014/<key>.jpg   DF-GAN layout; both are accepted
    captions.pickle or captions_DAMSM.pickle    optional

Oxford-102 flowers (``src`` = ``data/flowers``; StackGAN/AttnGAN-lineage metadata, no bounding boxes)::

    jpg/image_NNNNN.jpg                         the photographs (102flowers.tgz)
    text_c10/class_NNNNN/image_NNNNN.txt        10 captions per image (Reed et al., cvpr2016_flowers)
    train/filenames.pickle, test/filenames.pickle     keys "jpg/image_NNNNN" (or "class_NNNNN/image_NNNNN",
                                                      "image_NNNNN"); the image and caption file are found by
                                                      the file name
    train/class_info.pickle, test/class_info.pickle   one 1-based class id per key; optional: else the number
                                                      of the class_NNNNN folder (of the key or its caption file)
    captions.pickle                             optional

What :func:`prepare_cub` / :func:`prepare_coco` / :func:`prepare_flowers` do, per listed key, in train-then-test order:

- captions: ``text/<key>.txt`` is decoded as UTF-8 (a BOM is tolerated) and cleaned exactly as the reference
  (:func:`~t2i_lib.data.text.clean_caption_lines`: empty and punctuation-only lines are skipped); the first
  ``captions_per_image`` usable captions are kept (fewer is a logged warning, counted in the manifest; the
  reference only prints "ERROR").  Captions are not truncated here: the Dataset applies ``max_words``;
- image: read as 8-bit RGB (:func:`~t2i_lib.data.images.load_rgb`), CUB only cropped around its bounding box
  (:func:`~t2i_lib.data.images.bbox_crop`, 1.5x the longer box side), resized so the shorter side is
  ``store_size`` (304 = int(256 * 76 / 64) by default, the size the reference random-crops 256 from) and stored as
  JPEG q95 by :class:`~t2i_lib.data.dataset.CanonicalWriter`;
- class id: CUB and flowers from ``class_info.pickle``; COCO has none, so every image gets its own id (its index
  over all listed keys), as the reference's ``np.arange``;
- vocabulary: built from train + test captions, or imported from an AttnGAN ``captions.pickle``
  (``vocab_from``) so that released DAMSM encoders stay usable (OOV words are dropped and counted by the writer).

Bad input (``on_bad``): layout problems (:class:`LayoutError`) and unsafe pickles (:class:`UnsafePickleError`)
always raise.  Per-image problems, i.e. an unreadable image or a degenerate bounding box (:class:`BadImageError`),
an unusable caption file (:class:`CaptionFileError`), a listed key without image, caption file or bounding box
(:class:`MissingKeyError`) and a key listed twice (:class:`DataError`), raise with ``on_bad="raise"`` and are
skipped and counted in the manifest with ``on_bad="skip"`` (for a duplicated key the first listing is kept; the
log names the first 20 skipped keys, then one summary line counted by kind).  Every message names the file.
"""

from __future__ import annotations

import codecs
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..utils.logging import progress as progress_bar
from .dataset import SPLITS, CanonicalWriter
from .errors import (BadImageError, CaptionFileError, DataError, LayoutError, MissingKeyError,
                     UnsafePickleError)
from .images import bbox_crop, load_rgb, resize_shorter
from .safe_pickle import load_pickle
from .text import Vocabulary, clean_caption_lines

log = logging.getLogger(__name__)

KINDS = ("cub", "coco", "flowers")
DEFAULT_STORE_SIZE = 304  # int(256 * 76 / 64): the reference resizes to this, then random-crops 256
CUB_CAPTIONS_PER_IMAGE = 10
COCO_CAPTIONS_PER_IMAGE = 5
FLOWERS_CAPTIONS_PER_IMAGE = 10
CAPTIONS_PICKLE_NAMES = ("captions.pickle", "captions_DAMSM.pickle")
ON_BAD = ("raise", "skip")
_PROBE = 20  # keys probed per split by the layout check (images, caption files)
_MAX_WARNINGS = 20  # per-image "fewer captions" warnings logged individually before a summary
_SKIPPABLE = (BadImageError, CaptionFileError, MissingKeyError)
_TEXT_ZIPS = ("text.zip", "train2014-text.zip", "val2014-text.zip")
_FLOWERS_TEXT_ARCHIVES = ("cvpr2016_flowers.tar.gz", "text_c10.zip", "text_c10.tar.gz")


# ------------------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------------------
def prepare_cub(src: str | Path, out: str | Path, overwrite: bool = False, store_size: int = DEFAULT_STORE_SIZE,
                on_bad: str = "raise", vocab_from: str | Path | None = None,
                captions_per_image: int = CUB_CAPTIONS_PER_IMAGE, progress: bool | str = True) -> Path:
    """Convert AttnGAN's ``data/birds`` directory into a canonical dataset at ``out``.

    Args:
        src: the ``data/birds`` directory (layout in the module docstring).
        out: canonical dataset directory to create.
        overwrite: replace an existing ``out`` (otherwise :class:`FileExistsError`).
        store_size: shorter side of the stored images, in pixels, after the bounding-box crop.
        on_bad: "raise" or "skip" for per-image problems (see the module docstring).
        vocab_from: None (build from train + test captions), a path to an AttnGAN ``captions.pickle``, or "auto"
            (``<src>/captions.pickle`` or ``<src>/captions_DAMSM.pickle`` if present, else build).
        captions_per_image: captions kept per image (the first usable ones; reference 10).
        progress: show a progress bar (True, False or "auto").

    Returns:
        ``out`` as a :class:`pathlib.Path`.
    """
    return _prepare("cub", src, out, overwrite=overwrite, store_size=store_size, on_bad=on_bad,
                    vocab_from=vocab_from, captions_per_image=captions_per_image, progress=progress)


def prepare_coco(src: str | Path, out: str | Path, overwrite: bool = False, store_size: int = DEFAULT_STORE_SIZE,
                 on_bad: str = "raise", vocab_from: str | Path | None = None,
                 captions_per_image: int = COCO_CAPTIONS_PER_IMAGE, progress: bool | str = True) -> Path:
    """Convert AttnGAN's ``data/coco`` directory (test split = val2014) into a canonical dataset at ``out``.

    Arguments as :func:`prepare_cub`; no crop is applied and every image gets its own class id (reference 5
    captions per image).
    """
    return _prepare("coco", src, out, overwrite=overwrite, store_size=store_size, on_bad=on_bad,
                    vocab_from=vocab_from, captions_per_image=captions_per_image, progress=progress)


def prepare_flowers(src: str | Path, out: str | Path, overwrite: bool = False, store_size: int = DEFAULT_STORE_SIZE,
                    on_bad: str = "raise", vocab_from: str | Path | None = None,
                    captions_per_image: int = FLOWERS_CAPTIONS_PER_IMAGE, progress: bool | str = True) -> Path:
    """Convert the StackGAN/AttnGAN-layout ``data/flowers`` directory (Oxford-102) into a canonical dataset.

    Arguments as :func:`prepare_cub`; no crop is applied (the flowers layout has no bounding boxes) and class ids
    come from ``class_info.pickle`` (reference 10 captions per image).
    """
    return _prepare("flowers", src, out, overwrite=overwrite, store_size=store_size, on_bad=on_bad,
                    vocab_from=vocab_from, captions_per_image=captions_per_image, progress=progress)


def check_layout(kind: str, src: str | Path) -> dict[str, Any]:
    """Validate an AttnGAN-layout directory without converting anything; return what was found.

    Raises :class:`LayoutError` with an actionable message (what is missing and how to fix it) and
    :class:`UnsafePickleError` for a pickle that would execute code.  Per-key problems (a missing image or caption
    file) are found by :func:`prepare_cub` / :func:`prepare_coco`; duplicated keys are reported here.

    Returns:
        ``{"kind", "src", "splits": {split: number of listed keys}, "class_ids": {split: origin},
        "repaired_crlf": [files], "duplicated_keys": [keys], "captions_pickle": path or None}``, plus
        ``"n_bounding_boxes"`` for CUB and ``"image_layout"`` ("merged": ``images/<key>.jpg``, "split":
        ``images/train2014|val2014/<key>.jpg``, or "mixed") for COCO.
    """
    s = _scan(kind, src)
    info: dict[str, Any] = {
        "kind": s.kind,
        "src": str(s.src),
        "splits": {split: len(s.keys[split]) for split in SPLITS},
        "class_ids": dict(s.class_origin),
        "repaired_crlf": list(s.repaired_crlf),
        "duplicated_keys": [d["key"] for d in s.duplicates],
        "captions_pickle": str(s.captions_pickle) if s.captions_pickle else None,
    }
    if s.kind == "cub":
        info["n_bounding_boxes"] = len(s.bboxes or {})
    elif s.kind == "coco":
        info["image_layout"] = s.image_layout
    return info


# ------------------------------------------------------------------------------------------------------------
# Scanning the source directory
# ------------------------------------------------------------------------------------------------------------
@dataclass
class _Source:
    """What :func:`_scan` found: keys and class ids per split as listed, and how to find each key's files."""

    kind: str
    src: Path
    keys: dict[str, list[str]]
    class_ids: dict[str, list[int]]
    class_origin: dict[str, str]
    image_path: Callable[[str], Path | None]  # key -> existing image file, or None
    repaired_crlf: list[str] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)  # later listings of an already listed key
    bboxes: dict[str, tuple[float, float, float, float]] | None = None  # CUB: key -> (x, y, w, h)
    image_layout: str | None = None  # COCO
    captions_pickle: Path | None = None
    # Hooks that let other layouts (flowers, Karpathy JSON in karpathy.py) reuse the scan-and-convert machinery.
    name: str = ""  # dataset name written into the manifest (default: kind)
    crop: str = "none"
    text_path_fn: Callable[[str], Path] | None = None  # key -> caption file (default text/<key>.txt)
    captions_in: dict[str, Any] | None = None  # key -> raw captions held in memory (no caption files)
    caption_where_fn: Callable[[str], str] | None = None  # key -> where its in-memory captions come from
    list_file: Path | None = None  # one file lists every split (default <split>/filenames.pickle)
    where_fn: Callable[[str, int], str] | None = None  # (split, position) -> where the key is listed
    image_hint_fn: Callable[[str], str] | None = None  # key -> where its image was expected
    extra: dict[str, Any] = field(default_factory=dict)  # more provenance for the manifest's "source"

    def text_path(self, key: str) -> Path:
        if self.text_path_fn is not None:
            return self.text_path_fn(key)
        return self.src / "text" / f"{key}.txt"

    def filenames_file(self, split: str) -> Path:
        return self.list_file if self.list_file is not None else self.src / split / "filenames.pickle"

    def where(self, split: str, pos: int) -> str:
        if self.where_fn is not None:
            return self.where_fn(split, pos)
        return f"{self.filenames_file(split)} (position {pos})"

    def image_hint(self, key: str) -> str:
        if self.image_hint_fn is not None:
            return self.image_hint_fn(key)
        return f"{self.src / 'images' / key}.jpg not found"


def _scan(kind: str, src: str | Path) -> _Source:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    src = Path(src)
    what = {"cub": "data/birds", "coco": "data/coco", "flowers": "data/flowers"}[kind]
    if not src.is_dir():
        raise LayoutError(f"{src} is not a directory (expected AttnGAN's {what} directory)")
    if kind == "flowers":
        return _scan_flowers(src)
    repaired: list[str] = []
    keys = {split: _load_filenames(src, split, repaired) for split in SPLITS}
    if kind == "cub":
        class_ids, origin = {}, {}
        for split in SPLITS:
            class_ids[split], origin[split] = _class_ids(src, split, keys[split], repaired, _cub_class_from_key,
                                                         "class directory number")
        bboxes = _cub_bboxes(src)
        image_dir = src / "CUB_200_2011" / "images"

        def image_path(key: str) -> Path | None:
            p = image_dir / f"{key}.jpg"
            return p if p.is_file() else None

        layout = None
    else:
        start = 0
        class_ids, origin = {}, {}
        for split in SPLITS:
            class_ids[split] = list(range(start, start + len(keys[split])))
            origin[split] = "index over all listed images, train then test (COCO has no classes)"
            start += len(keys[split])
        bboxes = None
        image_path, layout = _coco_images(src, keys)
    _check_text_dir(src, kind, keys)
    source = _Source(kind=kind, src=src, keys=keys, class_ids=class_ids, class_origin=origin,
                     image_path=image_path, repaired_crlf=repaired, bboxes=bboxes, image_layout=layout,
                     captions_pickle=_find_captions_pickle(src), crop="bbox-1.5x" if kind == "cub" else "none")
    if kind == "cub":
        source.image_hint_fn = lambda key: f"{src / 'CUB_200_2011' / 'images' / key}.jpg not found"
        _probe_images(source, "CUB images not found under CUB_200_2011/images/<key>.jpg "
                              f"(extract CUB_200_2011.tgz into {src})")
    else:
        source.image_hint_fn = (lambda key: f"neither {src / 'images' / key}.jpg nor "
                                            f"{src / 'images'}/train2014|val2014/{key}.jpg exists")
    source.duplicates = _find_duplicates(source)
    return source


def _find_captions_pickle(src: Path) -> Path | None:
    return next((src / name for name in CAPTIONS_PICKLE_NAMES if (src / name).is_file()), None)


def _flowers_stem(key: str) -> str:
    """``jpg/image_00001``, ``class_00077/image_00001`` and ``image_00001`` all name ``image_00001``."""
    return key.rsplit("/", 1)[-1]


def _scan_flowers(src: Path) -> _Source:
    """Oxford-102 in the StackGAN/AttnGAN layout (docs/datasets.md#oxford-102-flowers)."""
    jpg, text = src / "jpg", src / "text_c10"
    if not jpg.is_dir():
        hint = (f"extract 102flowers.tgz into {src}" if (src / "102flowers.tgz").is_file()
                else f"download Oxford-102 (102flowers.tgz) and extract it into {src}")
        raise LayoutError(f"jpg/ is missing: expected the photographs as {jpg}/image_NNNNN.jpg ({hint})")
    if not text.is_dir():
        archives = [a for a in _FLOWERS_TEXT_ARCHIVES if (src / a).is_file()]
        hint = (f"extract {' or '.join(archives)} and move its text_c10/ folder into {src}" if archives
                else f"copy the text_c10/ folder of Reed et al.'s captions (cvpr2016_flowers) into {src}")
        raise LayoutError(f"text_c10/ is missing: expected caption files {text}/class_NNNNN/image_NNNNN.txt ({hint})")
    # One pass over text_c10/: image stem -> its caption file (class folders hold about 40-260 files each).
    index: dict[str, Path] = {}
    for cdir in sorted(p for p in text.iterdir() if p.is_dir()):
        for f in cdir.glob("*.txt"):
            index.setdefault(f.stem, f)
    if not index:
        nested = text / "text_c10"
        if nested.is_dir():
            raise LayoutError(f"captions are one level too deep in {nested}: move its content up into {text}")
        raise LayoutError(f"no caption file found in {text}: expected {text}/class_NNNNN/image_NNNNN.txt")
    repaired: list[str] = []
    keys = {split: _load_filenames(src, split, repaired) for split in SPLITS}

    def derive(key: str) -> int | None:
        m = re.match(r"class_(\d+)/", key)
        if m is None and _flowers_stem(key) in index:
            m = re.fullmatch(r"class_(\d+)", index[_flowers_stem(key)].parent.name)
        return int(m.group(1)) if m else None

    class_ids, origin = {}, {}
    for split in SPLITS:
        class_ids[split], origin[split] = _class_ids(
            src, split, keys[split], repaired, derive,
            "the class_NNNNN folder of the key or of its caption file in text_c10/")

    listed_class = {k: c for split in SPLITS for k, c in zip(keys[split], class_ids[split])}

    def image_path(key: str) -> Path | None:
        p = jpg / f"{_flowers_stem(key)}.jpg"
        return p if p.is_file() else None

    def text_path(key: str) -> Path:
        stem = _flowers_stem(key)
        if stem in index:
            return index[stem]
        cid = listed_class.get(key, derive(key))
        return text / (f"class_{cid:05d}" if cid is not None else "class_NNNNN") / f"{stem}.txt"

    source = _Source(kind="flowers", src=src, keys=keys, class_ids=class_ids, class_origin=origin,
                     image_path=image_path, repaired_crlf=repaired, captions_pickle=_find_captions_pickle(src),
                     text_path_fn=text_path, image_hint_fn=lambda key: f"{jpg / _flowers_stem(key)}.jpg not found")
    probed = [k for split in SPLITS for k in keys[split][:_PROBE]]
    if not any(_flowers_stem(k) in index for k in probed):
        raise LayoutError(f"no caption file found in {text} for the first {len(probed)} listed keys "
                          f"(e.g. {text_path(probed[0])}); expected text_c10/class_NNNNN/<image>.txt")
    _probe_images(source, f"flower images not found as {jpg}/image_NNNNN.jpg (extract 102flowers.tgz into {src})")
    source.duplicates = _find_duplicates(source)
    return source


def _load_metadata_pickle(path: Path, src: Path, repaired: list[str]) -> Any:
    """Restricted load of one metadata pickle; a CRLF repair is logged and remembered (relative path)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the repair is logged below and recorded
            obj, info = load_pickle(path, return_info=True)
    except UnsafePickleError:
        raise
    except DataError as exc:
        raise LayoutError(str(exc)) from exc
    if info["repaired_crlf"]:
        rel = path.relative_to(src).as_posix()
        log.warning("%s: repaired CRLF line endings (a Windows line-ending conversion damaged this pickle)", path)
        repaired.append(rel)
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    return obj


def _load_filenames(src: Path, split: str, repaired: list[str]) -> list[str]:
    path = src / split / "filenames.pickle"
    if not path.is_file():
        raise LayoutError(f"{split}/filenames.pickle not found: expected {path} (from the AttnGAN metadata archive "
                          f"of this dataset)")
    obj = _load_metadata_pickle(path, src, repaired)
    if not isinstance(obj, (list, tuple)):
        raise LayoutError(f"{path}: expected a list of keys, got {type(obj).__name__}")
    for i, key in enumerate(obj):
        if not isinstance(key, str):
            raise LayoutError(f"{path}: expected a list of str, element {i} is {type(key).__name__} ({key!r})")
        if not _valid_key(key):
            raise LayoutError(f"{path}: element {i} is not a valid key: {key!r} (expected e.g. "
                              "'002.Laysan_Albatross/Laysan_Albatross_0002_1027' or 'COCO_train2014_000000000009')")
    if not obj:
        raise LayoutError(f"{path} lists no key")
    return list(obj)


def _valid_key(key: str) -> bool:
    parts = key.split("/")
    return (bool(key) and key.isprintable() and key == key.strip() and "\\" not in key
            and not key.startswith("/") and all(p not in ("", ".", "..") for p in parts))


def _cub_class_from_key(key: str) -> int | None:
    m = re.match(r"(\d+)\.", key)
    return int(m.group(1)) if m else None


def _class_ids(src: Path, split: str, keys: list[str], repaired: list[str], derive: Callable[[str], int | None],
               derived_from: str) -> tuple[list[int], str]:
    """Class ids of one split from ``class_info.pickle``, or ``derive(key)`` for every key if it is absent."""
    fn_path = src / split / "filenames.pickle"
    path = src / split / "class_info.pickle"
    if not path.is_file():
        ids = []
        for key in keys:
            cid = derive(key)
            if cid is None:
                raise LayoutError(f"{path} not found, and key {key!r} in {fn_path} gives no class id to derive "
                                  f"(from {derived_from}, e.g. '002.Laysan_Albatross/...' or 'class_00077/...')")
            ids.append(cid)
        log.warning("%s not found: class ids derived from %s", path, derived_from)
        return ids, f"{derived_from} ({split}/class_info.pickle missing)"
    obj = _load_metadata_pickle(path, src, repaired)
    if not isinstance(obj, (list, tuple)):
        raise LayoutError(f"{path}: expected a list of class ids, got {type(obj).__name__}")
    if len(obj) != len(keys):
        raise LayoutError(f"{path} has {len(obj)} class ids but {fn_path} lists {len(keys)} keys; the two files "
                          "must be aligned (one class id per key)")
    for i, c in enumerate(obj):
        if not isinstance(c, int) or isinstance(c, bool):
            raise LayoutError(f"{path}: element {i} is {type(c).__name__} ({c!r}), expected an integer class id")
    return [int(c) for c in obj], f"{split}/class_info.pickle"


def _read_index_file(path: Path, n_fields: int) -> list[tuple[int, list[str]]]:
    """Lines "<int index> field..." of a CUB metadata text file, with errors naming file and line."""
    if not path.is_file():
        raise LayoutError(f"CUB_200_2011/{path.name} not found: expected {path} (extract CUB_200_2011.tgz into "
                          f"{path.parent.parent})")
    rows = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=n_fields)
        try:
            if len(parts) != n_fields + 1:
                raise ValueError(f"expected {n_fields + 1} fields")
            rows.append((int(parts[0]), parts[1:]))
        except ValueError as exc:
            raise LayoutError(f"{path}:{lineno}: malformed line {line!r} ({exc})") from exc
    return rows


def _cub_bboxes(src: Path) -> dict[str, tuple[float, float, float, float]]:
    """key -> (x, y, w, h), joining ``images.txt`` and ``bounding_boxes.txt`` on the image index."""
    cub = src / "CUB_200_2011"
    if not cub.is_dir():
        hint = (f"extract CUB_200_2011.tgz into {src}" if (src / "CUB_200_2011.tgz").is_file()
                else f"download CUB-200-2011 and extract CUB_200_2011.tgz into {src}")
        raise LayoutError(f"CUB_200_2011/ is missing: {hint}")
    if not (cub / "images").is_dir():
        raise LayoutError(f"CUB_200_2011/images/ is missing: expected {cub / 'images'}/<class_dir>/<img>.jpg")
    paths = {idx: fields[0] for idx, fields in _read_index_file(cub / "images.txt", 1)}
    boxes: dict[int, tuple[float, float, float, float]] = {}
    box_file = cub / "bounding_boxes.txt"
    for idx, fields in _read_index_file(box_file, 4):
        try:
            x, y, w, h = (float(v) for v in fields)
        except ValueError as exc:
            raise LayoutError(f"{box_file}: index {idx}: bounding box {fields} is not 4 numbers") from exc
        boxes[idx] = (x, y, w, h)
    out = {}
    for idx, rel in paths.items():
        if idx in boxes:
            key = rel[:-4] if rel.lower().endswith(".jpg") else rel
            out[key] = boxes[idx]
    return out


def _coco_images(src: Path, keys: dict[str, list[str]]) -> tuple[Callable[[str], Path | None], str]:
    """Image resolver accepting ``images/<key>.jpg`` and ``images/train2014|val2014/<key>.jpg``; layout found."""
    images = src / "images"
    expected = "COCO images not found in images/<key>.jpg nor images/train2014|val2014/<key>.jpg"
    if not images.is_dir():
        raise LayoutError(f"{expected}: {images} is missing (AttnGAN/DM-GAN: unzip train2014.zip and val2014.zip "
                          "into images/; DF-GAN: keep images/train2014/ and images/val2014/)")

    def candidates(key: str) -> list[tuple[str, Path]]:
        sub = ["val2014", "train2014"] if "val2014" in key else ["train2014", "val2014"]
        return [("merged", images / f"{key}.jpg")] + [("split", images / s / f"{key}.jpg") for s in sub]

    def image_path(key: str) -> Path | None:
        return next((p for _, p in candidates(key) if p.is_file()), None)

    found = set()
    probed = [k for split in SPLITS for k in keys[split][:_PROBE]]
    for key in probed:
        found.update(where for where, p in candidates(key) if p.is_file())
    if not found:
        raise LayoutError(f"{expected} (none of the first {len(probed)} listed keys has an image, e.g. "
                          f"{candidates(probed[0])[0][1]} or {candidates(probed[0])[1][1]})")
    layout = "mixed" if len(found) == 2 else found.pop()
    return image_path, layout


def _check_text_dir(src: Path, kind: str, keys: dict[str, list[str]]) -> None:
    """``text/`` exists and holds ``<key>.txt`` files; say how to fix the usual mistakes (still zipped, nested)."""
    text = src / "text"
    zips = [z for z in _TEXT_ZIPS if (src / z).is_file()]
    default_zips = "text.zip" if kind == "cub" else "train2014-text.zip and val2014-text.zip"
    if not text.is_dir():
        if zips:
            raise LayoutError(f"text/ is missing: unzip {' and '.join(zips)} into {text} "
                              "(captions must be text/<key>.txt)")
        raise LayoutError(f"text/ is missing: expected caption files {text}/<key>.txt (unzip {default_zips} from "
                          f"the AttnGAN metadata into {text})")
    probed = [k for split in SPLITS for k in keys[split][:_PROBE]]
    if any((text / f"{k}.txt").is_file() for k in probed):
        return
    if any((text / "text" / f"{k}.txt").is_file() for k in probed):
        raise LayoutError(f"captions are one level too deep in {text / 'text'}: move its content up into {text}")
    inner = [z.name for z in text.glob("*.zip")]
    if inner or zips:
        raise LayoutError(f"no caption file found in {text}: unzip {' and '.join(inner or zips)} into {text} "
                          "(captions must be text/<key>.txt)")
    raise LayoutError(f"no caption file found in {text} for the first {len(probed)} listed keys "
                      f"(e.g. {text / (probed[0] + '.txt')}); expected text/<key>.txt")


def _probe_images(source: _Source, message: str) -> None:
    probed = [k for split in SPLITS for k in source.keys[split][:_PROBE]]
    if not any(source.image_path(k) is not None for k in probed):
        raise LayoutError(f"{message}; none of the first {len(probed)} listed keys has an image")


def _find_duplicates(source: _Source) -> list[dict[str, str]]:
    """Every listing of a key after its first one, with both places (file and position)."""
    first: dict[str, str] = {}
    dups = []
    for split in SPLITS:
        for pos, key in enumerate(source.keys[split]):
            where = source.where(split, pos)
            if key in first:
                dups.append({"key": key, "split": split, "position": str(pos), "first": first[key], "again": where})
            else:
                first[key] = where
    return dups


def _duplicate_error(d: dict[str, str]) -> DataError:
    return DataError(f"key {d['key']!r} is listed twice: in {d['first']} and in {d['again']}")


# ------------------------------------------------------------------------------------------------------------
# Per-image conversion
# ------------------------------------------------------------------------------------------------------------
def read_caption_file(path: str | Path, captions_per_image: int) -> tuple[list[tuple[str, list[str]]], int]:
    """The first ``captions_per_image`` usable (raw caption, tokens) pairs of a caption file, and how many it has.

    Raises :class:`CaptionFileError` naming the file when it cannot be read, is not UTF-8 (with the byte offset)
    or has no usable caption.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaptionFileError(path, f"cannot read ({exc.strerror or exc})") from exc
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        off = start + exc.start
        raise CaptionFileError(path, f"not valid UTF-8: byte 0x{data[off]:02x} at offset {off} "
                                     f"({exc.reason})") from exc
    # The reference splits on "\n" only; clean_caption_lines strips a CR left by CRLF files.
    caps = clean_caption_lines(text.split("\n"))
    if not caps:
        reason = ("empty file" if not text.strip() else
                  f"no usable caption: all {len(text.splitlines())} lines are empty or have no word "
                  "(punctuation only)")
        raise CaptionFileError(path, reason)
    return caps[:captions_per_image], len(caps)


def captions_from_strings(where: str, raws: Any, captions_per_image: int) -> tuple[list[tuple[str, list[str]]], int]:
    """:func:`read_caption_file` for captions held in memory (e.g. a Karpathy JSON entry's sentences).

    Raises :class:`CaptionFileError` naming ``where`` when a caption is not text, is not valid Unicode (a lone
    surrogate from a ``\\udcff`` escape) or none is usable."""
    if not isinstance(raws, (list, tuple)):
        raise CaptionFileError(where, f"expected a list of captions, got {type(raws).__name__}")
    lines = []
    for i, raw in enumerate(raws):
        if not isinstance(raw, str):
            raise CaptionFileError(where, f"caption {i} is {type(raw).__name__} ({raw!r}), not text")
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CaptionFileError(where, f"caption {i} is not valid Unicode: {exc.reason} at character "
                                          f"{exc.start}") from exc
        lines.extend(raw.split("\n"))
    caps = clean_caption_lines(lines)
    if not caps:
        reason = ("no caption" if not raws else
                  f"no usable caption: all {len(raws)} captions are empty or have no word (punctuation only)")
        raise CaptionFileError(where, reason)
    return caps[:captions_per_image], len(caps)


def _load_item(source: _Source, key: str, split: str, store_size: int, captions_per_image: int):
    """(image, captions, number of usable captions) of one key, or a skippable error naming the file."""
    fn = source.filenames_file(split)
    if source.captions_in is not None:
        where = source.caption_where_fn(key) if source.caption_where_fn else f"{fn} ({key})"
        captions, n_usable = captions_from_strings(where, source.captions_in.get(key, []), captions_per_image)
    else:
        cap_path = source.text_path(key)
        if not cap_path.is_file():
            raise MissingKeyError(f"key {key!r} listed in {fn} has no caption file: {cap_path} not found")
        captions, n_usable = read_caption_file(cap_path, captions_per_image)
    img_path = source.image_path(key)
    if img_path is None:
        raise MissingKeyError(f"key {key!r} listed in {fn} has no image: {source.image_hint(key)}")
    bbox = None
    if source.kind == "cub":
        bbox = (source.bboxes or {}).get(key)
        if bbox is None:
            raise MissingKeyError(f"key {key!r} listed in {fn} has no bounding box: "
                                  f"{key}.jpg is not in {source.src / 'CUB_200_2011' / 'images.txt'} "
                                  "or its index is not in bounding_boxes.txt")
    im = load_rgb(img_path)
    if bbox is not None:
        im = _crop_to_bbox(im, bbox, img_path)
    im = resize_shorter(im, store_size)
    return im, captions, n_usable


def _crop_to_bbox(im: Image.Image, bbox: tuple[float, float, float, float], img_path: Path) -> Image.Image:
    """:func:`bbox_crop`, with a degenerate box (no area, outside the image) reported as a bad image."""
    where = f"bounding box (x, y, w, h) = {bbox} from bounding_boxes.txt"
    if not (bbox[2] > 0 and bbox[3] > 0):
        raise BadImageError(img_path, f"{where} has no area")
    try:
        crop = bbox_crop(im, bbox)
    except ValueError as exc:  # right < left or bottom < top: the box lies outside the image
        raise BadImageError(img_path, f"{where} lies outside the {im.width}x{im.height} image") from exc
    if crop.width < 1 or crop.height < 1:
        raise BadImageError(img_path, f"{where} lies outside the {im.width}x{im.height} image")
    return crop


# ------------------------------------------------------------------------------------------------------------
# Conversion driver
# ------------------------------------------------------------------------------------------------------------
def _skip_summary(skipped: list[dict[str, str]]) -> str:
    """"3 missing image, 1 bad caption file, ..." counted by kind of problem."""
    kinds = {"has no image": "missing image", "has no caption file": "missing caption file",
             "has no bounding box": "missing bounding box", "bad image": "bad image",
             "bad caption file": "bad caption file", "listed twice": "duplicated key"}
    counts: dict[str, int] = {}
    for it in skipped:
        label = next((v for k, v in kinds.items() if k in it["reason"]), "other")
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _resolve_vocab(vocab_from: str | Path | None, source: _Source) -> tuple[Vocabulary | None, str]:
    """(vocabulary to encode with, or None to build one; its origin for the manifest)."""
    built = "built from train + test captions (sorted; index 0 = <end>)"
    if vocab_from is None:
        return None, built
    if isinstance(vocab_from, str) and vocab_from == "auto":
        if source.captions_pickle is None:
            return None, f"{built}; vocab_from='auto' found no {' or '.join(CAPTIONS_PICKLE_NAMES)} in {source.src}"
        path = source.captions_pickle
    else:
        path = Path(vocab_from)
    vocab = Vocabulary.from_captions_pickle(path)
    return vocab, f"imported from {path} ({len(vocab)} words)"


def _prepare(kind: str, src: str | Path, out: str | Path, *, overwrite: bool, store_size: int, on_bad: str,
             vocab_from: str | Path | None, captions_per_image: int, progress: bool | str) -> Path:
    check_convert_args(on_bad, store_size, captions_per_image)
    source = _scan(kind, src)
    return convert_source(source, out, overwrite=overwrite, store_size=store_size, on_bad=on_bad,
                          vocab_from=vocab_from, captions_per_image=captions_per_image, progress=progress)


def check_convert_args(on_bad: str, store_size: int, captions_per_image: int) -> None:
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
    if int(store_size) < 1:
        raise ValueError(f"store_size must be a positive number of pixels, got {store_size!r}")
    if int(captions_per_image) < 1:
        raise ValueError(f"captions_per_image must be >= 1, got {captions_per_image!r}")


def convert_source(source: _Source, out: str | Path, *, overwrite: bool, store_size: int, on_bad: str,
                   vocab_from: str | Path | None, captions_per_image: int, progress: bool | str) -> Path:
    """Convert a scanned source (any adapter's) into a canonical dataset: the shared per-key loop."""
    check_convert_args(on_bad, store_size, captions_per_image)
    store_size, captions_per_image = int(store_size), int(captions_per_image)
    kind = source.kind
    if source.duplicates and on_bad == "raise":
        raise _duplicate_error(source.duplicates[0])
    vocab, vocab_origin = _resolve_vocab(vocab_from, source)
    duplicated = {(d["split"], int(d["position"])): d for d in source.duplicates}
    items = [(split, pos, key, source.class_ids[split][pos])
             for split in SPLITS for pos, key in enumerate(source.keys[split])]

    writer = CanonicalWriter(out, name=source.name or kind, image_format="jpg", overwrite=overwrite)
    fewer: list[str] = []
    skipped_logged = 0
    try:
        for split, pos, key, class_id in progress_bar(items, enabled=progress, total=len(items),
                                                      desc=f"prepare {kind}", unit="img"):
            if (split, pos) in duplicated:
                writer.skip(key, str(_duplicate_error(duplicated[(split, pos)])) + " (kept the first listing)")
                continue
            try:
                im, captions, n_usable = _load_item(source, key, split, store_size, captions_per_image)
            except _SKIPPABLE as exc:
                if on_bad == "raise":
                    raise
                skipped_logged += 1
                if skipped_logged <= _MAX_WARNINGS:
                    log.warning("skipping %r: %s", key, exc)
                writer.skip(key, str(exc))
                continue
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001 - unexpected: re-raise with the key and files named
                raise DataError(f"converting key {key!r} ({split}) of {source.src} failed: {exc!r}") from exc
            if n_usable < captions_per_image:
                fewer.append(key)
                if len(fewer) <= _MAX_WARNINGS:
                    log.warning("%s: %d usable captions, fewer than the expected %d (kept all of them)",
                                source.text_path(key), n_usable, captions_per_image)
            writer.add(key, split, class_id, im, captions)
        if len(fewer) > _MAX_WARNINGS:
            log.warning("%d images have fewer than %d usable captions (first %d logged above)", len(fewer),
                        captions_per_image, _MAX_WARNINGS)
        if writer.skipped:
            log.warning("skipped %d of %d listed images (--skip-bad; first %d logged above, all with their reasons "
                        "in manifest.json 'skipped'): %s", len(writer.skipped), len(items),
                        min(skipped_logged, _MAX_WARNINGS), _skip_summary(writer.skipped))
        src_record: dict[str, Any] = {
            "kind": kind,
            "src": str(source.src.resolve()),
            "listed": {split: len(source.keys[split]) for split in SPLITS},
            "store_size": store_size,
            "resize": "shorter side to store_size, bilinear (antialiased), JPEG q95",
            "crop": source.crop,
            "class_ids": dict(source.class_origin),
            "vocab": vocab_origin,
            "captions_per_image": captions_per_image,
            "fewer_captions": {"count": len(fewer), "examples": fewer[:20]},
            "repaired_crlf": list(source.repaired_crlf),
            "on_bad": on_bad,
        }
        if kind == "coco":
            src_record["image_layout"] = source.image_layout
        src_record.update(source.extra)
        return writer.finish(vocab=vocab, source=src_record)
    except BaseException:
        writer.abort()
        raise
