"""Oxford-102 flowers (StackGAN/AttnGAN layout) and Karpathy-split JSON adapters on tiny fixture trees.

The fixtures mimic the released layouts: ``jpg/image_NNNNN.jpg``, ``text_c10/class_NNNNN/image_NNNNN.txt``,
Python-2 protocol-0 ``filenames.pickle`` / ``class_info.pickle`` for flowers; ``dataset_<name>.json`` beside an
image folder for Karpathy's splits.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest

from t2i_lib.data.attngan import check_layout, prepare_coco, prepare_flowers
from t2i_lib.data.dataset import CaptionDataset, read_manifest, read_records
from t2i_lib.data.errors import (BadImageError, CaptionFileError, DataError, LayoutError, MissingKeyError,
                                 UnsafePickleError)
from t2i_lib.data.karpathy import check_karpathy, find_karpathy, prepare_karpathy
from t2i_lib.data.text import Vocabulary, tokenize

from test_attngan import COCO_SPLITS, gradient_image, make_coco
from test_safe_pickle import py2_int64_list_p0

STORE = 16
# key -> class; the released flowers pickles list "jpg/image_NNNNN" keys (other key forms are accepted too)
FLOWER_CLASSES = {"image_00001": 77, "image_00002": 77, "image_00003": 5, "image_00004": 5,
                  "image_00005": 12, "image_00006": 12}
FLOWER_SPLITS = {"train": ["jpg/image_00001", "jpg/image_00002", "jpg/image_00003", "jpg/image_00004"],
                 "test": ["jpg/image_00005", "jpg/image_00006"]}
BAD_FLOWER = "jpg/image_00002"


def flower_captions(stem: str, n: int = 10) -> list[str]:
    caps = [f"This flower {stem[-2:]} has petals of kind {j}." for j in range(n)]
    return caps[:1] + ["", "!!"] + caps[1:]


def make_flowers(root: Path, class_info: bool = True, key_form: str = "jpg") -> Path:
    src = root / "flowers"
    for i, (stem, cid) in enumerate(FLOWER_CLASSES.items()):
        img = src / "jpg" / f"{stem}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        gradient_image(i).save(img, quality=95)
        txt = src / "text_c10" / f"class_{cid:05d}" / f"{stem}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("\n".join(flower_captions(stem)) + "\n")
    for split, keys in FLOWER_SPLITS.items():
        (src / split).mkdir(parents=True)
        keys = [{"jpg": k, "class": f"class_{FLOWER_CLASSES[k[4:]]:05d}/{k[4:]}", "bare": k[4:]}[key_form]
                for k in keys]
        (src / split / "filenames.pickle").write_bytes(pickle.dumps(keys, protocol=0))
        if class_info:
            ids = [FLOWER_CLASSES[k.rsplit("/", 1)[-1]] for k in keys]
            (src / split / "class_info.pickle").write_bytes(py2_int64_list_p0(ids))
    return src


def flowers(src: Path, out: Path, **kw) -> Path:
    kw.setdefault("store_size", STORE)
    kw.setdefault("progress", False)
    return prepare_flowers(src, out, **kw)


def records_by_key(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in read_records(out)}


# ------------------------------------------------------------------------------------------------------------
# Flowers
# ------------------------------------------------------------------------------------------------------------
def test_prepare_flowers_end_to_end(tmp_path):
    src = make_flowers(tmp_path)
    info = check_layout("flowers", src)
    assert info["splits"] == {"train": 4, "test": 2} and info["duplicated_keys"] == []
    assert info["class_ids"]["test"] == "test/class_info.pickle"
    out = flowers(src, tmp_path / "fl")
    m = read_manifest(out)
    recs = records_by_key(out)
    assert m["name"] == "flowers"
    assert m["splits"] == {"train": 4, "test": 2} and m["skipped"]["count"] == 0
    assert {k: r["split"] for k, r in recs.items()} == {k: s for s, ks in FLOWER_SPLITS.items() for k in ks}
    assert {k: r["class_id"] for k, r in recs.items()} == {f"jpg/{s}": c for s, c in FLOWER_CLASSES.items()}
    vocab = Vocabulary.from_dict(json.loads((out / "vocab.json").read_text()))
    for key, r in recs.items():
        stem = key[4:]
        assert r["captions"] == [f"This flower {stem[-2:]} has petals of kind {j}." for j in range(10)]
        assert [vocab.decode(t) for t in r["tokens"]] == [" ".join(tokenize(c)) for c in r["captions"]]
    s = m["source"]
    assert s["kind"] == "flowers" and s["crop"] == "none" and s["captions_per_image"] == 10
    ds = CaptionDataset(out, "train", image_sizes=(32,))
    assert len(ds) == 4 and ds[0]["images"][0].shape == (3, 32, 32)


@pytest.mark.parametrize("key_form", ["class", "bare"])
def test_flowers_key_forms_and_derived_class_ids(tmp_path, key_form):
    src = make_flowers(tmp_path, class_info=False, key_form=key_form)
    info = check_layout("flowers", src)
    assert "class_NNNNN folder" in info["class_ids"]["train"]
    recs = records_by_key(flowers(src, tmp_path / "fl"))
    assert {k.rsplit("/", 1)[-1]: r["class_id"] for k, r in recs.items()} == FLOWER_CLASSES


def test_flowers_crlf_pickles_and_vocab_import(tmp_path):
    src = make_flowers(tmp_path)
    for rel in ("train/filenames.pickle", "test/class_info.pickle"):
        (src / rel).write_bytes((src / rel).read_bytes().replace(b"\n", b"\r\n"))
    assert sorted(check_layout("flowers", src)["repaired_crlf"]) == ["test/class_info.pickle",
                                                                    "train/filenames.pickle"]
    words = sorted({w for st in FLOWER_CLASSES for c in flower_captions(st) for w in tokenize(c)} - {"petals"})
    ixtoword = {0: "<end>", **{i + 1: w for i, w in enumerate(words)}}
    (src / "captions.pickle").write_bytes(pickle.dumps([[], [], ixtoword, {w: i for i, w in ixtoword.items()}],
                                                       protocol=2))
    out = flowers(src, tmp_path / "fl", vocab_from="auto")
    m = read_manifest(out)
    assert "captions.pickle" in m["source"]["vocab"] and m["out_of_vocabulary"]["examples"] == ["petals"]
    assert len(m["source"]["repaired_crlf"]) == 2


def _fl_img(src):
    return src / "jpg" / "image_00002.jpg"


def _fl_txt(src):
    return src / "text_c10" / "class_00077" / "image_00002.txt"


def _fl_truncate(src):
    p = _fl_img(src)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def _fl_image_missing(src):
    _fl_img(src).unlink()
    return _fl_img(src)


def _fl_caption_missing(src):
    _fl_txt(src).unlink()
    return _fl_txt(src)


def _fl_caption_empty(src):
    _fl_txt(src).write_bytes(b"")
    return _fl_txt(src)


def _fl_caption_not_utf8(src):
    _fl_txt(src).write_bytes(b"a flower\n\xff bad\n")
    return _fl_txt(src)


def _fl_caption_punctuation(src):
    _fl_txt(src).write_text("...\n\n!!! ?\n")
    return _fl_txt(src)


def _fl_zero_byte(src):
    _fl_img(src).write_bytes(b"")
    return _fl_img(src)


FLOWER_BAD = {
    "zero-byte-image": (_fl_zero_byte, BadImageError, "zero-byte"),
    "caption-punctuation-only": (_fl_caption_punctuation, CaptionFileError, "no usable caption"),
    "truncated-jpeg": (_fl_truncate, BadImageError, "truncated"),
    "image-missing": (_fl_image_missing, MissingKeyError, "has no image"),
    "caption-missing": (_fl_caption_missing, MissingKeyError, "no caption file"),
    "caption-empty": (_fl_caption_empty, CaptionFileError, "empty file"),
    "caption-not-utf8": (_fl_caption_not_utf8, CaptionFileError, "byte 0xff at offset 9"),
}


@pytest.mark.parametrize("case", list(FLOWER_BAD))
def test_flowers_bad_input_raises_naming_the_file_or_is_skipped(tmp_path, case, caplog):
    damage, error, text = FLOWER_BAD[case]
    src = make_flowers(tmp_path)
    named = damage(src)
    with pytest.raises(error) as exc_info:
        flowers(src, tmp_path / "raise")
    assert text in str(exc_info.value) and str(named) in str(exc_info.value)
    assert not (tmp_path / "raise").exists()
    with caplog.at_level(logging.WARNING, logger="t2i_lib"):
        out = flowers(src, tmp_path / "skip", on_bad="skip")
    m = read_manifest(out)
    assert m["skipped"]["count"] == 1 and m["skipped"]["items"][0]["key"] == BAD_FLOWER
    assert text in m["skipped"]["items"][0]["reason"] and m["n_images"] == 5
    assert any("skipped 1 of 6 listed images" in r.getMessage() for r in caplog.records)


def test_flowers_duplicate_keys(tmp_path):
    src = make_flowers(tmp_path)
    keys = FLOWER_SPLITS["test"] + [FLOWER_SPLITS["train"][0]]
    (src / "test" / "filenames.pickle").write_bytes(pickle.dumps(keys, protocol=0))
    (src / "test" / "class_info.pickle").write_bytes(py2_int64_list_p0([12, 12, 77]))
    assert check_layout("flowers", src)["duplicated_keys"] == [FLOWER_SPLITS["train"][0]]
    with pytest.raises(DataError, match="listed twice") as exc_info:
        flowers(src, tmp_path / "raise")
    assert str(src / "test" / "filenames.pickle") in str(exc_info.value)
    m = read_manifest(flowers(src, tmp_path / "skip", on_bad="skip"))
    assert m["skipped"]["count"] == 1 and m["n_images"] == 6


def test_flowers_layout_errors(tmp_path):
    src = make_flowers(tmp_path)
    (src / "test" / "filenames.pickle").write_bytes(b"\x00garbage")
    with pytest.raises(LayoutError, match=r"cannot read pickle .*test/filenames.pickle"):
        flowers(src, tmp_path / "o", on_bad="skip")
    marker = tmp_path / "pwned"
    (src / "test" / "filenames.pickle").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(UnsafePickleError, match="test/filenames.pickle"):
        check_layout("flowers", src)
    assert not marker.exists()
    (src / "test" / "filenames.pickle").write_bytes(pickle.dumps(FLOWER_SPLITS["test"], protocol=0))
    (src / "train" / "class_info.pickle").write_bytes(py2_int64_list_p0([1, 2]))
    with pytest.raises(LayoutError, match="train/class_info.pickle has 2 class ids"):
        check_layout("flowers", src)
    (src / "train" / "class_info.pickle").unlink()
    (src / "text_c10").rename(src / "moved")
    (src / "cvpr2016_flowers.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(LayoutError, match=r"text_c10/ is missing: .*\(extract cvpr2016_flowers.tar.gz and move"):
        check_layout("flowers", src)
    (src / "text_c10").mkdir()
    (src / "moved").rename(src / "text_c10" / "text_c10")
    with pytest.raises(LayoutError, match="one level too deep"):
        check_layout("flowers", src)
    (src / "jpg").rename(src / "jpg_moved")
    with pytest.raises(LayoutError, match="jpg/ is missing"):
        check_layout("flowers", src)
    (src / "jpg_moved").rename(src / "jpg")
    (src / "text_c10" / "text_c10").rename(src / "tc")
    (src / "text_c10").rmdir()
    (src / "tc").rename(src / "text_c10")
    (src / "train" / "filenames.pickle").unlink()
    with pytest.raises(LayoutError, match="train/filenames.pickle not found"):
        check_layout("flowers", src)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------------------
# Karpathy JSON
# ------------------------------------------------------------------------------------------------------------
F30K = [("1000092795.jpg", "train"), ("10002456.jpg", "train"), ("1000268201.jpg", "restval"),
        ("1000344755.jpg", "val"), ("1000366164.jpg", "test"), ("1000523639.jpg", "test")]


def f30k_sentences(stem: str, n: int = 5) -> list[dict]:
    return [{"raw": f"A person {stem[-3:]} does thing {j}.", "tokens": ["ignored"], "imgid": 0, "sentid": j}
            for j in range(n)]


def make_flickr30k(root: Path, entries=F30K, n_sent: int = 5) -> tuple[Path, Path]:
    src = root / "flickr30k"
    imgs = src / "flickr30k-images"
    imgs.mkdir(parents=True)
    images = []
    for i, (name, split) in enumerate(entries):
        gradient_image(i).save(imgs / name, quality=95)
        images.append({"filename": name, "imgid": i, "split": split, "sentids": list(range(n_sent)),
                       "sentences": f30k_sentences(Path(name).stem, n_sent)})
    js = src / "dataset_flickr30k.json"
    js.write_text(json.dumps({"dataset": "flickr30k", "images": images}))
    return js, imgs


def karpathy(js: Path, imgs: Path, out: Path, **kw) -> Path:
    kw.setdefault("store_size", STORE)
    kw.setdefault("progress", False)
    return prepare_karpathy(js, imgs, out, **kw)


def test_prepare_karpathy_flickr30k_splits(tmp_path):
    js, imgs = make_flickr30k(tmp_path)
    assert find_karpathy(js.parent, "flickr30k") == (js, imgs)
    info = check_karpathy(js, imgs)
    assert info["json_splits"] == {"train": 2, "restval": 1, "val": 1, "test": 2}
    assert info["splits"] == {"train": 3, "test": 2} and info["dropped"] == {"val": 1}
    out = karpathy(js, imgs, tmp_path / "f30k")
    m = read_manifest(out)
    recs = records_by_key(out)
    assert m["splits"] == {"train": 3, "test": 2}
    assert {k: r["split"] for k, r in recs.items()} == {"1000092795": "train", "10002456": "train",
                                                         "1000268201": "train", "1000366164": "test",
                                                         "1000523639": "test"}
    assert sorted(r["class_id"] for r in recs.values()) == list(range(5))
    for k, r in recs.items():
        assert r["captions"] == [f"A person {k[-3:]} does thing {j}." for j in range(5)]  # raw, not the tokens
    assert m["name"] == "flickr30k" and m["source"]["kind"] == "karpathy" and m["source"]["dropped"] == {"val": 1}
    assert m["source"]["split_mapping"]["restval"] == "train"
    # configurable: restval dropped, val into test
    recs2 = records_by_key(karpathy(js, imgs, tmp_path / "f30k2", restval="drop", val="test"))
    assert "1000268201" not in recs2 and recs2["1000344755"]["split"] == "test"
    with pytest.raises(ValueError, match="restval"):
        karpathy(js, imgs, tmp_path / "x", restval="test")


def test_flickr8k_json_and_six_sentences(tmp_path):
    entries = [("a_1.jpg", "train"), ("b_2.jpg", "train"), ("c_3.jpg", "test")]
    js, imgs = make_flickr30k(tmp_path, entries, n_sent=6)
    data = json.loads(js.read_text())
    data["dataset"] = "flickr8k"
    data["images"][0]["sentences"] = [{"tokens": ["two", "dogs", "run"]}] + data["images"][0]["sentences"][1:]
    js8 = js.parent / "dataset_flickr8k.json"
    js8.write_text(json.dumps(data))
    out = karpathy(js8, imgs, tmp_path / "f8k")
    recs = records_by_key(out)
    assert len(recs["b_2"]["captions"]) == 5  # first 5 of 6
    assert recs["a_1"]["captions"][0] == "two dogs run"  # tokens joined when "raw" is absent
    assert read_manifest(out)["source"]["json"].endswith("dataset_flickr8k.json")


def test_coco_karpathy_route_gives_the_same_captions_as_the_attngan_route(tmp_path):
    src = make_coco(tmp_path, "split", n_captions=6)
    images = []
    for split, keys in COCO_SPLITS.items():
        for i, key in enumerate(keys):
            lines = (src / "text" / f"{key}.txt").read_text().splitlines()
            images.append({"filepath": "train2014" if split == "train" else "val2014", "filename": f"{key}.jpg",
                           "cocoid": i, "split": "train" if split == "train" else "test",
                           "sentences": [{"raw": line, "tokens": tokenize(line)} for line in lines]})
    js = src / "dataset_coco.json"
    js.write_text(json.dumps({"dataset": "coco", "images": images}))
    a = records_by_key(prepare_coco(src, tmp_path / "attngan", store_size=STORE, progress=False))
    b = records_by_key(karpathy(js, src / "images", tmp_path / "karpathy"))
    assert set(a) == set(b) and len(a) == 5
    for key in a:
        assert a[key]["captions"] == b[key]["captions"] and len(a[key]["captions"]) == 5
        assert a[key]["split"] == b[key]["split"] and a[key]["class_id"] == b[key]["class_id"]
    assert (json.loads((tmp_path / "attngan" / "vocab.json").read_text())
            == json.loads((tmp_path / "karpathy" / "vocab.json").read_text()))
    # AttnGAN's merged image folder works for the JSON route too (filepath ignored when the file is not there)
    for p in list((src / "images").rglob("*.jpg")):
        p.rename(src / "images" / p.name)
    assert len(records_by_key(karpathy(js, src / "images", tmp_path / "merged"))) == 5


BAD_STEM = "10002456"


def _kp_entry(js: Path, fn):
    data = json.loads(js.read_text())
    fn(next(e for e in data["images"] if e["filename"].startswith(BAD_STEM)))
    js.write_text(json.dumps(data))


def _kp_truncate(js, imgs):
    p = imgs / f"{BAD_STEM}.jpg"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return str(p)


def _kp_image_missing(js, imgs):
    (imgs / f"{BAD_STEM}.jpg").unlink()
    return str(imgs / f"{BAD_STEM}.jpg")


def _kp_no_sentences(js, imgs):
    _kp_entry(js, lambda e: e.update(sentences=[]))
    return f"{js} images[1]"


def _kp_punctuation(js, imgs):
    _kp_entry(js, lambda e: e.update(sentences=[{"raw": "..."}, {"raw": ""}]))
    return f"{js} images[1]"


def _kp_lone_surrogate(js, imgs):
    _kp_entry(js, lambda e: e.update(sentences=[{"raw": "a bad \udcff byte"}]))
    return f"{js} images[1]"


KARPATHY_BAD = {
    "truncated-jpeg": (_kp_truncate, BadImageError, "truncated"),
    "image-missing": (_kp_image_missing, MissingKeyError, "has no image"),
    "no-sentences": (_kp_no_sentences, CaptionFileError, "no caption"),
    "punctuation-only": (_kp_punctuation, CaptionFileError, "no usable caption"),
    "not-unicode": (_kp_lone_surrogate, CaptionFileError, "not valid Unicode"),
}


@pytest.mark.parametrize("case", list(KARPATHY_BAD))
def test_karpathy_bad_input_raises_naming_the_file_or_is_skipped(tmp_path, case):
    damage, error, text = KARPATHY_BAD[case]
    js, imgs = make_flickr30k(tmp_path)
    named = damage(js, imgs)
    with pytest.raises(error) as exc_info:
        karpathy(js, imgs, tmp_path / "raise")
    assert text in str(exc_info.value) and named in str(exc_info.value)
    assert not (tmp_path / "raise").exists()
    m = read_manifest(karpathy(js, imgs, tmp_path / "skip", on_bad="skip"))
    assert m["skipped"]["count"] == 1 and m["skipped"]["items"][0]["key"] == BAD_STEM and m["n_images"] == 4


def test_karpathy_duplicates_and_skip_summary_is_short(tmp_path, caplog):
    entries = F30K + [(f"9{i:05d}.jpg", "train") for i in range(30)]
    js, imgs = make_flickr30k(tmp_path, entries)
    data = json.loads(js.read_text())
    data["images"].append(dict(data["images"][0], split="test"))
    js.write_text(json.dumps(data))
    for i in range(30):
        (imgs / f"9{i:05d}.jpg").unlink()
    assert check_karpathy(js, imgs)["duplicated_keys"] == ["1000092795"]
    with pytest.raises(DataError, match=r"listed twice: in .*images\[0\].* and in .*images\[36\]"):
        karpathy(js, imgs, tmp_path / "raise")
    with caplog.at_level(logging.WARNING, logger="t2i_lib"):
        m = read_manifest(karpathy(js, imgs, tmp_path / "skip", on_bad="skip"))
    assert m["skipped"]["count"] == 31 and m["n_images"] == 5
    msgs = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(msgs) == 20  # one line each for the first 20, then a summary
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped 31 of")]
    assert summary and "30 missing image, 1 duplicated key" in summary[0]


@pytest.mark.parametrize("content,text", [
    (b"", "empty file"),
    (b'{"images": [{"filename": "a.jpg"', "not valid JSON"),
    (b'{"images": [{"filename": "a\xff.jpg"}]}', "not valid UTF-8: byte 0xff at offset 27"),
    (b'[1, 2]', "expected a Karpathy split file"),
    (b'{"annotations": []}', "an object with an 'images' list"),
    (b'{"images": [{"filename": "a.jpg", "split": "train"}]}', "field 'sentences' missing"),
    (b'{"images": [{"filename": "a.jpg", "split": "dev", "sentences": []}]}', "split 'dev' is not one of"),
    (b'{"images": [{"filename": "../a.jpg", "split": "train", "sentences": []}]}', "not a plain file name"),
])
def test_karpathy_damaged_json_is_a_layout_error_naming_the_file(tmp_path, content, text):
    js, imgs = make_flickr30k(tmp_path)
    js.write_bytes(content)
    with pytest.raises(LayoutError, match=text) as exc_info:
        karpathy(js, imgs, tmp_path / "o", on_bad="skip")
    assert str(js) in str(exc_info.value) and not (tmp_path / "o").exists()


def test_karpathy_vocabulary_import_and_unsafe_pickle(tmp_path):
    js, imgs = make_flickr30k(tmp_path)
    words = sorted({w for n, _ in F30K for d in f30k_sentences(Path(n).stem) for w in tokenize(d["raw"])} - {"thing"})
    ixtoword = {0: "<end>", **{i + 1: w for i, w in enumerate(words)}}
    (js.parent / "captions.pickle").write_bytes(pickle.dumps([[], [], ixtoword, {w: i for i, w in ixtoword.items()}],
                                                              protocol=2))
    assert check_karpathy(js, imgs)["captions_pickle"] == str(js.parent / "captions.pickle")
    m = read_manifest(karpathy(js, imgs, tmp_path / "v", vocab_from="auto"))
    assert m["vocab"]["size"] == len(ixtoword) and m["out_of_vocabulary"]["examples"] == ["thing"]
    marker = tmp_path / "pwned"
    (js.parent / "captions.pickle").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(UnsafePickleError, match="captions.pickle"):
        karpathy(js, imgs, tmp_path / "u", vocab_from="auto", on_bad="skip")
    assert not marker.exists() and not (tmp_path / "u").exists()


def test_karpathy_missing_files(tmp_path):
    js, imgs = make_flickr30k(tmp_path)
    with pytest.raises(LayoutError, match="image folder .* not found"):
        check_karpathy(js, tmp_path / "nowhere")
    with pytest.raises(LayoutError, match="images not found in"):
        check_karpathy(js, tmp_path)
    with pytest.raises(LayoutError, match="dataset_flickr8k.json not found.*found dataset_flickr30k.json"):
        find_karpathy(js.parent, "flickr8k")
    js.unlink()
    with pytest.raises(LayoutError, match="Karpathy split file not found"):
        check_karpathy(js, imgs)


# ------------------------------------------------------------------------------------------------------------
# Experiments, paper plan and command line
# ------------------------------------------------------------------------------------------------------------
def test_flowers_and_flickr30k_experiments_resolve():
    from t2i_lib.config import EXPERIMENTS, resolve

    for fam in ("ssagan", "style_attngan", "attngan"):
        for var in ("baseline", "f2r", "f2f", "both"):
            assert f"{fam}_{var}_flowers" in EXPERIMENTS and f"{fam}_{var}_flickr30k" in EXPERIMENTS
    fl, cub = resolve("style_attngan_both_flowers", "paper"), resolve("style_attngan_both_cub", "paper")
    assert fl.data.dataset == "flowers" and fl.train.epochs == cub.train.epochs and fl.data.n_captions == 10
    assert fl.train.losses.damsm == cub.train.losses.damsm
    f30, coco = resolve("style_attngan_both_flickr30k", "paper"), resolve("style_attngan_both_coco", "paper")
    assert f30.data.dataset == "flickr30k" and f30.data.n_captions == 5
    assert f30.train.epochs == coco.train.epochs == 120 and f30.train.losses.damsm == coco.train.losses.damsm == 50.0


def test_paper_plan_validates_flowers_and_flickr30k(tmp_path, monkeypatch):
    from t2i_lib.plan import format_plan, paper_plan

    monkeypatch.setenv("T2I_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="FLOWERS data not found"):
        paper_plan("paper", "flowers")
    with pytest.raises(DataError, match="FLICKR30K data not found .*dataset_flickr30k.json beside its image folder"):
        paper_plan("paper", "flickr30k")
    make_flowers(tmp_path / "data")
    plan = paper_plan("paper", "flowers")
    assert plan["n_train"] == 4 and plan["n_test"] == 2 and plan["data"]["kind"] == "flowers"
    assert "train ssagan_both_flowers" in [r["what"] for r in plan["runs"]]
    make_flickr30k(tmp_path / "data")
    plan = paper_plan("paper", "flickr30k")
    assert plan["n_train"] == 3 and plan["n_test"] == 2
    text = format_plan(plan)
    assert "on FLICKR30K" in text and "dropped {'val': 1}" in text and "GPU hours" in text
    assert paper_plan("paper", "flickr30k", check=False)["n_train"] == 29000


def test_cli_prepare_flowers_and_karpathy(tmp_path, capsys):
    from t2i_lib.cli import main

    src = make_flowers(tmp_path)
    _fl_image_missing(src)
    assert main(["prepare", "flowers", "--src", str(src), "--out", str(tmp_path / "a"), "--store-size", "16",
                 "--no-progress"]) == 2
    assert "has no image" in capsys.readouterr().err
    assert main(["prepare", "flowers", "--src", str(src), "--out", str(tmp_path / "a"), "--store-size", "16",
                 "--skip-bad", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "5 images" in out and "skipped 1 " in out
    js, imgs = make_flickr30k(tmp_path)
    assert main(["prepare", "karpathy", "--json", str(js), "--images", str(imgs), "--out", str(tmp_path / "k"),
                 "--store-size", "16", "--val", "test", "--no-progress"]) == 0
    assert read_manifest(tmp_path / "k")["splits"] == {"train": 3, "test": 3}


def test_ensure_dataset_prepares_flowers_and_flickr30k(tmp_path, monkeypatch):
    from t2i_lib.config import resolve
    from t2i_lib.data.prepare import dataset_root, ensure_dataset

    monkeypatch.setenv("T2I_DATA_DIR", str(tmp_path / "data"))
    make_flowers(tmp_path / "data")
    make_flickr30k(tmp_path / "data")
    for exp, n in (("ssagan_baseline_flowers", 6), ("ssagan_baseline_flickr30k", 5)):
        cfg = resolve(exp, "smoke", {"data.stored_size": 64})
        root = ensure_dataset(cfg, progress=False)
        assert root == dataset_root(cfg) == tmp_path / "data" / "canonical" / f"{cfg.data.dataset}-64px"
        m = read_manifest(root)
        assert m["n_images"] == n and m["source"]["vocab"].startswith("built")
        assert ensure_dataset(cfg, progress=False) == root  # reused
