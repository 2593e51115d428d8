"""The built-in caption-scenes generator: scenes, an independent caption parser (every sibling caption states the
same facts), structural variety, determinism, speed, the scene scorer and the bag-of-words control, statistics,
and preparation through the config path the GAN runs use."""

from __future__ import annotations

import time

import numpy as np
import pytest

from t2i_lib.data import scenes as S
from t2i_lib.data.text import tokenize

SCHEMA = S.ATTRIBUTE_SCHEMA
PAIR_FACTS = {"obj0_shape", "obj0_colour", "obj1_shape", "obj1_colour", "relation"}


@pytest.fixture
def one_thread():
    """Torch on one thread (the machine is shared); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------------------
# An independent caption parser.  It knows the vocabulary (synonym phrases) and four construction rules, not the
# templates: a relation word with "it"/"its" next to it is anaphoric (the pronoun is the first object named; the
# subject is the other object named closest to the relation word), a relation word before any object is fronted
# (reference object first, subject after it), otherwise the subject precedes the relation word and the reference
# object follows it.
# ------------------------------------------------------------------------------------------------------------
REL_WORDS = {"left": 0, "right": 1, "above": 2, "over": 2, "higher": 2, "below": 3, "under": 3, "beneath": 3,
             "lower": 3}
_ORDER = {"size": 0, "colour": 1, "shape": 2}


def _phrase_spans(tokens: list[str]) -> list[tuple[int, int, str, int]]:
    """Maximal occurrences of size/colour/shape phrases: (start, end, attribute, value index)."""
    hits = []
    for attr, values in (("size", S.SIZES), ("colour", S.COLOURS), ("shape", S.SHAPES)):
        for vi, v in enumerate(values):
            for p in S.SYNONYMS[attr][v]:
                pt = tokenize(p)
                n = len(pt)
                hits += [(i, i + n, attr, vi) for i in range(len(tokens) - n + 1) if tokens[i:i + n] == pt]
    return sorted(h for h in hits if not any(o[0] <= h[0] and h[1] <= o[1] and o[1] - o[0] > h[1] - h[0]
                                             for o in hits))


def parse(tokens: list[str]) -> dict:
    """{"refs": [{"start", "end", attr: value...}], "relation": (subject ref, relation index, object ref) or None,
    "count": 2 | 3 | None}."""
    refs: list[dict] = []
    for a, b, attr, v in _phrase_spans(tokens):
        cur = refs[-1] if refs else None
        if cur is not None and cur["end"] == a and _ORDER[attr] > max(_ORDER[k] for k in cur if k in _ORDER):
            cur[attr], cur["end"] = v, b
        else:
            refs.append({"start": a, "end": b, attr: v})
    rel_at = [i for i, t in enumerate(tokens) if t in REL_WORDS]
    assert len(rel_at) <= 1, tokens
    count = None
    for i in range(len(tokens) - 1):
        if tokens[i] in ("two", "three") and tokens[i + 1] in ("objects", "shapes"):
            count = 2 if tokens[i] == "two" else 3
    if not rel_at:
        return {"refs": refs, "relation": None, "count": count}
    k = rel_at[0]
    rel = REL_WORDS[tokens[k]]
    before = [j for j, r in enumerate(refs) if r["end"] <= k]
    after = [j for j, r in enumerate(refs) if r["start"] > k]
    if {"it", "its"} & set(tokens[max(0, k - 1):k + 3]):       # anaphoric
        obj = 0
        others = [j for j in range(len(refs)) if j != obj]
        subj = min(others, key=lambda j: min(abs(refs[j]["start"] - k), abs(refs[j]["end"] - k)))
    elif not before:                                              # fronted
        obj, subj = after[0], after[1]
    else:                                                         # infix
        subj, obj = before[-1], after[0]
    return {"refs": refs, "relation": (subj, rel, obj), "count": count}


def resolve(ref: dict, objects: list[dict]) -> int:
    """Index of the one ground-truth object matching every attribute the reference states."""
    match = [k for k, o in enumerate(objects) if all(o[a] == ref[a] for a in _ORDER if a in ref)]
    assert len(match) == 1, (ref, objects)
    return match[0]


def caption_facts(tokens: list[str], attrs: dict) -> dict:
    """The facts a caption states, resolved against the ground truth: {flat attribute name: value index}."""
    n = 2 + attrs["n_objects"]
    objects = [{a: attrs[f"obj{k}_{a}"] for a in S.OBJECT_ATTRIBUTES} for k in range(n)]
    p = parse(tokens)
    facts: dict[str, int] = {}
    ids = [resolve(r, objects) for r in p["refs"]]
    for r, k in zip(p["refs"], ids):
        for a in _ORDER:
            if a in r:
                assert facts.setdefault(f"obj{k}_{a}", r[a]) == r[a]
    if p["relation"] is not None:
        s, rel, o = p["relation"]
        pair = (ids[s], ids[o])
        assert pair in ((0, 1), (1, 0)), (tokens, pair)
        facts["relation"] = rel if pair == (0, 1) else S.CONVERSE[rel]
    if p["count"] is not None:
        facts["n_objects"] = p["count"] - 2
    return facts


def skeleton(tokens: list[str]) -> tuple[str, ...]:
    """The caption's structure: attribute phrases -> their attribute name, relation phrases' key word -> REL."""
    out, i = [], 0
    spans = {a: (b, attr) for a, b, attr, _ in _phrase_spans(tokens)}
    while i < len(tokens):
        if i in spans:
            b, attr = spans[i]
            out.append(attr.upper())
            i = b
            continue
        out.append("REL" if tokens[i] in REL_WORDS else tokens[i])
        i += 1
    return tuple(out)


# ------------------------------------------------------------------------------------------------------------
# Scenes
# ------------------------------------------------------------------------------------------------------------
def test_schema():
    assert list(SCHEMA)[:9] == ["obj0_shape", "obj0_colour", "obj0_size", "obj0_position", "obj1_shape",
                                "obj1_colour", "obj1_size", "obj1_position", "relation"]
    assert SCHEMA["relation"] == ["left of", "right of", "above", "below"]
    assert SCHEMA["obj0_shape"] == ["circle", "square", "triangle", "diamond", "cross"]
    assert SCHEMA["obj2_colour"][-1] == "none" and len(SCHEMA["obj2_colour"]) == 9
    assert S.NUM_CLASSES == 6400
    assert len(S.TEMPLATES) == 27 and {t[1] for t in S.TEMPLATES} == set(S.GROUP_WEIGHTS)


def test_scene_layout_rules():
    rels, thirds = np.zeros(4), 0
    for i in range(1500):
        p = S.sample_params(5, i)
        objs = p["objects"]
        a = S.attributes_of(p)
        assert len(objs) in (2, 3)
        thirds += len(objs) == 3
        assert len({o["shape"] for o in objs}) == len(objs) and len({o["colour"] for o in objs}) == len(objs)
        (r0, c0), (r1, c1) = divmod(objs[0]["position"], 3), divmod(objs[1]["position"], 3)
        assert (r0 == r1) != (c0 == c1)                        # the pair shares a row or a column
        assert objs[0]["colour"] < objs[1]["colour"]           # canonical roles
        assert a["relation"] == S.relation_between(objs[0]["position"], objs[1]["position"])
        if r0 == r1:
            assert a["relation"] == (0 if c0 < c1 else 1)
        else:
            assert a["relation"] == (2 if r0 < r1 else 3)
        if len(objs) == 3:                                     # the distractor is aligned with neither
            r2, c2 = divmod(objs[2]["position"], 3)
            assert r2 not in (r0, r1) and c2 not in (c0, c1)
            assert a["n_objects"] == 1 and a["obj2_shape"] == objs[2]["shape"]
        else:
            assert a["n_objects"] == 0 and a["obj2_shape"] == 5 and a["obj2_position"] == 9
        rels[a["relation"]] += 1
        assert S.class_id_of(a) == ((a["obj0_shape"] * 8 + a["obj0_colour"]) * 40 + a["obj1_shape"] * 8
                                    + a["obj1_colour"]) * 4 + a["relation"]
    assert 0.25 < thirds / 1500 < 0.35
    assert (rels / 1500 > 0.21).all(), rels                    # the four relations about equally often


def test_objects_do_not_overlap_and_relations_hold_in_pixels():
    for i in range(150):
        p = S.sample_params(9, i)
        masks = []
        for o in p["objects"]:
            cov = np.zeros((128, 128))
            (y0, y1, x0, x1), a = S._shape_window(o, 128)
            cov[y0:y1, x0:x1] = a
            masks.append(cov)
        for j in range(len(masks)):
            for k in range(j + 1, len(masks)):
                assert not ((masks[j] > 0) & (masks[k] > 0)).any(), (i, j, k)
        # centroids of the two pair objects: far apart along the relation's axis, close along the other
        cy, cx = [], []
        for m in masks[:2]:
            ys, xs = np.nonzero(m)
            w = m[ys, xs]
            cy.append((ys * w).sum() / w.sum() / 128)
            cx.append((xs * w).sum() / w.sum() / 128)
        rel = S.attributes_of(p)["relation"]
        along, across = (cx[1] - cx[0], cy[1] - cy[0]) if rel < 2 else (cy[1] - cy[0], cx[1] - cx[0])
        assert abs(along) > 0.25 and abs(across) < 0.06
        assert (along > 0) == (rel in (0, 2))


def test_render_determinism_and_size_independence():
    p = S.sample_params(0, 3)
    a, b = S.render(p, 64), S.render(p, 64)
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3) and a.tobytes() == b.tobytes()
    big = S.render(p, 256).astype(np.float64)
    down = big.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(down - a).mean() < 3.0


def test_scene_attributes_of_predictions():
    objs = [{"shape": 1, "colour": 4, "size": 0, "position": 5}, {"shape": 0, "colour": 0, "size": 2, "position": 3}]
    a = S.scene_attributes(objs)
    assert (a["obj0_colour"], a["obj1_colour"], a["relation"]) == (0, 4, 0)   # red (cell 3) left of blue (cell 5)
    assert a["obj2_shape"] == 5 and a["n_objects"] == 0
    a1 = S.scene_attributes(objs[:1])
    assert a1["obj0_colour"] == 4 and a1["obj1_shape"] == -1 and a1["relation"] == -1
    diag = S.scene_attributes([{**objs[0], "position": 0}, {**objs[1], "position": 4}])
    assert diag["relation"] == -1
    assert S.describe(S.attributes_of(S.scene_params(objs))) == "a large red circle left of a small blue square"


# ------------------------------------------------------------------------------------------------------------
# Captions
# ------------------------------------------------------------------------------------------------------------
def test_every_caption_parses_back_to_the_ground_truth_and_siblings_agree():
    n_full = 0
    for item in S.generate(150, seed=11, size=16, n_captions=12, test_fraction=0):
        attrs = item["attributes"]
        all_facts = []
        for (raw, toks), ment, tid in zip(item["captions"], item["mentions"], item["templates"]):
            assert toks == tokenize(raw) and 2 <= len(toks) <= S.MAX_TOKENS, raw
            facts = caption_facts(toks, attrs)
            assert set(facts) == set(ment), (raw, facts, ment)           # mentions = what the parser finds
            assert ment == [a for a in SCHEMA if a in ment]
            for k, v in facts.items():
                assert v == attrs[k], (raw, k, v, attrs[k])
            all_facts.append(facts)
            n_full += PAIR_FACTS <= set(facts)
        assert PAIR_FACTS <= set(item["mentions"][0])                    # caption 0 is a full description
        merged: dict = {}
        for f in all_facts:                                              # siblings never contradict each other
            for k, v in f.items():
                assert merged.setdefault(k, v) == v
        assert len({tuple(t) for _, t in item["captions"]}) == len(item["captions"])
    assert n_full > 150 * 12 * 0.4


def test_structural_variety_and_converse_relations():
    tids, skeletons = set(), set()
    subject_is_obj1 = first_is_left_or_top = n = 0
    for item in S.generate(300, seed=2, size=16, n_captions=10, test_fraction=0):
        a = item["attributes"]
        tids.update(item["templates"])
        for (raw, toks), ment in zip(item["captions"], item["mentions"]):
            skeletons.add(skeleton(toks))
            if PAIR_FACTS <= set(ment):
                p = parse(toks)
                objects = [{x: a[f"obj{k}_{x}"] for x in S.OBJECT_ATTRIBUTES} for k in range(2 + a["n_objects"])]
                subj = resolve(p["refs"][p["relation"][0]], objects)
                subject_is_obj1 += subj == 1
                # word order as a cue: is the first-named object the left (or upper) one?
                first = resolve(p["refs"][0], objects)
                first_is_left_or_top += (first == 0) == (a["relation"] in (0, 2))
                n += 1
    assert tids == set(range(len(S.TEMPLATES)))             # every template is used
    assert len(skeletons) >= 40, len(skeletons)             # structurally different captions, not just synonyms
    assert 0.4 < subject_is_obj1 / n < 0.6                   # the relation is told from either object's side
    assert 0.4 < first_is_left_or_top / n < 0.6              # so word order alone does not give the answer


def normalise(tokens: list[str]) -> str:
    """The caption with every synonym replaced by the value's own name ("crimson disc" -> "red circle")."""
    spans = {a: (b, attr, v) for a, b, attr, v in _phrase_spans(tokens)}
    out, i = [], 0
    while i < len(tokens):
        if i in spans:
            b, attr, v = spans[i]
            out.append({"size": S.SIZES, "colour": S.COLOURS, "shape": S.SHAPES}[attr][v])
            i = b
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def test_design_examples_are_in_the_grammar():
    objs = [{"shape": "circle", "colour": "red", "size": "small", "position": 3},
            {"shape": "square", "colour": "blue", "size": "large", "position": 4}]
    p = S.scene_params(objs)
    want = {"a red circle left of a blue square", "to the right of the red circle there is a blue square",
            "there is a blue square a red circle sits on its left", "a small red circle",
            "a red circle and a blue square the red one is left of the blue one"}
    found = set()
    for i in range(1000):
        found.update(normalise(t) for _, t, _, _ in S.make_captions(p, 0, i, 30))
        if want <= found:
            break
    assert want <= found, want - found


