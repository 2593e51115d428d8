"""The canonical dataset: one on-disk format for every source, and one ``Dataset`` that serves it.

On-disk layout (written only by :class:`CanonicalWriter`; a directory is complete once ``manifest.json`` exists)::

    DIR/
      manifest.json    format/version, name, provenance, counts per split, attribute schema, files and hashes
      records.jsonl    one JSON object per image: key, split, class_id, image (relative path), captions (raw text),
                       tokens (vocabulary ids per caption), optional attributes {name: value-index} and
                       mentions (per caption, the attribute names it states)
      vocab.json       the vocabulary (index 0 = "<end>") and its hash
      images/          one file per image (PNG for synthetic data, JPEG q95 for converted photographs)

:class:`CaptionDataset` serves images at one or several resolutions, one random caption per image or two
*different* captions of the same image (fake-to-fake), class ids, keys and attributes.  Every random choice of an
item is drawn from a generator seeded by ``(seed, epoch, index)``, so sampling is the same in any DataLoader
worker layout and reproducible across runs; call :meth:`CaptionDataset.set_epoch` each epoch.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .. import __version__
from ..utils.io import atomic_write_text, file_sha256, read_json, write_json
from ..utils.seed import item_rng
from .errors import BadImageError, DataError, ManifestError
from .images import center_crop, load_rgb, resize_shorter, to_tensor
from .text import LONG_CAPTION_MODES, Vocabulary, fixed_length

log = logging.getLogger(__name__)

FORMAT_NAME = "t2i-canonical"
FORMAT_VERSION = 1
SPLITS = ("train", "test")
VAL_SPLIT = "val"  # derived: carved from "train" by :func:`validation_indices`, never stored
IMAGE_SIZES = (64, 128, 256)
_RECORD_FIELDS = {"key": str, "split": str, "class_id": int, "image": str, "captions": list, "tokens": list}
_MANIFEST_FIELDS = {"format": str, "format_version": int, "name": str, "splits": dict, "n_images": int,
                    "vocab": dict, "records": dict, "image_format": str}


# ------------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------------
@dataclass
class _Pending:
    key: str
    split: str
    class_id: int
    image: str
    captions: list[str]
    tokens: list[list[str]]
    attributes: dict[str, int] | None = None
    mentions: list[list[str]] | None = None


class CanonicalWriter:
    """Writes a canonical dataset into a temporary sibling directory and renames it into place on :meth:`finish`.

    Nothing incomplete ever sits under ``out_dir``: a crash leaves only ``<out_dir>.partial-<pid>``.
    ``overwrite=False`` refuses an existing ``out_dir``.
    """

    def __init__(self, out_dir: str | Path, name: str, image_format: str = "png", overwrite: bool = False,
                 jpeg_quality: int = 95):
        if image_format not in ("png", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not overwrite:
            raise FileExistsError(f"{self.out_dir} exists; pass overwrite=True (CLI: --force) to replace it")
        self.name = name
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.tmp_dir = self.out_dir.parent / f"{self.out_dir.name}.partial-{os.getpid()}"
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        (self.tmp_dir / "images").mkdir(parents=True)
        self._overwrite = overwrite
        self._records: list[_Pending] = []
        self._keys: set[str] = set()
        self.skipped: list[dict[str, str]] = []

    def add(self, key: str, split: str, class_id: int, image: Image.Image | np.ndarray,
            captions: Sequence[tuple[str, Sequence[str]]], attributes: dict[str, int] | None = None,
            mentions: Sequence[Sequence[str]] | None = None) -> None:
        """Add one image with its (raw caption, tokens) pairs; the image is written now."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r} for key {key!r}")
        if key in self._keys:
            raise DataError(f"duplicated key {key!r} in dataset {self.name!r}")
        if not captions:
            raise DataError(f"key {key!r} has no usable caption")
        if mentions is not None and len(mentions) != len(captions):
            raise ValueError(f"key {key!r}: {len(mentions)} mention lists for {len(captions)} captions")
        rel = f"images/{_safe_filename(key)}.{self.image_format}"
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        path = self.tmp_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.image_format == "png":
            image.save(path, format="PNG", compress_level=1)
        else:
            image.save(path, format="JPEG", quality=self.jpeg_quality)
        self._keys.add(key)
        self._records.append(_Pending(key, split, int(class_id), rel, [c for c, _ in captions],
                                      [list(t) for _, t in captions],
                                      dict(attributes) if attributes is not None else None,
                                      [list(m) for m in mentions] if mentions is not None else None))

    def skip(self, key: str, reason: str) -> None:
        """Record an image left out (skip-and-count mode); the manifest lists every skipped key and reason."""
        self.skipped.append({"key": key, "reason": reason})

    def finish(self, vocab: Vocabulary | None = None, source: dict[str, Any] | None = None,
               attribute_schema: dict[str, list[str]] | None = None, num_classes: int | None = None,
               image_size: int | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Encode captions with ``vocab`` (built from all captions, train + test, when None), write the records,
        vocabulary and manifest, then move the directory into place.  Returns ``out_dir``."""
        if not self._records:
            raise DataError(f"dataset {self.name!r} has no image (skipped: {len(self.skipped)})")
        if vocab is None:
            vocab = Vocabulary.build(t for r in self._records for t in r.tokens)
        oov = Counter()
        lines = []
        for r in self._records:
            ids = []
            for toks in r.tokens:
                enc = vocab.encode(toks, strict=False)
                oov.update(w for w in toks if w not in vocab)
                ids.append(enc)
            keep = [i for i, e in enumerate(ids) if e]
            if not keep:
                self.skip(r.key, "no caption word is in the vocabulary")
                continue
            rec: dict[str, Any] = {"key": r.key, "split": r.split, "class_id": r.class_id, "image": r.image,
                                   "captions": [r.captions[i] for i in keep], "tokens": [ids[i] for i in keep]}
            if r.attributes is not None:
                rec["attributes"] = r.attributes
            if r.mentions is not None:
                rec["mentions"] = [r.mentions[i] for i in keep]
            lines.append(json.dumps(rec, ensure_ascii=True, separators=(",", ":")))
        atomic_write_text(self.tmp_dir / "records.jsonl", "\n".join(lines) + "\n")
        write_json(self.tmp_dir / "vocab.json", vocab.to_dict())
        recs = [json.loads(x) for x in lines]
        split_counts = {s: sum(1 for r in recs if r["split"] == s) for s in SPLITS}
        n_caps = [len(r["captions"]) for r in recs]
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created_by": f"t2i_lib {__version__}",
            "source": source or {},
            "image_format": self.image_format,
            "image_size": image_size,
            "n_images": len(recs),
            "splits": split_counts,
            "n_captions": int(sum(n_caps)),
            "captions_per_image": {"min": int(min(n_caps)), "max": int(max(n_caps))},
            "num_classes": num_classes if num_classes is not None else len({r["class_id"] for r in recs}),
            "attributes": attribute_schema,
            "vocab": {"file": "vocab.json", "hash": vocab.hash, "size": len(vocab), "source": vocab.source},
            "records": {"file": "records.jsonl", "sha256": file_sha256(self.tmp_dir / "records.jsonl")},
            "out_of_vocabulary": {"tokens": int(sum(oov.values())), "distinct": len(oov),
                                  "examples": sorted(oov)[:20]},
            "skipped": {"count": len(self.skipped), "items": self.skipped[:1000]},
        }
        if extra:
            manifest.update(extra)
        write_json(self.tmp_dir / "manifest.json", manifest)
        if self.out_dir.exists():
            if not self._overwrite:
                raise FileExistsError(f"{self.out_dir} appeared while writing; not overwriting")
            shutil.rmtree(self.out_dir)
        os.replace(self.tmp_dir, self.out_dir)
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _safe_filename(key: str) -> str:
    if not key or key.startswith(("/", ".")) or ".." in key.split("/") or "\\" in key:
        raise DataError(f"unsafe key for a file name: {key!r}")
    return key


# ------------------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------------------
def read_manifest(root: str | Path) -> dict:
    """Load and validate ``manifest.json``; every problem is a :class:`ManifestError` naming the file and field."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        if root.is_dir() and any(root.glob("*.partial-*")):
            raise ManifestError(f"{root}: no manifest.json (an interrupted prepare left a .partial directory)")
        raise ManifestError(f"{path} not found: is {root} a dataset made by `python -m t2i_lib prepare`?")
    try:
        m = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(m, dict):
        raise ManifestError(f"{path}: expected a JSON object")
    for k, typ in _MANIFEST_FIELDS.items():
        if k not in m:
            raise ManifestError(f"{path}: missing field {k!r}")
        if not isinstance(m[k], typ) or (typ is int and isinstance(m[k], bool)):
            raise ManifestError(f"{path}: field {k!r} should be {typ.__name__}, got {type(m[k]).__name__}")
    if m["format"] != FORMAT_NAME:
        raise ManifestError(f"{path}: format is {m['format']!r}, expected {FORMAT_NAME!r}")
    if m["format_version"] != FORMAT_VERSION:
        raise ManifestError(f"{path}: format_version {m['format_version']} is not supported "
                            f"(this library reads {FORMAT_VERSION})")
    if m["image_format"] not in ("png", "jpg"):
        raise ManifestError(f"{path}: image_format {m['image_format']!r} not in ('png', 'jpg')")
    return m


def read_records(root: str | Path, manifest: dict | None = None, verify_hash: bool = True) -> list[dict]:
    """All records, validated field by field; the records file's hash is checked against the manifest."""
    root = Path(root)
    manifest = manifest or read_manifest(root)
    path = root / manifest["records"].get("file", "records.jsonl")
    if not path.is_file():
        raise ManifestError(f"{path} not found (listed in {root / 'manifest.json'})")
    if verify_hash and "sha256" in manifest["records"]:
        digest = file_sha256(path)
        if digest != manifest["records"]["sha256"]:
            raise ManifestError(f"{path}: content does not match the sha256 in manifest.json (edited or corrupted)")
    records, seen = [], set()
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            _check_record(r, f"{path}:{lineno}")
            if r["key"] in seen:
                raise ManifestError(f"{path}:{lineno}: duplicated key {r['key']!r}")
            seen.add(r["key"])
            records.append(r)
    if len(records) != manifest["n_images"]:
        raise ManifestError(f"{path}: {len(records)} records but manifest says n_images={manifest['n_images']}")
    return records


def _check_record(r: Any, where: str) -> None:
    if not isinstance(r, dict):
        raise ManifestError(f"{where}: record is not an object")
    for k, typ in _RECORD_FIELDS.items():
        if k not in r:
            raise ManifestError(f"{where}: missing field {k!r}")
        if not isinstance(r[k], typ) or (typ is int and isinstance(r[k], bool)):
            raise ManifestError(f"{where}: field {k!r} should be {typ.__name__}, got {type(r[k]).__name__}")
    if r["split"] not in SPLITS:
        raise ManifestError(f"{where}: split {r['split']!r} not in {SPLITS}")
    if not r["tokens"] or len(r["tokens"]) != len(r["captions"]):
        raise ManifestError(f"{where}: {len(r['captions'])} captions but {len(r['tokens'])} token lists")
    for t in r["tokens"]:
        if not isinstance(t, list) or not t or not all(isinstance(i, int) and i > 0 for i in t):
            raise ManifestError(f"{where}: token lists must be non-empty lists of positive ints")


def load_vocab(root: str | Path, manifest: dict | None = None) -> Vocabulary:
    root = Path(root)
    manifest = manifest or read_manifest(root)
    path = root / manifest["vocab"].get("file", "vocab.json")
    if not path.is_file():
        raise ManifestError(f"{path} not found (listed in {root / 'manifest.json'})")
    vocab = Vocabulary.from_dict(read_json(path))
    if manifest["vocab"].get("hash") not in (None, vocab.hash):
        raise ManifestError(f"{path}: vocabulary hash {vocab.hash} != manifest's {manifest['vocab']['hash']}")
    return vocab


def validation_indices(train_records: Sequence[dict], fraction: float, seed: int = 0) -> np.ndarray:
    """Indices (into ``train_records``) of the validation split carved from the training split.

    The training records are ordered by class id, and within a class by a shuffle seeded by ``seed``; every
    ``k``-th of them is a validation item, ``k = max(2, round(1 / fraction))``, starting at a seeded offset.  So the
    split is stratified by class (each class gives about 1/k of its images; singleton classes such as COCO's are
    spread evenly), reproducible, and the same for every run that asks for the same fraction and seed.  Sorted.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    n = len(train_records)
    k = max(2, int(round(1.0 / fraction)))
    rng = np.random.default_rng([int(seed) % (2**63), 104729])
    tiebreak = rng.permutation(n)
    order = sorted(range(n), key=lambda i: (int(train_records[i]["class_id"]), int(tiebreak[i])))
    offset = int(rng.integers(k))
    return np.sort(np.asarray(order[offset::k], dtype=np.int64))


_NEGATIVE_STREAM = 7919  # extra key of the random stream of attribute negatives


class CaptionDataset:
    """A ``torch.utils.data.Dataset`` over one split of a canonical dataset.

    Args:
        root: canonical dataset directory.
        split: "train" or "test".
        image_sizes: output resolutions, ascending (e.g. (64,), (64, 128, 256)); the largest is cropped from the
            stored image, smaller ones are resized from it (AttnGAN's branch images).
        captions_per_sample: 1, or 2 for two *different* captions of the same image (same caption twice only when
            the image has a single caption).
        max_words: fixed caption length (reference 18).
        long_caption_mode: "subsample" (reference: random words kept in order) or "truncate".
        seed: sampling seed; with the epoch and the index it fixes every random choice of an item.
        random_crop: reference augmentation: resize to int(size*76/64) then random crop (else resize + centre crop).
        random_flip: random horizontal flip (reference for photographs; wrong for data with left/right attributes).
        on_bad_image: "raise" (a :class:`BadImageError` naming key and file) or "skip" (serve the next readable
            item and record the key in ``bad_keys``, counted per process).
        caption_index: fix the caption served (evaluation); None draws one at random.
        val_fraction: > 0 carves a validation split out of "train" (:func:`validation_indices`, seeded by
            ``val_seed``): ``split="train"`` then serves the rest and ``split="val"`` the carved items.
        attribute_negatives: every item also carries ``caption_neg`` / ``cap_len_neg``: a caption of another image
            of the split that differs from this one in exactly one attribute, which that caption states (see
            :meth:`attribute_negative`).  Needs records with ``attributes`` and ``mentions`` (caption-shapes).
    """

    def __init__(self, root: str | Path, split: str = "train", image_sizes: Sequence[int] = (64,),
                 captions_per_sample: int = 1, max_words: int = 18, long_caption_mode: str = "subsample",
                 seed: int = 0, random_crop: bool = False, random_flip: bool = False,
                 on_bad_image: str = "raise", caption_index: int | None = None, val_fraction: float = 0.0,
                 val_seed: int = 0, attribute_negatives: bool = False):
        if split not in SPLITS + (VAL_SPLIT,):
            raise ValueError(f"split must be one of {SPLITS + (VAL_SPLIT,)}, got {split!r}")
        if split == VAL_SPLIT and not 0 < val_fraction < 1:
            raise ValueError(f"split 'val' needs 0 < val_fraction < 1, got {val_fraction}")
        sizes = tuple(int(s) for s in image_sizes)
        if not sizes or list(sizes) != sorted(set(sizes)) or any(s < 4 for s in sizes):
            raise ValueError(f"image_sizes must be distinct, ascending and >= 4, got {image_sizes!r}")
        if captions_per_sample not in (1, 2):
            raise ValueError(f"captions_per_sample must be 1 or 2, got {captions_per_sample}")
        if long_caption_mode not in LONG_CAPTION_MODES:
            raise ValueError(f"long_caption_mode must be one of {LONG_CAPTION_MODES}, got {long_caption_mode!r}")
        if on_bad_image not in ("raise", "skip"):
            raise ValueError(f"on_bad_image must be 'raise' or 'skip', got {on_bad_image!r}")
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.vocab = load_vocab(self.root, self.manifest)
        stored = "train" if split == VAL_SPLIT else split
        self.records = [r for r in read_records(self.root, self.manifest) if r["split"] == stored]
        if stored == "train" and val_fraction > 0:
            val = set(validation_indices(self.records, val_fraction, val_seed).tolist())
            self.records = [r for i, r in enumerate(self.records) if (i in val) == (split == VAL_SPLIT)]
        self.val_fraction = float(val_fraction) if stored == "train" else 0.0
        if not self.records:
            raise DataError(f"{self.root}: split {split!r} is empty")
        self.split = split
        self.image_sizes = sizes
        self.captions_per_sample = captions_per_sample
        self.max_words = max_words
        self.long_caption_mode = long_caption_mode
        self.seed = int(seed)
        self.random_crop = random_crop
        self.random_flip = random_flip
        self.on_bad_image = on_bad_image
        self.caption_index = caption_index
        self.epoch = 0
        self.bad_keys: list[str] = []
        self.attribute_schema: dict[str, list[str]] | None = self.manifest.get("attributes")
        self.attribute_negatives = bool(attribute_negatives)
        self._groups: dict[str, dict[tuple, list[int]]] | None = None  # built on first use
        self._group_arrays: dict[tuple[str, tuple], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if self.attribute_negatives:
            self._attribute_groups()  # fails now, not at the first item, on data without attributes

    # ---- bookkeeping ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the caption/augmentation draws for a new epoch (deterministically)."""
        self.epoch = int(epoch)

    @property
    def keys(self) -> list[str]:
        return [r["key"] for r in self.records]

    @property
    def class_ids(self) -> np.ndarray:
        return np.array([r["class_id"] for r in self.records], dtype=np.int64)

    def _attribute_groups(self) -> dict[str, dict[tuple, list[int]]]:
        """For each attribute, the split's items (in split order) grouped by the values of all *other* attributes:
        the items of an item's group differ from it in that attribute at most."""
        if self._groups is None:
            names = list(self.attribute_schema or ())
            if not names or any("attributes" not in r or "mentions" not in r for r in self.records):
                raise DataError(f"{self.root}: attribute partners need records with 'attributes' and 'mentions' "
                                "(the caption-shapes dataset)")
            groups: dict[str, dict[tuple, list[int]]] = {a: {} for a in names}
            for i, r in enumerate(self.records):
                for a in names:
                    groups[a].setdefault(self._others_key(r, a), []).append(i)
            self._groups = groups
        return self._groups

    def _others_key(self, rec: dict, attribute: str) -> tuple:
        return tuple(rec["attributes"][b] for b in self.attribute_schema if b != attribute)

    def one_attribute_partners(self, index: int, attribute: str) -> list[tuple[int, int]]:
        """``(other index, caption index)`` of every caption of the split that is wrong for item ``index`` in
        exactly ``attribute`` and states it (split order, then caption order)."""
        rec = self.records[index]
        group = self._attribute_groups()[attribute][self._others_key(rec, attribute)]
        return [(j, c) for j in group if self.records[j]["attributes"][attribute] != rec["attributes"][attribute]
                for c, m in enumerate(self.records[j]["mentions"]) if attribute in m]

    def same_attribute_images(self, index: int) -> list[int]:
        """The split's other items with exactly the attributes of item ``index`` (split order)."""
        rec = self.records[index]
        first = next(iter(self.attribute_schema))
        return [j for j in self._attribute_groups()[first][self._others_key(rec, first)]
                if j != index and self.records[j]["attributes"][first] == rec["attributes"][first]]

    def _group_arrays_for(self, attribute: str, key: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The items of ``attribute``'s group ``key`` (split order), their value of ``attribute`` and how many of
        their captions state it (cached per group)."""
        out = self._group_arrays.get((attribute, key))
        if out is None:
            members = self._attribute_groups()[attribute].get(key, [])
            out = (np.asarray(members, dtype=np.int64),
                   np.asarray([self.records[j]["attributes"][attribute] for j in members]),
                   np.asarray([sum(attribute in m for m in self.records[j]["mentions"]) for j in members],
                              dtype=np.int64))
            self._group_arrays[(attribute, key)] = out
        return out

    def attribute_negative(self, index: int, rng: np.random.Generator) -> tuple[int, int, str]:
        """``(other index, caption index, attribute)``: a caption that is wrong for item ``index`` in exactly one
        attribute.  The attribute is drawn uniformly among those for which the split has an image that differs
        from this one only there and a caption of it that states the attribute
        (:meth:`one_attribute_partners`); then such an image and caption are drawn uniformly.  Where no attribute
        has one (a tiny split), an image of another class (another shape or colour, which every caption states)
        and any of its captions.  Only on a dataset made with ``attribute_negatives=True`` (the training
        option it serves)."""
        if not self.attribute_negatives:
            raise RuntimeError("the dataset was made without attribute_negatives=True")
        # The draws of one_attribute_partners' lists, without building them: per attribute the group's images,
        # their value of it and how many of their captions state it; the k-th candidate by cumulative counts.
        rec = self.records[index]
        options = []
        for a in self.attribute_schema or ():
            members, values, counts = self._group_arrays_for(a, self._others_key(rec, a))
            cum = np.cumsum(np.where(values != rec["attributes"][a], counts, 0))
            if cum.size and cum[-1] > 0:
                options.append((a, members, cum))
        if options:
            a, members, cum = options[int(rng.integers(len(options)))]
            k = int(rng.integers(int(cum[-1])))
            at = int(np.searchsorted(cum, k, side="right"))
            j = int(members[at])
            before = int(cum[at - 1]) if at else 0
            return j, [c for c, m in enumerate(self.records[j]["mentions"]) if a in m][k - before], a
        others = [j for j, r in enumerate(self.records) if r["class_id"] != rec["class_id"]]
        if not others:
            raise DataError(f"{self.root}: split {self.split!r} has a single class: no negative caption exists")
        j = others[int(rng.integers(len(others)))]
        return j, int(rng.integers(len(self.records[j]["tokens"]))), "class"

    # ---- items ------------------------------------------------------------------------------------------------
    def image_path(self, index: int) -> Path:
        return self.root / self.records[index]["image"]

    def load_image(self, index: int) -> Image.Image:
        rec = self.records[index]
        try:
            return load_rgb(self.root / rec["image"])
        except BadImageError as exc:
            raise BadImageError(exc.path, f"{exc.reason} (key {rec['key']!r}, split {self.split!r})") from exc

    def _transform(self, im: Image.Image, rng: np.random.Generator) -> list:
        top = self.image_sizes[-1]
        if self.random_crop:
            im = resize_shorter(im, int(top * 76 / 64))
            w, h = im.size
            x = int(rng.integers(0, w - top + 1))
            y = int(rng.integers(0, h - top + 1))
            im = im.crop((x, y, x + top, y + top))
        else:
            im = center_crop(resize_shorter(im, top), top)
        if self.random_flip and rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        outs = []
        for s in self.image_sizes[:-1]:
            outs.append(to_tensor(im.resize((s, s), Image.BILINEAR)))
        outs.append(to_tensor(im))
        return outs

    def load_and_transform(self, index: int, epoch: int | None = None) -> list:
        """The item's images (one tensor per size) with the item's seeded augmentation, without captions."""
        rng = item_rng(self.seed, self.epoch if epoch is None else epoch, index)
        return self._transform(self.load_image(index), rng)

    def caption_choice(self, index: int, rng: np.random.Generator) -> list[int]:
        n = len(self.records[index]["tokens"])
        if self.caption_index is not None:
            first = self.caption_index % n
            if self.captions_per_sample == 1:
                return [first]
            return [first, (first + 1) % n]
        if self.captions_per_sample == 1 or n == 1:
            return [int(rng.integers(n))] * self.captions_per_sample
        return [int(i) for i in rng.choice(n, size=2, replace=False)]

    def encode_caption(self, index: int, cap_idx: int, rng: np.random.Generator | None = None):
        ids = self.records[index]["tokens"][cap_idx]
        return fixed_length(ids, self.max_words, self.long_caption_mode, rng)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        tries = 0
        while True:
            try:
                return self._item(index)
            except BadImageError:
                if self.on_bad_image == "raise":
                    raise
                self.bad_keys.append(self.records[index]["key"])
                log.warning("skipping unreadable image %s", self.image_path(index))
                tries += 1
                if tries >= len(self.records):
                    raise DataError(f"{self.root}: no readable image in split {self.split!r}")
                index = (index + 1) % len(self.records)

    def _item(self, index: int) -> dict[str, Any]:
        import torch

        rec = self.records[index]
        rng = item_rng(self.seed, self.epoch, index)
        caps = self.caption_choice(index, rng)
        images = self._transform(self.load_image(index), rng)
        item: dict[str, Any] = {"images": images, "index": index, "key": rec["key"],
                                "class_id": rec["class_id"]}
        for j, c in enumerate(caps):
            ids, n = self.encode_caption(index, c, rng)
            sfx = "" if j == 0 else str(j + 1)
            item["caption" + sfx] = torch.from_numpy(ids)
            item["cap_len" + sfx] = n
            item["cap_idx" + sfx] = c
        if "attributes" in rec:
            item["attributes"] = {k: int(v) for k, v in rec["attributes"].items()}
        if self.attribute_negatives:  # its own random stream: the draws above are the same with or without it
            neg_rng = item_rng(self.seed, self.epoch, index, _NEGATIVE_STREAM)
            j, c, _ = self.attribute_negative(index, neg_rng)
            ids, n = self.encode_caption(j, c, neg_rng)
            item["caption_neg"] = torch.from_numpy(ids)
            item["cap_len_neg"] = n
        return item


def make_loader(dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0,
                drop_last: bool = False, pin_memory: bool = False, sampler=None):
    """A DataLoader with a seeded shuffle order and seeded workers (reproducible for a given seed)."""
    import torch

    g = torch.Generator()
    g.manual_seed(int(seed))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        num_workers=num_workers, drop_last=drop_last, pin_memory=pin_memory, generator=g,
        worker_init_fn=_seed_worker, persistent_workers=False)


def _seed_worker(worker_id: int) -> None:
    import random

    import torch

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def dataset_summary(root: str | Path) -> dict[str, Any]:
    """Counts, caption-length statistics and vocabulary size of a canonical dataset (for notebooks/CLI)."""
    m = read_manifest(root)
    recs = read_records(root, m)
    lens = np.array([len(t) for r in recs for t in r["tokens"]])
    return {"name": m["name"], "n_images": m["n_images"], "splits": m["splits"], "n_captions": int(lens.size),
            "captions_per_image": m["captions_per_image"], "vocab_size": m["vocab"]["size"],
            "caption_len_mean": float(lens.mean()), "caption_len_median": float(np.median(lens)),
            "caption_len_max": int(lens.max()), "frac_longer_than_18": float((lens > 18).mean()),
            "num_classes": m.get("num_classes"), "skipped": m.get("skipped", {}).get("count", 0)}
