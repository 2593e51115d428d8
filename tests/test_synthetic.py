"""The built-in caption-shapes generator: determinism, rendering, caption correctness, dataset writing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2i_lib.data import synthetic as S
from t2i_lib.data.text import tokenize

SCHEMA = S.ATTRIBUTE_SCHEMA


# ------------------------------------------------------------------------------------------------------------
# An independent caption checker: which values of an attribute does a caption state?
# ------------------------------------------------------------------------------------------------------------
def _spans(tokens: list[str], phrase: list[str]) -> list[tuple[int, int]]:
    n = len(phrase)
    return [(i, i + n) for i in range(len(tokens) - n + 1) if tokens[i:i + n] == phrase]


def stated_values(tokens: list[str], attribute: str) -> set[str]:
    """Values whose synonym phrases occur in ``tokens``, keeping only maximal matches (so "top" inside
    "top left" counts for "top left", not for "top")."""
    hits = [(a, b, value) for value, phrases in S.SYNONYMS[attribute].items()
            for p in phrases for a, b in _spans(tokens, tokenize(p))]
    maximal = [h for h in hits
               if not any(o[0] <= h[0] and h[1] <= o[1] and (o[1] - o[0]) > (h[1] - h[0]) for o in hits)]
    return {v for _, _, v in maximal}


def check_caption(raw: str, tokens: list[str], mentions: list[str], attributes: dict[str, int]) -> None:
    assert tokens and tokens == tokenize(raw), raw
    assert "shape" in mentions and "colour" in mentions, raw
    assert mentions == [a for a in SCHEMA if a in mentions], f"mentions not in schema order: {mentions}"
    for attr in SCHEMA:
        found = stated_values(tokens, attr)
        if attr in mentions:
            assert found == {SCHEMA[attr][attributes[attr]]}, (raw, attr, found)
        else:
            assert found == set(), (raw, attr, found)


# ------------------------------------------------------------------------------------------------------------
# Schema and parameters
# ------------------------------------------------------------------------------------------------------------
def test_schema_and_synonym_tables():
    assert list(SCHEMA) == ["shape", "colour", "position", "size"]
    assert [len(v) for v in SCHEMA.values()] == [5, 8, 9, 3]
    assert SCHEMA["position"] == ["top left", "top", "top right", "left", "center", "right",
                                  "bottom left", "bottom", "bottom right"]
    assert S.NUM_CLASSES == 40
    for attr, values in SCHEMA.items():
        assert list(S.SYNONYMS[attr]) == values
        for v in values:
            assert v in S.SYNONYMS[attr][v], (attr, v)  # the canonical name is itself a synonym
        # a phrase names one value only; outside positions ("top" is inside "top left") no phrase contains
        # another value's phrase
        phrases = [(tuple(tokenize(p)), v) for v in values for p in S.SYNONYMS[attr][v]]
        for p, v in phrases:
            for q, w in phrases:
                if v != w:
                    assert p != q, (attr, p)
                    if attr != "position":
                        assert not _spans(list(p), list(q)), (attr, p, q)
    assert {"crimson", "scarlet"} <= set(S.SYNONYMS["colour"]["red"])
    assert {"tiny", "little"} <= set(S.SYNONYMS["size"]["small"])


def test_class_id_formula_and_names():
    for i in range(200):
        item_attrs = S.attributes_of(S.sample_params(7, i))
        assert S.class_id_of(item_attrs) == item_attrs["shape"] * 8 + item_attrs["colour"]
    for item in S.generate(50, seed=1, size=16, n_captions=2):
        assert item["class_id"] == item["attributes"]["shape"] * 8 + item["attributes"]["colour"]
        assert 0 <= item["class_id"] < 40
    assert S.class_name(0) == "red circle"
    assert S.class_name(39) == "white cross"
    assert S.class_name(2 * 8 + 4) == "blue triangle"
    with pytest.raises(ValueError):
        S.class_name(40)


def test_params_cover_every_value_and_stay_in_their_bins():
    params = [S.sample_params(0, i) for i in range(600)]
    for attr, values in SCHEMA.items():
        assert {p[attr] for p in params} == set(range(len(values))), attr
    for p in params:
        lo, hi = S.SIZE_BINS[SCHEMA["size"][p["size"]]]
        assert lo <= p["radius"] <= hi
        row, col = divmod(p["position"], 3)
        cx, cy = p["center"]
        assert int(cx * 3) == col and int(cy * 3) == row
        assert all(0.0 <= c <= 1.0 for c in p["fill"] + p["background"])
        json.dumps(p)  # JSON-able


def test_describe():
    assert S.describe({"shape": 0, "colour": 0, "position": 0, "size": 0}) == \
        "a small red circle in the top left corner"
    assert S.describe({"shape": "cross", "colour": "blue", "position": "center", "size": "large"}) == \
        "a large blue cross in the center"
    with pytest.raises(ValueError):
        S.describe({"shape": 0, "colour": 8, "position": 0, "size": 0})
    with pytest.raises(ValueError):
        S.describe({"shape": "hexagon", "colour": 0, "position": 0, "size": 0})
    with pytest.raises(ValueError):
        S.describe({"shape": 0, "colour": 0})


# ------------------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------------------
def _items(n, **kw):
    return list(S.generate(n, **kw))


def test_same_seed_same_bytes_and_captions():
    a, b = _items(12, seed=3, size=32), _items(12, seed=3, size=32)
    for x, y in zip(a, b):
        assert x["image"].tobytes() == y["image"].tobytes()
        assert x["captions"] == y["captions"] and x["mentions"] == y["mentions"]
        assert (x["key"], x["split"], x["class_id"], x["attributes"]) == \
            (y["key"], y["split"], y["class_id"], y["attributes"])


def test_different_seed_different_data():
    a, b = _items(12, seed=3, size=32), _items(12, seed=4, size=32)
    assert sum(x["image"].tobytes() != y["image"].tobytes() for x, y in zip(a, b)) >= 11
    assert sum(x["captions"] != y["captions"] for x, y in zip(a, b)) >= 11
    assert [x["attributes"] for x in a] != [y["attributes"] for y in b]


def test_image_i_independent_of_n_images():
    short, long = _items(4, seed=5, size=32, test_fraction=0.25), _items(30, seed=5, size=32, test_fraction=0.25)
    for x, y in zip(short, long):
        assert x["key"] == y["key"]
        assert x["split"] == y["split"]
        assert x["image"].tobytes() == y["image"].tobytes()
        assert x["captions"] == y["captions"]
    # the standalone functions give the same as generate()
    p = S.sample_params(5, 17)
    assert S.render(p, 32).tobytes() == long[17]["image"].tobytes()
    assert [(r, t) for r, t, _ in S.make_captions(p, 5, 17)] == long[17]["captions"]


def test_split_is_stratified_and_prefix_independent():
    splits = [S.split_of(i, 0.2) for i in range(1000)]
    assert splits[0] == "train"
    for n in (5, 10, 37, 1000):
        assert splits[:n].count("test") == int(np.floor(n * 0.2))
    items = _items(25, seed=0, size=8, n_captions=1, test_fraction=0.2)
    assert [it["split"] for it in items] == splits[:25]
    assert all(it["split"] == "train" for it in _items(5, size=8, n_captions=1, test_fraction=0.0))
    assert _items(1, size=8, n_captions=1, test_fraction=0.5)[0]["split"] == "train"


# ------------------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------------------
def _centroid(weights: np.ndarray) -> tuple[float, float]:
    """(x, y) centroid of a weight map, normalised to [0, 1]."""
    h, w = weights.shape
    ys, xs = np.mgrid[0:h, 0:w]
    total = weights.sum()
    return float(((xs + 0.5) * weights).sum() / total / w), float(((ys + 0.5) * weights).sum() / total / h)


def test_render_shape_dtype_and_bitwise_determinism():
    p = S.sample_params(0, 3)
    for size in (8, 64, 100, 256):
        img = S.render(p, size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert img.tobytes() == S.render(dict(p), size).tobytes()
    with pytest.raises(ValueError):
        S.render(p, 0)


@pytest.mark.parametrize("index", range(24))
def test_render_is_resolution_independent_and_in_its_cell(index):
    p = S.sample_params(11, index)
    small = S.render(p, 64).astype(np.float64)
    big = S.render(p, 256).astype(np.float64)
    down = big.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(down - small).mean() < 1.0  # out of 255
    row, col = divmod(p["position"], 3)
    fill = np.asarray(p["fill"]) * 255.0
    for img in (small, big):
        # pixels of the shape's colour, found from the image alone
        mask = (np.linalg.norm(img - fill, axis=-1) < 25.0).astype(np.float64)
        assert mask.sum() > 0
        cx, cy = _centroid(mask)
        assert (int(cx * 3), int(cy * 3)) == (col, row), (cx, cy, SCHEMA["position"][p["position"]])
        assert abs(cx - p["center"][0]) < 0.02 and abs(cy - p["center"][1]) < 0.02
    # the shape's area grows with its size bin and matches between resolutions
    a64, a256 = S.coverage(p, 64).sum() / 64 ** 2, S.coverage(p, 256).sum() / 256 ** 2
    assert abs(a64 - a256) < 0.05 * a256


def test_sizes_are_ordered_by_area():
    for shape in range(5):
        areas = []
        for size in range(3):
            p = dict(S.sample_params(0, 0), shape=shape, size=size, center=[0.5, 0.5],
                     radius=float(np.mean(S.SIZE_BINS[SCHEMA["size"][size]])))
            areas.append(S.coverage(p, 128).sum())
        assert areas[0] < areas[1] < areas[2]
        assert areas[2] > 3.0 * areas[0]


def test_antialiased_edges():
    p = {"shape": 0, "colour": 7, "position": 4, "size": 2, "center": [0.5, 0.5], "radius": 0.13,
         "fill": [1.0, 1.0, 1.0], "background": [0.3, 0.3, 0.3], "gradient": [0.0, 0.0]}
    img = S.render(p, 64)[:, :, 0].astype(int)
    bg, fg = int(0.3 * 255 + 0.5), 255  # rounding is half up
    assert (img == bg).any() and (img == fg).any()
    intermediate = (img > bg + 10) & (img < fg - 10)
    assert intermediate.sum() >= 20  # a ring of partially covered pixels around the circle
    cov = S.coverage(p, 64)
    assert ((cov > 0.05) & (cov < 0.95)).sum() >= 20
    # the blend is exact: pixel = background + coverage * (fill - background), rounded
    expected = np.floor(76.5 + cov * (255.0 - 76.5) + 0.5)
    assert np.abs(expected - img).max() <= 1
    for shape in range(5):
        c = S.coverage(dict(p, shape=shape), 64)
        assert ((c > 0.05) & (c < 0.95)).sum() >= 8, SCHEMA["shape"][shape]


# ------------------------------------------------------------------------------------------------------------
# Captions
# ------------------------------------------------------------------------------------------------------------
def test_captions_distinct_and_correct():
    patterns = set()
    words = set()
    for item in S.generate(300, seed=2, size=8, n_captions=10):
        caps = item["captions"]
        assert len(caps) == 10
        assert len({tuple(t) for _, t in caps}) == 10          # distinct after tokenisation
        assert len(item["mentions"]) == 10
        assert item["mentions"][0] == list(SCHEMA)              # caption 0 is a full description
        for (raw, tokens), mentions in zip(caps, item["mentions"]):
            check_caption(raw, tokens, mentions, item["attributes"])
            assert 2 <= len(tokens) <= 18
            patterns.add(tuple(mentions))
            words.update(tokens)
    assert patterns == {("shape", "colour"), ("shape", "colour", "size"), ("shape", "colour", "position"),
                        ("shape", "colour", "position", "size")}
    assert {"crimson", "scarlet", "disc", "tiny", "little", "upper", "corner", "lozenge"} <= words


def test_many_captions_per_image():
    p = S.sample_params(0, 9)
    caps = S.make_captions(p, 0, 9, n_captions=S.MAX_CAPTIONS)
    assert len({tuple(t) for _, t, _ in caps}) == S.MAX_CAPTIONS
    assert S.make_captions(p, 0, 9, n_captions=5) == S.make_captions(p, 0, 9, n_captions=5)
    assert len(S.make_captions(p, 0, 9, n_captions=1)) == 1
    with pytest.raises(ValueError):
        S.make_captions(p, 0, 9, n_captions=0)
    with pytest.raises(ValueError):
        S.make_captions(p, 0, 9, n_captions=S.MAX_CAPTIONS + 1)


@pytest.mark.parametrize("k", range(9))
def test_whole_grammar_is_correct(k):
    """Every caption the grammar can write (one attribute combination per position) is correct and there are
    more distinct ones than MAX_CAPTIONS."""
    attrs = {"shape": k % 5, "colour": k % 8, "position": k, "size": k % 3}
    caps = S.enumerate_captions(attrs)
    assert len(caps) >= 10 * S.MAX_CAPTIONS
    assert len({tuple(t) for _, t, _ in caps}) == len(caps)
    for raw, tokens, mentions in caps:
        check_caption(raw, tokens, mentions, attrs)


def test_design_examples_are_in_the_grammar():
    def raws(attrs):
        return {raw for raw, _, _ in S.enumerate_captions(attrs)}

    assert "a small crimson disc in the upper left corner" in raws(
        {"shape": "circle", "colour": "red", "position": "top left", "size": "small"})
    assert "top left: red circle" in raws(
        {"shape": "circle", "colour": "red", "position": "top left", "size": 1})
    assert "there is a tiny scarlet round shape near the top" in raws(
        {"shape": "circle", "colour": "red", "position": "top", "size": "small"})
    assert "an amber box" in raws({"shape": "square", "colour": "orange", "position": 0, "size": 0})


# ------------------------------------------------------------------------------------------------------------
# Writing a dataset
# ------------------------------------------------------------------------------------------------------------
def test_prepare_and_load_with_caption_dataset(tmp_path):
    from t2i_lib.data import CaptionDataset, read_manifest, read_records

    root = S.prepare_synthetic(tmp_path / "shapes", n_images=20, seed=1, size=64, n_captions=6,
                               test_fraction=0.2, progress=False)
    assert root == tmp_path / "shapes"
    m = read_manifest(root)
    assert m["name"] == "caption-shapes" and m["n_images"] == 20 and m["splits"] == {"train": 16, "test": 4}
    assert m["num_classes"] == 40 and m["image_size"] == 64 and m["attributes"] == SCHEMA
    assert m["source"] == {"generator": "caption-shapes", "seed": 1, "n_images": 20, "size": 64, "n_captions": 6,
                           "test_fraction": 0.2, "version": 1}
    assert m["captions_per_image"] == {"min": 6, "max": 6} and m["out_of_vocabulary"]["tokens"] == 0
    recs = read_records(root, m)
    items = list(S.generate(20, seed=1, size=64, n_captions=6, test_fraction=0.2))
    for rec, item in zip(recs, items):
        assert rec["key"] == item["key"] and rec["split"] == item["split"]
        assert rec["attributes"] == item["attributes"] and rec["mentions"] == item["mentions"]
        assert rec["captions"] == [raw for raw, _ in item["captions"]]
    assert not list(tmp_path.glob("*.partial-*"))

    ds = CaptionDataset(root, split="train", image_sizes=(32, 64), captions_per_sample=2)
    assert len(ds) == 16
    train_items = [it for it in items if it["split"] == "train"]
    for i in (0, 7, 15):
        x = ds[i]
        assert [tuple(t.shape) for t in x["images"]] == [(3, 32, 32), (3, 64, 64)]
        for t in x["images"]:
            assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0
        assert x["cap_idx"] != x["cap_idx2"]
        assert not np.array_equal(x["caption"].numpy(), x["caption2"].numpy())
        assert x["attributes"] == train_items[i]["attributes"]
        assert x["class_id"] == train_items[i]["class_id"]
        # the PNG holds the rendered bytes exactly
        assert np.array_equal(np.asarray(ds.load_image(i)), train_items[i]["image"])
        decoded = ds.vocab.decode(x["caption"][:x["cap_len"]].tolist())
        assert decoded == " ".join(train_items[i]["captions"][x["cap_idx"]][1])
    assert len(CaptionDataset(root, split="test", image_sizes=(64,))) == 4


def test_prepare_refuses_existing_dir(tmp_path):
    out = tmp_path / "shapes"
    out.mkdir()
    with pytest.raises(FileExistsError):
        S.prepare_synthetic(out, n_images=4, size=16, n_captions=2, test_fraction=0.25, progress=False)
    S.prepare_synthetic(out, n_images=4, size=16, n_captions=2, test_fraction=0.25, overwrite=True,
                        progress=False)
    assert (out / "manifest.json").is_file()


def test_prepare_failure_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_render = S.render

    def failing_render(params, size):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real_render(params, size)

    monkeypatch.setattr(S, "render", failing_render)
    with pytest.raises(RuntimeError, match="boom"):
        S.prepare_synthetic(tmp_path / "shapes", n_images=6, size=16, n_captions=2, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [
    {"n_images": 0}, {"n_images": 2.5}, {"size": 4}, {"size": 64.0}, {"n_captions": 0},
    {"n_captions": S.MAX_CAPTIONS + 1}, {"test_fraction": 1.0}, {"test_fraction": -0.1},
    {"test_fraction": "0.2"}, {"n_images": 3, "test_fraction": 0.2}, {"seed": -1}, {"seed": True},
])
def test_bad_arguments(tmp_path, kwargs):
    args = {"n_images": 10, "seed": 0, "size": 16, "n_captions": 2, "test_fraction": 0.2, **kwargs}
    with pytest.raises(ValueError):
        S.generate(**args)
    with pytest.raises(ValueError):
        S.prepare_synthetic(tmp_path / "shapes", progress=False, **args)
    assert not (tmp_path / "shapes").exists() and list(tmp_path.iterdir()) == []


def test_single_image_and_no_test_split(tmp_path):
    root = S.prepare_synthetic(tmp_path / "one", n_images=1, size=16, n_captions=1, progress=False)
    from t2i_lib.data import read_manifest

    assert read_manifest(root)["splits"] == {"train": 1, "test": 0}
    items = _items(3, size=8, n_captions=1, test_fraction=0.0)
    assert [it["split"] for it in items] == ["train"] * 3


@pytest.mark.parametrize("size", [32, 64])
def test_training_free_judge_reads_colour_and_position_of_real_renders(size):
    import torch

    params = [S.sample_params(3, i) for i in range(300)]
    imgs = np.stack([S.render(p, size) for p in params]).astype(np.float32) / 127.5 - 1  # N x H x W x 3
    colour, position = S.judge_colour_position(torch.from_numpy(imgs).permute(0, 3, 1, 2))
    truth_c = np.array([p["colour"] for p in params])
    truth_p = np.array([p["position"] for p in params])
    assert (colour.numpy() == truth_c).mean() >= 0.97
    assert (position.numpy() == truth_p).mean() >= 0.97
    # a uniform grey image has no shape: whatever it answers, a flat batch cannot beat chance
    flat = torch.full((40, 3, size, size), -0.4)
    c_flat, p_flat = S.judge_colour_position(flat)
    assert len(set(c_flat.tolist())) == 1 and len(set(p_flat.tolist())) == 1
    # each value appears among the renders, so a constant answer scores about chance, not near 1
    assert len(set(truth_c)) == S.N_COLOURS and len(set(truth_p)) == 9
    with pytest.raises(ValueError, match="B, 3, H, W"):
        S.judge_colour_position(torch.zeros(2, 1, size, size))


def test_pixel_judge_accuracy_counts_mentioned_attributes_only():
    import torch

    from t2i_lib.metrics.evaluate import pixel_judge_accuracy

    params = [S.sample_params(5, i) for i in range(120)]
    u8 = torch.from_numpy(np.stack([S.render(p, 32) for p in params])).permute(0, 3, 1, 2).contiguous()
    attrs = [S.attributes_of(p) for p in params]
    every = [["shape", "colour", "position", "size"]] * len(params)
    right = pixel_judge_accuracy(u8, attrs, every)
    assert right["colour"] >= 0.97 and right["position"] >= 0.97
    assert right["n_checks"] == {"colour": 120, "position": 120}
    # the captions of other images: about chance (1/8 colour, 1/9 position)
    wrong = pixel_judge_accuracy(u8, attrs[1:] + attrs[:1], every)
    assert wrong["colour"] < 0.3 and wrong["position"] < 0.3
    # position never mentioned: not scored
    none = pixel_judge_accuracy(u8, attrs, [["colour"]] * len(params))
    assert none["position"] is None and none["n_checks"]["position"] == 0 and none["colour"] == right["colour"]
