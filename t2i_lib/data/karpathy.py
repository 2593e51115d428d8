"""Adapter from Karpathy-split JSON files (Flickr8k, Flickr30k, COCO) to the canonical dataset.

Source layout (docs/datasets.md#karpathy-split-json): one ``dataset_<name>.json`` beside the image folder::

    dataset_flickr30k.json    {"dataset": "flickr30k", "images": [{"filename": "1000092795.jpg", "split": "train",
                              "sentences": [{"raw": "Two young guys ...", "tokens": [...]}, ...]}, ...]}
    flickr30k-images/<filename>                     (--images; Flickr8k: Flicker8k_Dataset/<filename>)
    dataset_coco.json         entries also carry "filepath": "train2014" | "val2014"; images are looked up as
                              <images>/<filepath>/<filename>, then <images>/<filename> (AttnGAN's merged folder)

- splits as the JSON says: ``train`` -> train, ``test`` -> test, ``restval`` -> train by default (``restval``:
  "train" or "drop"), ``val`` dropped by default (``val``: "drop", "train" or "test"); the canonical format has only
  train and test.  Dropped entries are counted in the manifest;
- key = the file name without extension (``COCO_val2014_000000391895``, the same key as the AttnGAN COCO route);
- captions: each sentence's ``raw`` text (``tokens`` joined by spaces when ``raw`` is absent), cleaned and tokenised
  exactly as every other source (:func:`~t2i_lib.data.text.clean_caption_lines`); the first ``captions_per_image``
  (5) usable ones are kept.  The JSON's own ``tokens`` are not used, so all sources share one tokeniser;
- class ids: none in these sets, so every image gets its own id (as for COCO);
- images: no crop, shorter side resized to ``store_size`` (304), JPEG q95.

Bad input follows :mod:`t2i_lib.data.attngan`: a missing, undecodable or malformed JSON file and a missing image
folder are layout errors (always raised); a missing or unreadable image, an entry without usable caption and a
file name listed twice raise, or with ``on_bad="skip"`` are skipped and counted.  Every message names the file
and, for an entry, its position ``images[i]``.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from .attngan import (DEFAULT_STORE_SIZE, _PROBE, CAPTIONS_PICKLE_NAMES, _Source, _find_duplicates, _valid_key,
                      check_convert_args, convert_source)
from .dataset import SPLITS
from .errors import LayoutError

KARPATHY_CAPTIONS_PER_IMAGE = 5
JSON_SPLITS = ("train", "restval", "val", "test")
RESTVAL = ("train", "drop")
VAL = ("drop", "train", "test")
# image folder names of the usual downloads, tried under a dataset directory by find_karpathy()
IMAGE_DIR_NAMES = ("images", "flickr30k-images", "flickr30k_images", "Flicker8k_Dataset", "Flickr8k_Dataset")


def prepare_karpathy(json_path: str | Path, images: str | Path, out: str | Path, overwrite: bool = False,
                     store_size: int = DEFAULT_STORE_SIZE, on_bad: str = "raise", vocab_from: str | Path | None = None,
                     captions_per_image: int = KARPATHY_CAPTIONS_PER_IMAGE, restval: str = "train",
                     val: str = "drop", progress: bool | str = True) -> Path:
    """Convert a Karpathy-split JSON file and its image folder into a canonical dataset at ``out``.

    Args:
        json_path: ``dataset_flickr30k.json``, ``dataset_flickr8k.json`` or ``dataset_coco.json``.
        images: the image folder (for COCO the folder holding ``train2014/`` and ``val2014/``, or both merged).
        restval: where the ``restval`` entries go: "train" (the common practice) or "drop".
        val: where the ``val`` entries go: "drop" (default), "train" or "test".
        Other arguments as :func:`t2i_lib.data.attngan.prepare_cub` (``vocab_from="auto"`` looks for a
        ``captions.pickle`` beside the JSON file).
    """
    check_convert_args(on_bad, store_size, captions_per_image)
    source = scan_karpathy(json_path, images, restval=restval, val=val)
    return convert_source(source, out, overwrite=overwrite, store_size=store_size, on_bad=on_bad,
                          vocab_from=vocab_from, captions_per_image=captions_per_image, progress=progress)


def check_karpathy(json_path: str | Path, images: str | Path, restval: str = "train", val: str = "drop"
                   ) -> dict[str, Any]:
    """Validate a Karpathy JSON and its image folder without converting; same keys as ``attngan.check_layout``
    plus ``"json_splits"`` (entries per split as the JSON says) and ``"dropped"``."""
    s = scan_karpathy(json_path, images, restval=restval, val=val)
    return {"kind": "karpathy", "name": s.name, "src": str(s.src), "json": str(s.list_file),
            "splits": {split: len(s.keys[split]) for split in SPLITS}, "class_ids": dict(s.class_origin),
            "repaired_crlf": [], "duplicated_keys": [d["key"] for d in s.duplicates],
            "captions_pickle": str(s.captions_pickle) if s.captions_pickle else None,
            "json_splits": s.extra["json_splits"], "dropped": s.extra["dropped"]}


def find_karpathy(src: str | Path, name: str) -> tuple[Path, Path]:
    """(JSON file, image folder) of a dataset directory holding ``dataset_<name>.json`` beside its images."""
    src = Path(src)
    if not src.is_dir():
        raise LayoutError(f"{src} is not a directory (expected dataset_{name}.json beside its image folder)")
    js = src / f"dataset_{name}.json"
    if not js.is_file():
        found = sorted(p.name for p in src.glob("dataset_*.json"))
        hint = f" (found {', '.join(found)})" if found else " (from Karpathy's caption_datasets.zip)"
        raise LayoutError(f"dataset_{name}.json not found: expected {js}{hint}")
    for d in IMAGE_DIR_NAMES:
        if (src / d).is_dir():
            return js, src / d
    raise LayoutError(f"no image folder beside {js}: expected one of {', '.join(IMAGE_DIR_NAMES)} in {src}")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise LayoutError(f"Karpathy split file not found: {path} (dataset_flickr30k.json, dataset_flickr8k.json or "
                          "dataset_coco.json from caption_datasets.zip)")
    data = path.read_bytes()
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        off = start + exc.start
        raise LayoutError(f"{path}: not valid UTF-8: byte 0x{data[off]:02x} at offset {off} ({exc.reason})") from exc
    if not text.strip():
        raise LayoutError(f"{path}: empty file (expected a Karpathy split JSON object)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LayoutError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
                          "(truncated download?)") from exc


def scan_karpathy(json_path: str | Path, images: str | Path, restval: str = "train", val: str = "drop") -> _Source:
    """Read and check a Karpathy JSON; the :class:`~t2i_lib.data.attngan._Source` the shared converter reads."""
    if restval not in RESTVAL:
        raise ValueError(f"restval must be one of {RESTVAL}, got {restval!r}")
    if val not in VAL:
        raise ValueError(f"val must be one of {VAL}, got {val!r}")
    path, images = Path(json_path), Path(images)
    obj = _read_json(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("images"), list):
        got = type(obj).__name__ if not isinstance(obj, dict) else f"an object with keys {sorted(obj)[:6]}"
        raise LayoutError(f"{path}: expected a Karpathy split file, an object with an 'images' list, got {got}")
    if not obj["images"]:
        raise LayoutError(f"{path}: the 'images' list is empty")
    if not images.is_dir():
        raise LayoutError(f"image folder {images} not found (--images: the folder holding the files named in "
                          f"{path.name})")
    goes = {"train": "train", "test": "test", "restval": restval, "val": val}
    keys: dict[str, list[str]] = {s: [] for s in SPLITS}
    index: dict[str, list[int]] = {s: [] for s in SPLITS}  # position in images[] of each listed key
    files: dict[str, list[Path]] = {}
    captions: dict[str, Any] = {}
    first_index: dict[str, int] = {}
    json_splits = {s: 0 for s in JSON_SPLITS}
    for i, e in enumerate(obj["images"]):
        where = f"{path} images[{i}]"
        if not isinstance(e, dict):
            raise LayoutError(f"{where}: expected an object, got {type(e).__name__}")
        for f, t in (("filename", str), ("split", str), ("sentences", list)):
            if not isinstance(e.get(f), t):
                raise LayoutError(f"{where}: field {f!r} missing or not a {t.__name__} (a Karpathy entry has "
                                  "'filename', 'split' and 'sentences')")
        if e["split"] not in JSON_SPLITS:
            raise LayoutError(f"{where}: split {e['split']!r} is not one of {JSON_SPLITS}")
        fp = e.get("filepath", "")
        if not isinstance(fp, str):
            raise LayoutError(f"{where}: field 'filepath' is {type(fp).__name__}, not a str")
        name = e["filename"]
        key = Path(name).stem
        if "/" in name or "\\" in name or not _valid_key(key) or not _valid_key(fp or "x"):
            raise LayoutError(f"{where}: file name {fp + '/' if fp else ''}{name!r} is not a plain file name")
        json_splits[e["split"]] += 1
        split = goes[e["split"]]
        if split == "drop":
            continue
        keys[split].append(key)
        index[split].append(i)
        if key not in files:
            first_index[key] = i
            files[key] = [images / fp / name, images / name] if fp else [images / name]
            captions[key] = [s.get("raw", " ".join(t for t in s.get("tokens", []) if isinstance(t, str)))
                             if isinstance(s, dict) else s for s in e["sentences"]]
    for split in SPLITS:
        if not keys[split]:
            raise LayoutError(f"{path}: no entry goes to the {split} split (entries per split: {json_splits}; "
                              f"restval={restval!r}, val={val!r})")

    def image_path(key: str) -> Path | None:
        return next((p for p in files.get(key, []) if p.is_file()), None)

    def image_hint(key: str) -> str:
        return " nor ".join(str(p) for p in files.get(key, [])) + " not found"

    start, class_ids, origin = 0, {}, {}
    for split in SPLITS:
        class_ids[split] = list(range(start, start + len(keys[split])))
        origin[split] = "index over all kept images, train then test (no classes in a Karpathy split file)"
        start += len(keys[split])
    name = obj.get("dataset") if obj.get("dataset") in ("flickr8k", "flickr30k", "coco") else "karpathy"
    source = _Source(
        kind="karpathy", src=path.parent, keys=keys, class_ids=class_ids, class_origin=origin,
        image_path=image_path, name=name, captions_in=captions, list_file=path,
        caption_where_fn=lambda key: f"{path} images[{first_index[key]}] (sentences of {key!r})",
        where_fn=lambda split, pos: f"{path} (images[{index[split][pos]}])",
        image_hint_fn=image_hint,
        captions_pickle=next((path.parent / n for n in CAPTIONS_PICKLE_NAMES if (path.parent / n).is_file()), None),
        extra={"json": str(path.resolve()), "images": str(images.resolve()), "json_splits": json_splits,
               "split_mapping": {"train": "train", "test": "test", "restval": restval, "val": val},
               "dropped": {s: n for s, n in json_splits.items() if goes[s] == "drop"}})
    probed = [k for split in SPLITS for k in keys[split][:_PROBE]]
    if not any(image_path(k) is not None for k in probed):
        raise LayoutError(f"images not found in {images}: none of the first {len(probed)} entries of {path.name} has "
                          f"an image (e.g. {image_hint(probed[0])})")
    source.duplicates = _find_duplicates(source)
    return source
