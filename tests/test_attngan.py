"""AttnGAN-layout adapters (CUB-200-2011, COCO-2014) on tiny fixture trees built in ``tmp_path``.

The fixtures mimic the released layouts: 40x30 JPEGs, Python-2 protocol-0 metadata pickles (``class_info`` holds
NumPy-1.x int64 scalars written opcode by opcode), caption files with 10+ lines, ``images.txt`` and
``bounding_boxes.txt``.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i_lib.data.attngan import check_layout, prepare_coco, prepare_cub, read_caption_file
from t2i_lib.data.dataset import CaptionDataset, read_manifest, read_records
from t2i_lib.data.errors import (BadImageError, CaptionFileError, DataError, LayoutError, MissingKeyError,
                                 UnsafePickleError)
from t2i_lib.data.images import bbox_crop, load_rgb, resize_shorter
from t2i_lib.data.text import Vocabulary, tokenize

from test_safe_pickle import py2_int64_list_p0  # the Python-2 class_info.pickle builder

W, H = 40, 30  # fixture image size
STORE = 16  # store_size used by the tests (small: fast)
CUB_CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross")
# key -> bounding box (x, y, w, h) and the crop box AttnGAN's formula gives, computed by hand:
#   r = floor(0.75 * max(w, h)), centre = floor of the box centre, [cx - r, cy - r, cx + r, cy + r] clipped.
CUB_BOXES = {
    # r = 9, c = (16, 13): (7, 4, 25, 22), inside the image
    "001.Black_footed_Albatross/Black_Footed_Albatross_0001_1": ((10.0, 8.0, 12.0, 10.0), (7, 4, 25, 22)),
    # r = 12, c = (33, 10): (21, -2, 45, 22) clipped at the top and right border to (21, 0, 40, 22)
    "001.Black_footed_Albatross/Black_Footed_Albatross_0002_2": ((28.0, 2.0, 10.0, 16.0), (21, 0, 40, 22)),
    # fractional box: r = floor(7.275) = 7, c = (floor(10.35), floor(6.75)) = (10, 6): (3, -1, 17, 13) -> top clip
    "002.Laysan_Albatross/Laysan_Albatross_0003_3": ((5.5, 3.2, 9.7, 7.1), (3, 0, 17, 13)),
    # the whole image: r = 30, c = (20, 15): clipped everywhere to (0, 0, 40, 30)
    "002.Laysan_Albatross/Laysan_Albatross_0004_4": ((0.0, 0.0, 40.0, 30.0), (0, 0, 40, 30)),
    # test split (class 3)
    "003.Sooty_Albatross/Sooty_Albatross_0005_5": ((12.0, 6.0, 16.0, 16.0), (8, 2, 32, 26)),
    "003.Sooty_Albatross/Sooty_Albatross_0006_6": ((2.0, 2.0, 8.0, 6.0), (0, 0, 12, 11)),
}
CUB_SPLITS = {"train": list(CUB_BOXES)[:4], "test": list(CUB_BOXES)[4:]}
COCO_SPLITS = {"train": ["COCO_train2014_000000000009", "COCO_train2014_000000000025",
                         "COCO_train2014_000000000030"],
               "test": ["COCO_val2014_000000000042", "COCO_val2014_000000000073"]}


# ------------------------------------------------------------------------------------------------------------
# Fixture builders
# ------------------------------------------------------------------------------------------------------------
def gradient_image(seed: int = 0) -> Image.Image:
    """40x30 RGB whose pixel (x, y) is (5x, 5y, 40 + 20*seed): the crop position can be read from the pixels."""
    xs, ys = np.meshgrid(np.arange(W), np.arange(H))
    arr = np.stack([xs * 5, ys * 5, np.full_like(xs, 40 + 20 * seed)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr)


def caption_lines(tag: str, n: int) -> list[str]:
    """``n`` distinct captions for one image, with an empty and a punctuation-only line mixed in."""
    caps = [f"A small bird {tag} has feature number {j}." for j in range(n)]
    return caps[:1] + [""] + caps[1:2] + ["... !!!"] + caps[2:]


def _tag(key: str) -> str:
    return key.rsplit("_", 1)[-1]


def make_cub(root: Path, n_captions: int = 12, class_info: str = "pickle", line_ending: str = "\n") -> Path:
    """A ``data/birds`` tree: 4 train images (classes 1, 2), 2 test images (class 3).

    ``class_info``: "pickle" (Python-2 pickles holding the class directory number), "offset" (pickles holding
    that number + 100, to tell pickled ids from derived ones) or "missing".
    """
    src = root / "birds"
    cub = src / "CUB_200_2011"
    index_lines, box_lines = [], []
    for i, (key, (box, _)) in enumerate(CUB_BOXES.items(), 1):
        img = cub / "images" / f"{key}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        gradient_image(i).save(img, quality=95)
        index_lines.append(f"{i} {key}.jpg")
        box_lines.append(f"{i} {box[0]} {box[1]} {box[2]} {box[3]}")
        txt = src / "text" / f"{key}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_bytes(line_ending.join(caption_lines(_tag(key), n_captions)).encode("utf-8") + b"\n")
    (cub / "images.txt").write_text("\n".join(index_lines) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(box_lines) + "\n")
    for split, keys in CUB_SPLITS.items():
        (src / split).mkdir(parents=True)
        (src / split / "filenames.pickle").write_bytes(pickle.dumps(keys, protocol=0))
        if class_info != "missing":
            ids = [int(k[:3]) + (100 if class_info == "offset" else 0) for k in keys]
            (src / split / "class_info.pickle").write_bytes(py2_int64_list_p0(ids))
    return src


def make_coco(root: Path, layout: str = "merged", n_captions: int = 6) -> Path:
    """A ``data/coco`` tree with images in ``images/<key>.jpg`` ("merged") or ``images/<sub>/<key>.jpg`` ("split")."""
    src = root / "coco"
    for split, keys in COCO_SPLITS.items():
        (src / split).mkdir(parents=True)
        (src / split / "filenames.pickle").write_bytes(pickle.dumps(keys, protocol=0))
        for i, key in enumerate(keys):
            sub = "" if layout == "merged" else ("train2014/" if split == "train" else "val2014/")
            img = src / "images" / f"{sub}{key}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            gradient_image(i).save(img, quality=95)
            txt = src / "text" / f"{key}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("\n".join(f"A photo of thing {key[-2:]} number {j}" for j in range(n_captions)) + "\n")
    return src


def open_image(path: Path) -> tuple[Image.Image, str]:
    """A fully loaded copy of the image (the file is closed) and its format."""
    with Image.open(path) as im:
        im.load()
        return im.copy(), im.format


def records_by_key(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in read_records(out)}


def cub(src: Path, out: Path, **kw) -> Path:
    kw.setdefault("store_size", STORE)
    kw.setdefault("progress", False)
    return prepare_cub(src, out, **kw)


# ------------------------------------------------------------------------------------------------------------
# CUB
# ------------------------------------------------------------------------------------------------------------
def test_bbox_crop_geometry_matches_hand_computed_boxes():
    im = gradient_image()
    for key, (box, (x1, y1, x2, y2)) in CUB_BOXES.items():
        crop = bbox_crop(im, box)
        assert crop.size == (x2 - x1, y2 - y1), key
        arr = np.asarray(crop)
        assert tuple(arr[0, 0, :2]) == (5 * x1, 5 * y1), key  # top-left pixel tells the crop origin
        assert tuple(arr[-1, -1, :2]) == (5 * (x2 - 1), 5 * (y2 - 1)), key


def test_prepare_cub_end_to_end(tmp_path):
    src = make_cub(tmp_path, class_info="offset")
    info = check_layout("cub", src)
    assert info["splits"] == {"train": 4, "test": 2}
    assert info["class_ids"]["train"] == "train/class_info.pickle"
    assert info["n_bounding_boxes"] == 6 and info["repaired_crlf"] == [] and info["duplicated_keys"] == []

    out = cub(src, tmp_path / "cub")
    assert out == tmp_path / "cub"
    m = read_manifest(out)
    recs = records_by_key(out)
    assert m["splits"] == {"train": 4, "test": 2} and m["image_format"] == "jpg" and m["skipped"]["count"] == 0
    assert {k: r["split"] for k, r in recs.items()} == {k: s for s, ks in CUB_SPLITS.items() for k in ks}
    # class ids come from class_info.pickle (the fixture stores directory number + 100)
    assert {k: r["class_id"] for k, r in recs.items()} == {k: int(k[:3]) + 100 for k in CUB_BOXES}
    vocab = Vocabulary.from_dict(json.loads((out / "vocab.json").read_text()))
    for key, (box, (x1, y1, x2, y2)) in CUB_BOXES.items():
        r = recs[key]
        # first 10 usable captions, in order; the empty and punctuation-only lines are not captions
        assert r["captions"] == [f"A small bird {_tag(key)} has feature number {j}." for j in range(10)]
        assert [vocab.decode(t) for t in r["tokens"]] == [" ".join(tokenize(c)) for c in r["captions"]]
        # stored image: bbox crop, then shorter side = store_size (torchvision Resize(int) arithmetic)
        stored, fmt = open_image(out / r["image"])
        assert fmt == "JPEG"
        cw, ch = x2 - x1, y2 - y1
        expect = (STORE, int(STORE * ch / cw)) if cw <= ch else (int(STORE * cw / ch), STORE)
        assert stored.size == expect, key
        assert min(stored.size) == STORE
        ref = resize_shorter(bbox_crop(load_rgb(src / "CUB_200_2011" / "images" / f"{key}.jpg"), box), STORE)
        diff = np.abs(np.asarray(stored.convert("RGB"), dtype=float) - np.asarray(ref, dtype=float))
        assert diff.mean() < 4.0, key
    s = m["source"]
    assert s["kind"] == "cub" and s["store_size"] == STORE and s["crop"] == "bbox-1.5x"
    assert s["captions_per_image"] == 10 and s["fewer_captions"]["count"] == 0
    assert s["class_ids"] == {"train": "train/class_info.pickle", "test": "test/class_info.pickle"}
    assert s["vocab"].startswith("built") and s["repaired_crlf"] == [] and s["src"] == str(src.resolve())
    assert m["captions_per_image"] == {"min": 10, "max": 10}


def test_cub_serves_through_caption_dataset(tmp_path):
    out = cub(make_cub(tmp_path), tmp_path / "cub")
    ds = CaptionDataset(out, "train", image_sizes=(64,))
    assert len(ds) == 4 and set(ds.keys) == set(CUB_SPLITS["train"])
    item = ds[1]
    assert item["images"][0].shape == (3, 64, 64)
    assert -1.0 <= float(item["images"][0].min()) and float(item["images"][0].max()) <= 1.0
    assert item["caption"].shape == (18,) and item["cap_len"] == 8  # "a small bird N has feature number j"
    assert item["class_id"] == int(item["key"][:3])
    test = CaptionDataset(out, "test", image_sizes=(32, 64))
    assert [t.shape for t in test[0]["images"]] == [(3, 32, 32), (3, 64, 64)]


def test_cub_class_ids_derived_when_class_info_missing(tmp_path):
    src = make_cub(tmp_path, class_info="missing")
    assert "class directory number" in check_layout("cub", src)["class_ids"]["train"]
    out = cub(src, tmp_path / "cub")
    recs = records_by_key(out)
    assert {k: r["class_id"] for k, r in recs.items()} == {k: int(k[:3]) for k in CUB_BOXES}
    assert "class directory number" in read_manifest(out)["source"]["class_ids"]["test"]


def test_cub_captions_per_image_and_fewer_captions(tmp_path, caplog):
    src = make_cub(tmp_path)
    short = CUB_SPLITS["train"][2]
    (src / "text" / f"{short}.txt").write_text("\n".join(caption_lines("x", 3)) + "\n")
    with caplog.at_level(logging.WARNING, logger="t2i_lib"):
        out = cub(src, tmp_path / "cub")
    recs = records_by_key(out)
    assert len(recs[short]["captions"]) == 3 and len(recs[CUB_SPLITS["train"][0]]["captions"]) == 10
    assert read_manifest(out)["source"]["fewer_captions"] == {"count": 1, "examples": [short]}
    assert any("fewer than the expected 10" in r.getMessage() and short in r.getMessage() for r in caplog.records)
    out5 = cub(src, tmp_path / "cub5", captions_per_image=5)
    recs5 = records_by_key(out5)
    assert recs5[CUB_SPLITS["test"][0]]["captions"][-1].endswith("number 4.")
    assert read_manifest(out5)["source"]["fewer_captions"]["count"] == 1  # 3 < 5


def test_cub_crlf_captions_with_bom_and_crlf_pickles(tmp_path):
    src = make_cub(tmp_path, line_ending="\r\n")
    key = CUB_SPLITS["test"][1]
    path = src / "text" / f"{key}.txt"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    for rel in ("train/filenames.pickle", "train/class_info.pickle"):
        (src / rel).write_bytes((src / rel).read_bytes().replace(b"\n", b"\r\n"))
    assert sorted(check_layout("cub", src)["repaired_crlf"]) == ["train/class_info.pickle", "train/filenames.pickle"]
    out = cub(src, tmp_path / "cub")
    recs = records_by_key(out)
    assert set(recs) == set(CUB_BOXES)  # no "\r" glued to the keys
    assert recs[key]["captions"][0] == f"A small bird {_tag(key)} has feature number 0."
    assert {r["class_id"] for r in recs.values()} == {1, 2, 3}
    assert sorted(read_manifest(out)["source"]["repaired_crlf"]) == ["train/class_info.pickle",
                                                                      "train/filenames.pickle"]


def test_captions_pickle_vocabulary_is_used(tmp_path):
    src = make_cub(tmp_path)
    words = sorted({w for k in CUB_BOXES for c in caption_lines(_tag(k), 12) for w in tokenize(c)})
    words = [w for w in words if w != "feature"][::-1] + ["albatross", "wing"]  # reversed; one word missing
    ixtoword = {0: "<end>", **{i + 1: w for i, w in enumerate(words)}}
    wordtoix = {w: i for i, w in ixtoword.items()}
    path = tmp_path / "captions.pickle"
    path.write_bytes(pickle.dumps([[[1, 2]], [[3]], ixtoword, wordtoix], protocol=2))
    vocab = Vocabulary.from_captions_pickle(path)
    assert vocab.idx_to_word == tuple(ixtoword[i] for i in range(len(ixtoword)))

    out = cub(src, tmp_path / "cub", vocab_from=path)
    m = read_manifest(out)
    assert m["vocab"]["hash"] == vocab.hash and m["vocab"]["size"] == len(ixtoword)
    assert str(path) in m["source"]["vocab"]
    assert m["out_of_vocabulary"]["distinct"] == 1 and m["out_of_vocabulary"]["examples"] == ["feature"]
    key = CUB_SPLITS["train"][0]
    rec = records_by_key(out)[key]
    expected = [wordtoix[w] for w in tokenize(rec["captions"][0]) if w != "feature"]
    assert rec["tokens"][0] == expected

    # "auto" finds <src>/captions.pickle; without one it builds
    assert "built" in read_manifest(cub(src, tmp_path / "auto0", vocab_from="auto"))["source"]["vocab"]
    (src / "captions.pickle").write_bytes(path.read_bytes())
    assert check_layout("cub", src)["captions_pickle"] == str(src / "captions.pickle")
    m_auto = read_manifest(cub(src, tmp_path / "auto1", vocab_from="auto"))
    assert m_auto["vocab"]["hash"] == vocab.hash


def test_malicious_captions_pickle_is_refused(tmp_path):
    src = make_cub(tmp_path)
    marker = tmp_path / "pwned"
    path = tmp_path / "captions.pickle"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(UnsafePickleError, match="captions.pickle"):
        cub(src, tmp_path / "cub", vocab_from=path, on_bad="skip")
    assert not marker.exists() and not (tmp_path / "cub").exists()


def test_overwrite_and_no_partial_output(tmp_path):
    src = make_cub(tmp_path)
    out = cub(src, tmp_path / "cub")
    with pytest.raises(FileExistsError):
        cub(src, out)
    cub(src, out, overwrite=True, captions_per_image=2)
    assert read_manifest(out)["captions_per_image"] == {"min": 2, "max": 2}
    (src / "CUB_200_2011" / "images" / f"{CUB_SPLITS['test'][1]}.jpg").write_bytes(b"")
    with pytest.raises(BadImageError):
        cub(src, tmp_path / "failed")
    assert not (tmp_path / "failed").exists()
    assert not list(tmp_path.glob("failed.partial-*"))


def test_arguments_are_checked(tmp_path):
    src = make_cub(tmp_path)
    with pytest.raises(ValueError, match="on_bad"):
        cub(src, tmp_path / "o", on_bad="ignore")
    with pytest.raises(ValueError, match="kind"):
        check_layout("imagenet", src)


# ------------------------------------------------------------------------------------------------------------
# COCO
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["merged", "split"])
def test_prepare_coco_both_image_layouts(tmp_path, layout):
    src = make_coco(tmp_path, layout)
    info = check_layout("coco", src)
    assert info["image_layout"] == layout and info["splits"] == {"train": 3, "test": 2}
    out = prepare_coco(src, tmp_path / "coco-canonical", store_size=STORE, progress=False)
    m = read_manifest(out)
    recs = records_by_key(out)
    assert m["splits"] == {"train": 3, "test": 2}
    keys = COCO_SPLITS["train"] + COCO_SPLITS["test"]
    assert [recs[k]["class_id"] for k in keys] == list(range(5))  # unique, train then test
    assert m["num_classes"] == 5
    assert all(len(r["captions"]) == 5 for r in recs.values())  # first 5 of 6
    for r in recs.values():
        stored, fmt = open_image(out / r["image"])
        assert fmt == "JPEG" and stored.size == (int(STORE * W / H), STORE)  # no crop: 40x30 -> 21x16
    s = m["source"]
    assert s["kind"] == "coco" and s["crop"] == "none" and s["image_layout"] == layout
    assert s["captions_per_image"] == 5 and "index" in s["class_ids"]["train"]
    ds = CaptionDataset(out, "test", image_sizes=(64,))
    assert len(ds) == 2 and ds[0]["images"][0].shape == (3, 64, 64)


def test_coco_images_missing_is_a_layout_error(tmp_path):
    src = make_coco(tmp_path, "merged")
    for p in (src / "images").glob("*.jpg"):
        p.rename(src / "images" / ("x" + p.name))
    with pytest.raises(LayoutError, match=r"COCO images not found in images/<key>.jpg nor "
                                          r"images/train2014\|val2014/<key>.jpg"):
        check_layout("coco", src)


def test_coco_text_zips_not_unzipped(tmp_path):
    src = make_coco(tmp_path)
    shutil.rmtree(src / "text")
    (src / "train2014-text.zip").write_bytes(b"PK")
    (src / "val2014-text.zip").write_bytes(b"PK")
    with pytest.raises(LayoutError, match="text/ is missing: unzip train2014-text.zip and val2014-text.zip"):
        prepare_coco(src, tmp_path / "coco-canonical", progress=False)


# ------------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------------
BAD_KEY = CUB_SPLITS["train"][1]


def _img(src: Path, key: str = BAD_KEY) -> Path:
    return src / "CUB_200_2011" / "images" / f"{key}.jpg"


def _txt(src: Path, key: str = BAD_KEY) -> Path:
    return src / "text" / f"{key}.txt"


def _truncate(src):
    p = _img(src)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def _zero_byte(src):
    _img(src).write_bytes(b"")
    return _img(src)


def _caption_empty(src):
    _txt(src).write_bytes(b"")
    return _txt(src)


def _caption_punctuation(src):
    _txt(src).write_text("...\n\n!!! ?\n-- ,\n")
    return _txt(src)


def _caption_not_utf8(src):
    _txt(src).write_bytes(b"a bird\n\xff\xfe bad bytes\n")
    return _txt(src)


def _caption_missing(src):
    _txt(src).unlink()
    return _txt(src)


def _image_missing(src):
    _img(src).unlink()
    return _img(src)  # the expected location


def _bbox_outside(src):
    box_file = src / "CUB_200_2011" / "bounding_boxes.txt"
    lines = box_file.read_text().splitlines()
    lines[1] = "2 90.0 60.0 4.0 4.0"  # BAD_KEY is image 2; the box lies beyond the 40x30 image
    box_file.write_text("\n".join(lines) + "\n")
    return _img(src)


def _bbox_no_area(src):
    box_file = src / "CUB_200_2011" / "bounding_boxes.txt"
    lines = box_file.read_text().splitlines()
    lines[1] = "2 10.0 10.0 0.0 5.0"
    box_file.write_text("\n".join(lines) + "\n")
    return _img(src)


def _bbox_missing(src):
    box_file = src / "CUB_200_2011" / "bounding_boxes.txt"
    lines = box_file.read_text().splitlines()
    box_file.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    return src / "CUB_200_2011" / "images.txt"


BAD_CASES = {
    # name: (damage function, error class, text the message must contain)
    "truncated-jpeg": (_truncate, BadImageError, "truncated"),
    "zero-byte-image": (_zero_byte, BadImageError, "zero-byte"),
    "caption-empty": (_caption_empty, CaptionFileError, "empty file"),
    "caption-punctuation-only": (_caption_punctuation, CaptionFileError, "no usable caption"),
    "caption-not-utf8": (_caption_not_utf8, CaptionFileError, "byte 0xff at offset 7"),
    "caption-missing": (_caption_missing, MissingKeyError, "no caption file"),
    "image-missing": (_image_missing, MissingKeyError, "has no image"),
    "bbox-outside-image": (_bbox_outside, BadImageError, "lies outside the 40x30 image"),
    "bbox-no-area": (_bbox_no_area, BadImageError, "has no area"),
    "bbox-missing": (_bbox_missing, MissingKeyError, "has no bounding box"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_naming_the_file_or_is_skipped(tmp_path, case):
    damage, error, text = BAD_CASES[case]
    src = make_cub(tmp_path)
    named = damage(src)
    with pytest.raises(error) as exc_info:
        cub(src, tmp_path / "raise")
    msg = str(exc_info.value)
    assert text in msg and str(named) in msg
    if error is MissingKeyError:
        assert BAD_KEY in msg and str(src / "train" / "filenames.pickle") in msg
    assert not (tmp_path / "raise").exists()

    out = cub(src, tmp_path / "skip", on_bad="skip")
    m = read_manifest(out)
    assert m["skipped"]["count"] == 1 and m["skipped"]["items"][0]["key"] == BAD_KEY
    assert text in m["skipped"]["items"][0]["reason"]
    assert BAD_KEY not in records_by_key(out) and m["n_images"] == 5
    assert m["source"]["on_bad"] == "skip"


def test_read_caption_file_offsets(tmp_path):
    p = tmp_path / "c.txt"
    p.write_bytes(b"\xef\xbb\xbfgood line\nbad \xc3( here\n")
    with pytest.raises(CaptionFileError, match=r"c.txt: not valid UTF-8: byte 0xc3 at offset 17"):
        read_caption_file(p, 10)
    p.write_bytes(b"\xef\xbb\xbfOne, two!\r\n\r\n???\r\nThree four\r\n")
    caps, n = read_caption_file(p, 10)
    assert caps == [("One, two!", ["one", "two"]), ("Three four", ["three", "four"])] and n == 2


def test_duplicated_key_within_and_across_splits(tmp_path):
    src = make_cub(tmp_path)
    dup_within, dup_across = CUB_SPLITS["train"][0], CUB_SPLITS["train"][3]
    train = CUB_SPLITS["train"] + [dup_within]
    test = CUB_SPLITS["test"] + [dup_across]
    for split, keys in (("train", train), ("test", test)):
        (src / split / "filenames.pickle").write_bytes(pickle.dumps(keys, protocol=0))
        (src / split / "class_info.pickle").write_bytes(py2_int64_list_p0([int(k[:3]) for k in keys]))
    assert check_layout("cub", src)["duplicated_keys"] == [dup_within, dup_across]
    with pytest.raises(DataError, match="listed twice") as exc_info:
        cub(src, tmp_path / "raise")
    assert str(src / "train" / "filenames.pickle") in str(exc_info.value) and dup_within in str(exc_info.value)
    out = cub(src, tmp_path / "skip", on_bad="skip")
    m = read_manifest(out)
    recs = records_by_key(out)
    assert m["skipped"]["count"] == 2 and m["n_images"] == 6
    assert recs[dup_within]["split"] == "train" and recs[dup_across]["split"] == "train"  # first listing kept
    assert all("listed twice" in it["reason"] for it in m["skipped"]["items"])


def test_non_rgb_and_16bit_images_are_converted(tmp_path):
    """Grey, palette, RGBA and 16-bit images are not bad: they become 8-bit RGB with the right values."""
    src = make_cub(tmp_path)
    keys = CUB_SPLITS["train"] + CUB_SPLITS["test"]
    # written under the .jpg names of the layout; PIL recognises the content
    Image.fromarray(np.full((H, W), 32768, dtype=np.uint16)).save(_img(src, keys[0]), format="PNG")
    Image.fromarray(np.full((H, W), 65535, dtype=np.uint16)).save(_img(src, keys[1]), format="PNG")
    Image.new("L", (W, H), 77).save(_img(src, keys[2]), format="JPEG", quality=95)
    pal = Image.new("P", (W, H), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.save(_img(src, keys[3]), format="PNG")
    Image.new("RGBA", (W, H), (10, 20, 200, 255)).save(_img(src, keys[4]), format="PNG")
    Image.new("RGBA", (W, H), (10, 20, 200, 0)).save(_img(src, keys[5]), format="PNG")
    assert open_image(_img(src, keys[0]))[0].mode == "I;16"
    out = cub(src, tmp_path / "cub")
    recs = records_by_key(out)
    expected = [(128, 128, 128), (255, 255, 255), (77, 77, 77), (200, 100, 50), (10, 20, 200), (255, 255, 255)]
    for key, rgb in zip(keys, expected):
        arr = np.asarray(open_image(out / recs[key]["image"])[0])
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
        assert np.abs(arr.reshape(-1, 3).mean(0) - np.array(rgb)).max() < 2.5, (key, arr.reshape(-1, 3).mean(0))
    assert read_manifest(out)["skipped"]["count"] == 0


def test_16bit_values_are_scaled_not_clipped(tmp_path):
    p = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 32768, 65535, 257]], dtype=np.uint16)).save(p)
    arr = np.asarray(load_rgb(p))
    assert arr.dtype == np.uint8 and arr[0, :, 0].tolist() == [0, 128, 255, 1]
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


# ------------------------------------------------------------------------------------------------------------
# Layout errors: always raised, also with on_bad="skip"
# ------------------------------------------------------------------------------------------------------------
def test_text_dir_missing_with_zip_says_unzip(tmp_path):
    src = make_cub(tmp_path)
    (src / "text").rename(src / "text_moved")
    (src / "text.zip").write_bytes(b"PK")
    with pytest.raises(LayoutError, match=r"text/ is missing: unzip text\.zip into .*birds/text"):
        cub(src, tmp_path / "cub", on_bad="skip")
    (src / "text.zip").unlink()
    with pytest.raises(LayoutError, match="text/ is missing"):
        check_layout("cub", src)
    (src / "text").mkdir()
    (src / "text_moved").rename(src / "text" / "text")  # unzipped one level too deep
    with pytest.raises(LayoutError, match="one level too deep"):
        check_layout("cub", src)
    assert not (tmp_path / "cub").exists()


def test_malicious_filenames_pickle_is_refused_even_in_skip_mode(tmp_path):
    src = make_cub(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    (src / "test" / "filenames.pickle").write_bytes(pickle.dumps(Evil(), protocol=0))
    with pytest.raises(UnsafePickleError) as exc_info:
        cub(src, tmp_path / "cub", on_bad="skip")
    assert str(src / "test" / "filenames.pickle") in str(exc_info.value)
    assert not marker.exists() and not (tmp_path / "cub").exists()


def test_missing_split_file_and_misaligned_class_info(tmp_path):
    src = make_cub(tmp_path)
    (src / "train" / "class_info.pickle").write_bytes(py2_int64_list_p0([1, 1, 2]))
    with pytest.raises(LayoutError) as exc_info:
        check_layout("cub", src)
    msg = str(exc_info.value)
    assert "train/class_info.pickle has 3 class ids" in msg and str(src / "train" / "filenames.pickle") in msg
    (src / "train" / "filenames.pickle").unlink()
    with pytest.raises(LayoutError, match="train/filenames.pickle not found"):
        cub(src, tmp_path / "cub", on_bad="skip")


def test_filenames_must_be_a_list_of_str(tmp_path):
    src = make_cub(tmp_path)
    (src / "test" / "filenames.pickle").write_bytes(pickle.dumps(["003.Sooty_Albatross/a", 7], protocol=0))
    with pytest.raises(LayoutError, match=r"test/filenames.pickle: expected a list of str, element 1 is int"):
        check_layout("cub", src)
    (src / "test" / "filenames.pickle").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(LayoutError, match="expected a list of keys"):
        check_layout("cub", src)
    (src / "test" / "filenames.pickle").write_bytes(b"\x00garbage")
    with pytest.raises(LayoutError, match=r"cannot read pickle .*test/filenames.pickle"):
        check_layout("cub", src)


def test_cub_archive_not_extracted(tmp_path):
    src = make_cub(tmp_path)
    (src / "CUB_200_2011").rename(tmp_path / "elsewhere")
    (src / "CUB_200_2011.tgz").write_bytes(b"\x1f\x8b")
    with pytest.raises(LayoutError, match="CUB_200_2011/ is missing: extract CUB_200_2011.tgz"):
        check_layout("cub", src)
