import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from t2i_lib.data import dataset as D
from t2i_lib.data.errors import BadImageError, DataError, ManifestError

from conftest import write_tiny_dataset


def test_writer_layout_and_manifest(tiny_dataset):
    m = D.read_manifest(tiny_dataset)
    assert m["format"] == "t2i-canonical" and m["n_images"] == 6 and m["splits"] == {"train": 4, "test": 2}
    assert m["captions_per_image"] == {"min": 1, "max": 4} and m["n_captions"] == 15
    recs = D.read_records(tiny_dataset)
    assert [r["key"] for r in recs] == [f"img_{i:02d}" for i in range(6)]
    assert all((tiny_dataset / r["image"]).is_file() for r in recs)
    vocab = D.load_vocab(tiny_dataset)
    assert vocab.decode(recs[1]["tokens"][0]) == " ".join(recs[1]["captions"][0].split())
    assert not list(tiny_dataset.parent.glob("*.partial-*"))  # temp dir renamed into place


def test_writer_refuses_existing_and_duplicates(tmp_path, tiny_dataset):
    with pytest.raises(FileExistsError, match="--force"):
        D.CanonicalWriter(tiny_dataset, "tiny")
    w = D.CanonicalWriter(tmp_path / "dup", "dup")
    img = np.zeros((8, 8, 3), np.uint8)
    w.add("a", "train", 0, img, [("a cat", ["a", "cat"])])
    with pytest.raises(DataError, match="duplicated key 'a'"):
        w.add("a", "train", 0, img, [("a dog", ["a", "dog"])])
    with pytest.raises(DataError, match="no usable caption"):
        w.add("b", "train", 0, img, [])
    with pytest.raises(DataError, match="unsafe key"):
        w.add("../evil", "train", 0, img, [("x", ["x"])])
    w.abort()
    assert not (tmp_path / "dup").exists()


def test_one_caption_per_item_shapes_and_values(tiny_dataset):
    ds = D.CaptionDataset(tiny_dataset, "train", image_sizes=(16, 32), max_words=18)
    assert len(ds) == 4
    it = ds[0]
    assert [t.shape for t in it["images"]] == [(3, 16, 16), (3, 32, 32)]
    assert all(t.min() >= -1 and t.max() <= 1 for t in it["images"])
    assert it["caption"].shape == (18,) and it["caption"].dtype == torch.int64
    assert it["key"] == "img_00" and it["class_id"] == 0 and "caption2" not in it
    n = it["cap_len"]
    assert (it["caption"][:n] > 0).all() and (it["caption"][n:] == 0).all()


def test_two_captions_always_differ_when_possible(tiny_dataset):
    ds = D.CaptionDataset(tiny_dataset, "train", captions_per_sample=2)
    for epoch in range(30):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            it = ds[i]
            n_caps = len(ds.records[i]["tokens"])
            if n_caps >= 2:
                assert it["cap_idx"] != it["cap_idx2"], (epoch, i)
            else:
                assert it["cap_idx"] == it["cap_idx2"] == 0  # a single caption: the same one twice
            assert it["caption2"].shape == (18,)


def test_sampling_is_seeded_and_varies_with_epoch(tiny_dataset):
    a = D.CaptionDataset(tiny_dataset, "train", captions_per_sample=2, seed=1)
    b = D.CaptionDataset(tiny_dataset, "train", captions_per_sample=2, seed=1)
    draws = lambda ds: [(ds[i]["cap_idx"], ds[i]["cap_idx2"], tuple(ds[i]["caption"].tolist())) for i in range(4)]
    assert draws(a) == draws(b)
    seen = set()
    for e in range(12):
        a.set_epoch(e)
        seen.add(tuple(draws(a)))
    assert len(seen) > 1