def test_same_seed_same_bytes_different_seed_different_data():
    def dump(seed, n=25):
        return [(it["image"].tobytes(), it["captions"], it["attributes"], it["split"])
                for it in S.generate(n, seed=seed, size=32, n_captions=5)]

    a, b, c = dump(3), dump(3), dump(4)
    assert a == b
    assert sum(x[0] != y[0] for x, y in zip(a, c)) >= 24 and [x[1] for x in a] != [x[1] for x in c]
    # image i does not depend on how many images are generated
    assert dump(3, 10) == a[:10]


def test_speed_lower_bound():
    list(S.generate(20, seed=0, size=64))                      # warm-up
    n = 300
    t0 = time.perf_counter()
    for _ in S.generate(n, seed=1, size=64, n_captions=10):
        pass
    rate = n / (time.perf_counter() - t0)
    assert rate >= 300, f"{rate:.0f} images/s"


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_images=0), "n_images must be >= 1"),
    (dict(n_images=2.5), "n_images must be an integer"),
    (dict(seed=-1), "seed must be >= 0"),
    (dict(size=8), "size must be >= 16"),
    (dict(n_captions=0), "n_captions must be >= 1"),
    (dict(n_captions=101), "n_captions must be between 1 and 100"),
    (dict(test_fraction=1.0), "test_fraction must be a number in"),
    (dict(test_fraction="0.2"), "test_fraction must be a number in"),
    (dict(n_images=3, test_fraction=0.2), "empty test split"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    args = {"n_images": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        S.generate(**args)
    with pytest.raises(ValueError, match=match):
        S.prepare_scenes(tmp_path / "ds", progress=False, **args)
    assert not (tmp_path / "ds").exists()


def test_bad_scene_arguments():
    ok = {"shape": 0, "colour": 0, "size": 0, "position": 0}
    with pytest.raises(ValueError, match="share a grid cell"):
        S.scene_params([ok, {**ok, "colour": 1}])
    with pytest.raises(ValueError, match="lacks 'position'"):
        S.scene_params([{"shape": 0, "colour": 0, "size": 0}])
    with pytest.raises(ValueError, match="colour='teal' is not one of"):
        S.scene_params([{**ok, "colour": "teal"}])
    with pytest.raises(ValueError, match="position=9 out of range"):
        S.scene_params([{**ok, "position": 9}])
    with pytest.raises(ValueError, match="1 to 9 objects"):
        S.scene_params([])
    with pytest.raises(ValueError, match="attributes lack 'relation'"):
        S.class_id_of({k: 0 for k in SCHEMA if k != "relation"})
    with pytest.raises(ValueError, match="index must be >= 0"):
        S.sample_params(0, -1)
    with pytest.raises(ValueError, match="multiple of 3"):
        S.scene_classifier(input_size=50)
    with pytest.raises(ValueError, match="2 predictions for 1"):
        S.scene_scores([{}, {}], [S.attributes_of(S.sample_params(0, 0))])
    with pytest.raises(ValueError, match="uint8"):
        S.images_to_tensor(np.zeros((2, 8, 8, 3), dtype=np.float32))


# ------------------------------------------------------------------------------------------------------------
# Scoring: a bag-of-words generator is measurably worse than a relation-aware one
# ------------------------------------------------------------------------------------------------------------
def _cells_for(relation: int, rng: np.random.Generator) -> tuple[int, int]:
    """Cells (subject, object) of two objects in one row/column standing in ``relation`` (subject to object)."""
    line = int(rng.integers(3))
    a, b = sorted(rng.choice(3, size=2, replace=False).tolist())
    if relation in (1, 3):
        a, b = b, a
    return ((line * 3 + a, line * 3 + b) if relation < 2 else (a * 3 + line, b * 3 + line))


def relation_aware_scene(tokens, rng):
    """Parse the caption back to its facts (colour-only references joined to the full description of that colour)."""
    p = parse(tokens)
    refs = p["refs"]
    s, rel, o = p["relation"]

    def full(ref):
        if "shape" in ref:
            return ref
        return next(r for r in refs if "shape" in r and r.get("colour") == ref["colour"])

    cells = _cells_for(rel, rng)
    return [{"shape": full(r)["shape"], "colour": full(r)["colour"],
             "size": full(r).get("size", int(rng.integers(3))), "position": c}
            for r, c in zip((refs[s], refs[o]), cells)]


def bag_of_words_scene(tokens, rng):
    """Which colours and shapes are mentioned and whether the relation is horizontal, from the word multiset only:
    colours and shapes paired and ordered at random."""
    colours = sorted({v for _, _, a, v in _phrase_spans(tokens) if a == "colour"})
    shapes = sorted({v for _, _, a, v in _phrase_spans(tokens) if a == "shape"})
    horizontal = bool({"left", "right"} & set(tokens))
    shapes = [shapes[j] for j in rng.permutation(len(shapes))]
    rel = (0 if horizontal else 2) + int(rng.integers(2))
    cells = _cells_for(rel, rng)
    return [{"shape": sh, "colour": c, "size": int(rng.integers(3)), "position": cell}
            for sh, c, cell in zip(shapes, colours, cells)]


def test_bag_of_words_generator_is_worse_than_relation_aware(one_thread):
    size = 48
    train = list(S.generate(1200, seed=21, size=size, n_captions=1, test_fraction=0))
    clf = S.fit_scene_classifier(np.stack([it["image"] for it in train]), [it["attributes"] for it in train],
                                 epochs=6, input_size=size, seed=0)
    test = list(S.generate(200, seed=22, size=size, n_captions=10, test_fraction=0))
    truth = [it["attributes"] for it in test]
    real = S.scene_scores(S.predict_scenes(clf, np.stack([it["image"] for it in test])), truth)
    assert real["binding_accuracy"] > 0.6 and real["relation_accuracy"] > 0.9, real

    rng = np.random.default_rng(0)
    aware, bow = [], []
    for i, it in enumerate(test):
        full = [t for (_, t), m in zip(it["captions"], it["mentions"]) if PAIR_FACTS <= set(m)
                and "obj2_shape" not in m]
        toks = full[int(rng.integers(len(full)))]
        aware.append(S.render(S.scene_params(relation_aware_scene(toks, rng), seed=1, index=i), size))
        bow.append(S.render(S.scene_params(bag_of_words_scene(toks, rng), seed=2, index=i), size))
    sa = S.scene_scores(S.predict_scenes(clf, np.stack(aware)), truth)
    sb = S.scene_scores(S.predict_scenes(clf, np.stack(bow)), truth)
    print(f"\nreal {real['binding_accuracy']:.3f}/{real['relation_accuracy']:.3f}  aware "
          f"{sa['binding_accuracy']:.3f}/{sa['relation_accuracy']:.3f}  bag-of-words "
          f"{sb['binding_accuracy']:.3f}/{sb['relation_accuracy']:.3f} (binding/relation)")
    assert sa["relation_accuracy"] > 0.85 and sa["binding_accuracy"] > 0.6
    assert sb["relation_accuracy"] < 0.65 and sb["binding_accuracy"] < 0.65
    assert sa["relation_accuracy"] - sb["relation_accuracy"] > 0.3
    assert sa["binding_accuracy"] - sb["binding_accuracy"] > 0.2


def test_scene_scores_definitions():
    t = S.attributes_of(S.scene_params([{"shape": 0, "colour": 0, "size": 1, "position": 3},
                                        {"shape": 1, "colour": 4, "size": 1, "position": 5}]))
    swapped_places = {**t, "relation": 1, "obj0_position": 5, "obj1_position": 3}
    swapped_shapes = {**t, "obj0_shape": 1, "obj1_shape": 0}
    s = S.scene_scores([t, swapped_places, swapped_shapes], [t, t, t])
    assert s["binding_accuracy"] == pytest.approx(2 / 3) and s["relation_accuracy"] == pytest.approx(2 / 3)
    assert s["scene_accuracy"] == pytest.approx(1 / 3) and s["per_attribute"]["relation"] == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------------------------------------
# Statistics, preparation through the config path, CLI
# ------------------------------------------------------------------------------------------------------------
def test_config_selects_caption_scenes():
    from t2i_lib import config as C

    cfg = C.resolve("ssagan_baseline", "demo", {"data.dataset": "caption-scenes"})
    assert cfg.data.dataset == "caption-scenes" and cfg.data.n_images == 12000
    assert cfg.hash != C.resolve("ssagan_baseline", "demo").hash
    with pytest.raises(C.ConfigError, match="flipping swaps left/right"):
        C.resolve("ssagan_baseline", "demo", {"data.dataset": "caption-scenes", "data.random_flip": True})
    with pytest.raises(C.ConfigError, match="profile 'paper' reproduces CUB/COCO"):
        C.resolve("ssagan_baseline", "paper", {"data.dataset": "caption-scenes"})


def test_prepare_through_the_config_path_and_load(tmp_path, one_thread):
    from t2i_lib import config as C
    from t2i_lib.data import prepare
    from t2i_lib.data.dataset import CaptionDataset, read_manifest

    over = {"data.dataset": "caption-scenes", "data.n_images": 40, "run.results_dir": str(tmp_path / "res")}
    cfg = C.resolve("ssagan_baseline", "demo", over)
    root = prepare.ensure_dataset(cfg, progress=False)
    assert root.name.startswith("caption-scenes-") and root == prepare.dataset_root(cfg)
    m = read_manifest(root)
    assert m["name"] == "caption-scenes" and m["n_images"] == 40 and m["splits"] == {"train": 32, "test": 8}
    assert m["attributes"] == SCHEMA and m["num_classes"] == S.NUM_CLASSES and m["image_size"] == 32
    assert m["source"]["generator"] == "caption-scenes" and m["source"]["version"] == S.GENERATOR_VERSION
    assert prepare.ensure_dataset(cfg, progress=False) == root                  # reused
    other = C.resolve("ssagan_baseline", "demo", {**over, "data.dataset": "caption-shapes"})
    assert prepare.dataset_root(other) != root

    ds = prepare.make_dataset(cfg, root)                                        # as the GAN runs build it
    assert ds.captions_per_sample == 2 and not ds.random_flip
    item = ds[0]
    assert item["images"][-1].shape == (3, 32, 32) and item["caption"].shape == (18,)
    assert item["cap_idx"] != item["cap_idx2"]
    assert set(item["attributes"]) == set(SCHEMA)
    test = CaptionDataset(root, "test", (32,))
    gen = {it["key"]: it for it in S.generate(40, seed=0, size=32, n_captions=10)}
    for r in test.records:
        g = gen[r["key"]]
        assert r["attributes"] == g["attributes"] and r["captions"] == [c for c, _ in g["captions"]]
        assert r["mentions"] == g["mentions"] and r["class_id"] == g["class_id"]
    assert np.array_equal(np.asarray(test.load_image(0)), gen[test.records[0]["key"]]["image"])

    # the scene classifier trains from the dataset folder too (report on the real test split)
    _, rep = S.train_scene_classifier(root, epochs=1)
    assert rep["n_train"] == 32 and rep["real_test"]["n"] == 8 and 0 <= rep["real_test"]["binding_accuracy"] <= 1

    # the generic attribute-accuracy functions of the evaluation take the flat scene attributes as they are
    import torch

    from t2i_lib.metrics.consistency import attribute_accuracy, train_attribute_classifier

    clf, crep = train_attribute_classifier(root, "cpu", epochs=1, width=8, input_size=32, progress=False)
    assert set(crep["real_test_accuracy"]) == set(SCHEMA)
    imgs = torch.stack([test[i]["images"][-1] for i in range(len(test))])
    acc = attribute_accuracy(clf, imgs, [r["attributes"] for r in test.records],
                             [r["mentions"][0] for r in test.records], "cpu")
    assert acc["n_checks"] >= 5 * len(test) and "relation" in acc["per_attribute"]


def test_statistics_work_for_both_synthetic_datasets(tmp_path):
    from t2i_lib.data import stats
    from t2i_lib.data.dataset import read_manifest, read_records
    from t2i_lib.data.synthetic import prepare_synthetic
    from t2i_lib.report import data_report

    scenes = S.prepare_scenes(tmp_path / "scenes", n_images=300, size=16, progress=False)
    shapes = prepare_synthetic(tmp_path / "shapes", n_images=300, size=16, progress=False)
    for root in (scenes, shapes):
        m = read_manifest(root)
        recs = read_records(root, m)
        lens = stats.length_stats(recs)
        assert lens["max"] <= 18 and lens["frac_longer_than_18"] == 0.0
        bal = stats.attribute_balance(recs, m["attributes"])
        assert list(bal) == list(m["attributes"])
        for name, b in bal.items():
            assert sum(b["counts"].values()) == 300 and list(b["counts"]) == m["attributes"][name]
        rates = stats.mention_rates(recs)
        assert set(rates) <= set(m["attributes"])
        div = stats.wording_diversity(recs, n_pairs=300)
        assert div["sibling_jaccard"] > div["unrelated_jaccard"]
    recs = read_records(scenes)
    bal = stats.attribute_balance(recs, SCHEMA)
    assert bal["relation"]["entropy"] > 0.97 and bal["obj0_shape"]["entropy"] > 0.97
    assert bal["obj0_colour"]["counts"]["white"] == 0 and bal["obj1_colour"]["counts"]["red"] == 0
    assert 0.6 < bal["obj2_shape"]["counts"]["none"] / 300 < 0.8
    assert stats.mention_rates(recs)["relation"] > 0.5
    assert stats.attribute_balance([{"tokens": [[1]]}]) == {}
    # paraphrases of a scene share fewer words than those of a single shape
    assert stats.wording_diversity(recs)["sibling_jaccard"] < stats.wording_diversity(
        read_records(shapes))["sibling_jaccard"]
    # notebook 00's table of the ground truth: one row per attribute, from the report's JSON record
    rep = data_report.dataset_report(scenes, tmp_path / "report", n_preview=4)
    table = data_report.attribute_table(rep)
    assert set(table.index) == set(read_manifest(scenes)["attributes"])
    assert table.loc["obj0_colour", "rarest value"] == "0.0 %" and table.loc["relation", "values"] == 4
    assert table.loc["relation", "stated by captions"].endswith("%")
    assert "photograph" in data_report.attribute_table({"attributes": {}})["note"][0]

    rep = data_report.dataset_report(scenes, tmp_path / "out", n_preview=4)     # what notebook 00 shows
    assert rep["summary"]["name"] == "caption-scenes" and rep["summary"]["vocab_size"] > 50
    assert all(p for p in rep["files"].values())


def test_cli_prepare_scenes(tmp_path, capsys):
    from t2i_lib.cli import main

    out = tmp_path / "cli"
    assert main(["prepare", "scenes", "--out", str(out), "--n-images", "12", "--size", "16", "--no-progress"]) == 0
    assert "12 images" in capsys.readouterr().out
    assert main(["prepare", "scenes", "--out", str(out), "--n-images", "12", "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