def test_long_caption_modes(tiny_dataset):
    # img_00 caption 0 has 25 words (w0..w24)
    ds = D.CaptionDataset(tiny_dataset, "train", long_caption_mode="truncate", caption_index=0)
    it = ds[0]
    assert it["cap_len"] == 18
    assert ds.vocab.decode(it["caption"].tolist()) == " ".join(f"w{k}" for k in range(18))
    sub = D.CaptionDataset(tiny_dataset, "train", long_caption_mode="subsample", caption_index=0)
    words = set()
    for e in range(10):
        sub.set_epoch(e)
        got = sub.vocab.decode(sub[0]["caption"].tolist()).split()
        assert len(got) == 18 and got == sorted(got, key=lambda w: int(w[1:]))
        words |= set(got)
    assert len(words) > 18


def test_dataloader_workers_reproducible(tiny_dataset):
    ds = D.CaptionDataset(tiny_dataset, "train", captions_per_sample=2, seed=3)

    def run(workers):
        dl = D.make_loader(ds, batch_size=2, shuffle=True, seed=11, num_workers=workers)
        return [(b["key"], b["cap_idx"].tolist(), b["cap_idx2"].tolist(), b["images"][0].sum().item()) for b in dl]

    single = run(0)
    assert run(0) == single
    assert run(2) == single  # same order and same caption draws with workers


def test_random_crop_and_flip_seeded(tiny_dataset):
    ds = D.CaptionDataset(tiny_dataset, "train", image_sizes=(16,), random_crop=True, random_flip=True, seed=0)
    x1 = ds[1]["images"][0]
    assert torch.equal(x1, ds[1]["images"][0])
    imgs = set()
    for e in range(8):
        ds.set_epoch(e)
        imgs.add(ds[1]["images"][0].numpy().tobytes())
    assert len(imgs) > 1


def test_bad_image_raise_names_key_and_file_and_skip_counts(tiny_dataset):
    rec = D.read_records(tiny_dataset)[1]
    (tiny_dataset / rec["image"]).write_bytes(b"")
    ds = D.CaptionDataset(tiny_dataset, "train")
    with pytest.raises(BadImageError, match=r"zero-byte file \(key 'img_01'"):
        ds[1]
    skip = D.CaptionDataset(tiny_dataset, "train", on_bad_image="skip")
    it = skip[1]
    assert it["key"] == "img_02" and skip.bad_keys == ["img_01"]
    # in a worker, the error still names the file
    dl = D.make_loader(ds, batch_size=4, shuffle=False, seed=0, num_workers=1)
    with pytest.raises(Exception, match="img_01"):
        list(dl)


def test_hand_edited_manifest_and_records_are_refused(tiny_dataset):
    mpath = tiny_dataset / "manifest.json"
    m = json.loads(mpath.read_text())
    m["n_images"] = "six"
    mpath.write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="field 'n_images' should be int"):
        D.read_manifest(tiny_dataset)
    m["n_images"] = 6
    m["format_version"] = 99
    mpath.write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="format_version 99"):
        D.read_manifest(tiny_dataset)
    m["format_version"] = 1
    mpath.write_text(json.dumps(m))
    rpath = tiny_dataset / "records.jsonl"
    rpath.write_text(rpath.read_text().replace('"split":"train"', '"split":"val"', 1))
    with pytest.raises(ManifestError, match="does not match the sha256"):
        D.read_records(tiny_dataset)
    with pytest.raises(ManifestError, match="split 'val'"):
        D.read_records(tiny_dataset, verify_hash=False)
    (tiny_dataset / "manifest.json").unlink()
    with pytest.raises(ManifestError, match="manifest.json not found"):
        D.CaptionDataset(tiny_dataset, "train")


def test_constructor_argument_errors(tiny_dataset):
    for kw, match in [({"split": "val"}, "split"), ({"image_sizes": (64, 32)}, "ascending"),
                      ({"captions_per_sample": 3}, "captions_per_sample"), ({"long_caption_mode": "x"}, "mode"),
                      ({"on_bad_image": "ignore"}, "on_bad_image")]:
        with pytest.raises(ValueError, match=match):
            D.CaptionDataset(tiny_dataset, **{"split": "train", **kw})


def test_summary(tiny_dataset):
    s = D.dataset_summary(tiny_dataset)
    assert s["n_images"] == 6 and s["n_captions"] == 15 and s["caption_len_max"] == 25
    assert s["frac_longer_than_18"] == pytest.approx(1 / 15)
