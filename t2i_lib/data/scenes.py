"""The built-in ``caption-scenes`` dataset: two or three coloured shapes per image, one spatial relation between two of
them, described by captions whose siblings differ in *structure*, not only in synonyms.

``caption-shapes`` (:mod:`t2i_lib.data.synthetic`) has one object per image, so its sibling captions differ only in
word choice and word order of a flat description.  Here the captions of one image state the same facts from
different points of view ("a red circle left of a blue square" / "to the right of the red circle there is a blue
square" / "there is a blue square; a red circle sits on its left") or only part of them ("a small red circle"), so a
text encoder has to parse the relation to see that two captions agree.  That is what a fake-to-fake
(paraphrase-consistency) loss is meant to exploit, and what a bag-of-words reading of the caption cannot recover.

**Scene.**  The image is divided into a 3 x 3 grid of cells (the ``position`` names of caption-shapes: "top left" ...
"bottom right").  Two objects, the *pair*, sit in two cells of one row (a left/right relation) or of one column (an
above/below relation), so their relation is never ambiguous; in 30 % of the images a third object, the
*distractor*, sits in a cell that shares neither a row nor a column with either of them, so the pair is the only
two objects aligned in a row or column and is recognisable from the picture alone.  The objects of an image have
pairwise different shapes and pairwise different colours (the vocabularies of caption-shapes: 5 shapes, 8 colours,
3 sizes), so "the red one" or "the circle" always names one object.  Objects do not overlap: a centre is jittered
by at most +-0.02 around its cell centre (1/6, 1/2 or 5/6 of the side) and the radius bins (:data:`SIZE_BINS`) are
small enough to leave a gap of at least 0.03 of the image side between neighbours.  Rendering is that of
caption-shapes (exact signed distances, anti-aliased coverage, IEEE-exact float64), so a scene looks the same at any
resolution and the same parameters give the same bytes.

**Ground truth** (per image, flat integer attributes; :data:`ATTRIBUTE_SCHEMA`)::

    obj0_shape, obj0_colour, obj0_size, obj0_position     the pair object whose colour comes first in the colour
    obj1_shape, obj1_colour, obj1_size, obj1_position     list, then the other one
    relation                                              left of | right of | above | below  (obj0 relative to obj1)
    n_objects                                             two | three
    obj2_shape, obj2_colour, obj2_size, obj2_position     the distractor, or "none" (the last value of each list)

The roles are canonical: which pair object is ``obj0`` is decided by the colours in the picture, not by how a caption
orders them, so the ground truth is a function of the image alone (a classifier can learn it) while the relation
still takes its four values equally often.  The price is that ``obj0_colour`` leans towards the start of the colour
list (white is never ``obj0``): see :func:`t2i_lib.data.stats.attribute_balance`.  :func:`scene_attributes` computes
this form from any list of objects (generated or predicted).  The class id is
``((obj0_shape * 8 + obj0_colour) * 40 + obj1_shape * 8 + obj1_colour) * 4 + relation`` (:data:`NUM_CLASSES` = 6400).

**Caption grammar.**  Templates in seven groups (:data:`TEMPLATE_GROUPS`), filled with the synonyms of
caption-shapes for shapes, colours and sizes and with relation phrases (:data:`RELATION_PHRASES`).  A caption that
states the relation picks its *subject* at random among the pair and expresses the relation from the subject's point
of view (the converse relation when the subject is ``obj1``), in one of three constructions: infix ("X is to the left
of Y"), fronted ("to the left of the Y there is X") or anaphoric ("there is Y; X sits on its left"):

=========  ======================================  ============================================================
group      states                                  examples
=========  ======================================  ============================================================
full       both pair objects (shape, colour,       "a red circle left of a blue square", "there is a blue
           sometimes size) and the relation        square; a red circle sits on its left", "a red circle and a
                                                   blue square; the red one is left of the blue one"
shapes     the pair's shapes and the relation      "the disc is to the left of the box"
colours    the pair's colours and the relation     "something crimson is left of something azure"
pair       both pair objects, no relation          "a blue square together with a red circle"
single     one pair object (often with its size)   "a small red circle", "one of the objects is a red circle"
count      the number of objects and the relation  "three objects; a red circle is left of a blue square"
extra      the relation and the distractor         "besides a green cross, a red circle is left of a blue square"
=========  ======================================  ============================================================

Caption 0 of every image belongs to *full*; the others are drawn with :data:`GROUP_WEIGHTS` (*extra* only when there
is a distractor).  Every stated fact is true; ``mentions`` lists, per caption, the attributes it states (schema
order).  Captions are distinct after tokenisation and at most :data:`MAX_TOKENS` = 18 tokens long, so the reference
loader never subsamples away a relation word; the first letter is capitalised and a full stop added at random (raw
text only).

**Determinism and split** are those of caption-shapes: image ``i`` of seed ``s`` depends only on ``(s, i)`` (scene
from ``item_rng(s, i, 0)``, captions from ``item_rng(s, i, 1)``), and image ``i`` is in the test split iff
``floor((i+1) f) > floor(i f)``.

**Scoring.**  :func:`train_scene_classifier` trains a small per-cell classifier on real training images (each of the
nine cells: empty, or shape/colour/size of its object); :func:`predict_scenes` turns its output into the flat ground
truth above and :func:`scene_scores` reports *binding accuracy* (both pair objects' shape and colour right) and
*relation accuracy* (the relation between the two objects, recognised by their colours, right).  A generator that
reads a caption as a bag of words knows the colours, shapes and the axis of the relation but not which colour goes
with which shape nor which object comes first: with a perfect classifier it would score 0.5 on both.  In the tests
(classifier trained for seconds) it scores about 0.4 binding / 0.5 relation accuracy, against 0.8 / 0.99 for a
generator that parses the caption.
"""

from __future__ import annotations

import bisect
import string
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..utils.seed import item_rng
from . import synthetic as _shapes
from .synthetic import _check_int, _fix_articles, _shape_window, split_of
from .text import tokenize

# ------------------------------------------------------------------------------------------------------------
# Schema and constants
# ------------------------------------------------------------------------------------------------------------
SHAPES: tuple[str, ...] = tuple(_shapes.ATTRIBUTE_SCHEMA["shape"])
COLOURS: tuple[str, ...] = tuple(_shapes.ATTRIBUTE_SCHEMA["colour"])
SIZES: tuple[str, ...] = tuple(_shapes.ATTRIBUTE_SCHEMA["size"])
POSITIONS: tuple[str, ...] = tuple(_shapes.ATTRIBUTE_SCHEMA["position"])   # 3 x 3 grid, row-major
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
CONVERSE: tuple[int, ...] = (1, 0, 3, 2)      # relation of obj1 to obj0, given that of obj0 to obj1
COUNTS: tuple[str, ...] = ("two", "three")
NONE = "none"                                  # value of the distractor's attributes when there is none
OBJECT_ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "position")
_VALUES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}


def _build_schema() -> dict[str, list[str]]:
    schema: dict[str, list[str]] = {}
    for k in (0, 1):
        for a in OBJECT_ATTRIBUTES:
            schema[f"obj{k}_{a}"] = list(_VALUES[a])
    schema["relation"] = list(RELATIONS)
    schema["n_objects"] = list(COUNTS)
    for a in OBJECT_ATTRIBUTES:
        schema[f"obj2_{a}"] = list(_VALUES[a]) + [NONE]
    return schema


ATTRIBUTE_SCHEMA: dict[str, list[str]] = _build_schema()
N_SHAPES, N_COLOURS = len(SHAPES), len(COLOURS)
NUM_CLASSES = (N_SHAPES * N_COLOURS) ** 2 * len(RELATIONS)
GENERATOR_VERSION = 1
MAX_CAPTIONS = 100            # upper bound accepted for n_captions
MAX_TOKENS = 18               # no caption is longer (the reference max_words)
MIN_SIZE = 16                 # smallest image side accepted (a cell is then ~5 px)
THIRD_OBJECT_PROBABILITY = 0.3

CELL_CENTRES = (1.0 / 6.0, 0.5, 5.0 / 6.0)   # centre of a grid row/column (normalised)
POSITION_JITTER = 0.02                        # +- jitter of an object's centre around its cell centre
#: Reference radius per size bin (fraction of the side).  Largest extent 1.2 r = 0.13: neighbours (centres >= 0.293
#: apart after jitter) keep a gap >= 0.03, and no object leaves the image.
SIZE_BINS: dict[str, tuple[float, float]] = {"small": (0.055, 0.063), "medium": (0.076, 0.085),
                                             "large": (0.098, 0.108)}
_EXTENT = 1.2                                 # no shape reaches further than 1.2 r from its centre along x or y

# ------------------------------------------------------------------------------------------------------------
# Caption grammar
# ------------------------------------------------------------------------------------------------------------
#: Relation phrases by construction: ``infix`` ("X <phrase> Y"), ``front`` ("<phrase> Y there is X"; also
#: "<phrase> it X") and ``anaphor`` ("Y; X sits <phrase>", the pronoun standing for Y).  Every phrase contains exactly
#: one of the words left, right, above, over, higher, below, under, beneath, lower, and no other caption word does.
RELATION_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "infix": {"left of": ("left of", "to the left of", "on the left of", "on the left side of"),
              "right of": ("right of", "to the right of", "on the right of", "on the right side of"),
              "above": ("above", "over", "higher than", "up above"),
              "below": ("below", "under", "beneath", "lower than")},
    "front": {"left of": ("to the left of", "left of", "on the left of"),
              "right of": ("to the right of", "right of", "on the right of"),
              "above": ("above", "over", "up above"),
              "below": ("below", "under", "beneath")},
    "anaphor": {"left of": ("on its left", "to its left", "to the left of it"),
                "right of": ("on its right", "to its right", "to the right of it"),
                "above": ("above it", "over it", "higher than it"),
                "below": ("below it", "under it", "lower than it")},
}
COUNT_PHRASES = {"two": ("two",), "three": ("three",)}
SYNONYMS = {"shape": _shapes.SYNONYMS["shape"], "colour": _shapes.SYNONYMS["colour"],
            "size": _shapes.SYNONYMS["size"]}

# Slots: S / O subject and reference object (indefinite noun phrase), SD / OD (definite), SC / OC ("the red one"),
# SW / OW (colour word), SS / OS (shape word), A / B (the pair in random order), X (one pair object), E (the
# distractor), R / RF / RI (relation phrase: infix / fronted / anaphoric), N (count word).  "a" before a vowel
# becomes "an".
TEMPLATE_GROUPS: dict[str, tuple[str, ...]] = {
    "full": (
        "{S} {R} {O}",
        "{S} is {R} {O}",
        "{RF} {OD} there is {S}",
        "there is {O}; {S} sits {RI}",
        "{O} with {S} {RI}",
        "{RF} {OD}: {S}",
        "{A} and {B}; {SC} is {R} {OC}",
        "the picture shows {S} {R} {O}",
        "{O}, and {RF} it {S}",
    ),
    "shapes": (
        "the {SS} is {R} the {OS}",
        "{RF} the {OS} is the {SS}",
        "the {OS} has the {SS} {RI}",
    ),
    "colours": (
        "the {SW} object is {R} the {OW} object",
        "something {SW} is {R} something {OW}",
        "{RF} the {OW} one there is a {SW} one",
    ),
    "pair": (
        "{A} and {B}",
        "a picture with {A} and {B}",
        "{A} together with {B}",
    ),
    "single": (
        "{X}",
        "there is {X}",
        "one of the objects is {X}",
        "{X} can be seen",
    ),
    "count": (
        "{N} objects; {S} is {R} {O}",
        "{N} shapes in all, with {S} {R} {O}",
    ),
    "extra": (
        "{S} {R} {O}, and also {E}",
        "besides {E}, {S} is {R} {O}",
        "{S} {R} {O}; {E} is elsewhere",
    ),
}
#: Probability of each group for captions 1..n-1 (caption 0 is always "full"; "extra" becomes "full" without a
#: distractor).
GROUP_WEIGHTS: dict[str, float] = {"full": 0.4, "shapes": 0.1, "colours": 0.1, "pair": 0.1, "single": 0.15,
                                   "count": 0.075, "extra": 0.075}
SIZE_STATED_PROBABILITY = 0.35    # a noun phrase of a two-object template states the object's size
SINGLE_SIZE_PROBABILITY = 0.6     # the noun phrase of a "single" template does

_GROUP_NAMES = tuple(TEMPLATE_GROUPS)
_GROUP_CDF = [float(x) for x in np.cumsum([GROUP_WEIGHTS[g] for g in _GROUP_NAMES]) / sum(GROUP_WEIGHTS.values())]
_SLOT_NAMES = ("S", "O", "SD", "OD", "SC", "OC", "SW", "OW", "SS", "OS", "A", "B", "X", "E", "R", "RF", "RI", "N")


def _template_slots(template: str) -> tuple[str, ...]:
    slots = tuple(dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(template) if f))
    for s in slots:
        if s not in _SLOT_NAMES:
            raise AssertionError(f"unknown slot {s!r} in template {template!r}")
    return slots


def _compile(template: str) -> tuple[tuple[bool, Any], ...]:
    """Template -> parts (True, slot name) / (False, tokens of the literal text), so that a caption's tokens are
    assembled from memoised phrase tokens instead of tokenising every caption (slots are always separated from
    literal text by spaces or punctuation; tests check ``tokens == tokenize(raw)``)."""
    parts: list[tuple[bool, Any]] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal and tokenize(literal):
            parts.append((False, tuple(tokenize(literal))))
        if field:
            parts.append((True, field))
    return tuple(parts)


#: Every template as (template id, group, template, slots); the id is its index in this list.
TEMPLATES: tuple[tuple[int, str, str, tuple[str, ...]], ...] = tuple(
    (i, g, t, _template_slots(t))
    for i, (g, t) in enumerate((g, t) for g, ts in TEMPLATE_GROUPS.items() for t in ts))
_BY_GROUP = {g: [(*t, _compile(t[2])) for t in TEMPLATES if t[1] == g] for g in _GROUP_NAMES}
_PHRASE_TOKENS: dict[str, tuple[str, ...]] = {}   # memo: slot filler -> its tokens (a few thousand phrases)


# ------------------------------------------------------------------------------------------------------------
# Scene parameters and ground truth
# ------------------------------------------------------------------------------------------------------------
def _distinct(m: int, us: Sequence[float]) -> list[int]:
    """len(us) distinct values of range(m), one per uniform (sequential draws without replacement)."""
    pool = list(range(m))
    return [pool.pop(int(u * len(pool))) for u in us]


def _object(shape: int, colour: int, size: int, position: int, u: Sequence[float]) -> dict[str, Any]:
    """An object's rendering parameters from its attributes and 6 uniforms (centre jitter x/y, radius, fill)."""
    row, col = divmod(position, 3)
    lo, hi = SIZE_BINS[SIZES[size]]
    base = _shapes.COLOUR_RGB[COLOURS[colour]]
    return {"shape": shape, "colour": colour, "size": size, "position": position,
            "center": [CELL_CENTRES[col] + (2.0 * u[0] - 1.0) * POSITION_JITTER,
                       CELL_CENTRES[row] + (2.0 * u[1] - 1.0) * POSITION_JITTER],
            "radius": lo + u[2] * (hi - lo),
            "fill": [min(1.0, max(0.0, c + (2.0 * v - 1.0) * _shapes.COLOUR_JITTER)) for c, v in zip(base, u[3:6])]}


def _background(u: Sequence[float]) -> dict[str, list[float]]:
    g0, g1 = _shapes.BACKGROUND_GREY
    grey = g0 + u[0] * (g1 - g0)
    return {"background": [grey + (2.0 * v - 1.0) * _shapes.BACKGROUND_TINT for v in u[1:4]],
            "gradient": [(2.0 * v - 1.0) * _shapes.BACKGROUND_GRADIENT for v in u[4:6]]}


_PAIR_SLOTS = ((0, 1), (0, 2), (1, 2))


def sample_params(seed: int, index: int) -> dict[str, Any]:
    """Parameters of image ``index`` of the dataset with generator seed ``seed`` (independent of dataset size).

    Returns a JSON-able dict: ``objects`` (canonical order: ``obj0``, ``obj1``, then the distractor if any; each with
    attribute indices ``shape``, ``colour``, ``size``, ``position`` (grid cell, row-major) and rendering parameters
    ``center``, ``radius``, ``fill``), ``background`` and ``gradient``.
    """
    seed = _check_int("seed", seed, 0)
    index = _check_int("index", index, 0)
    u = item_rng(seed, index, 0).random(39).tolist()
    n = 3 if u[0] < THIRD_OBJECT_PROBABILITY else 2
    horizontal = u[1] < 0.5
    line = int(u[2] * 3)
    a, b = _PAIR_SLOTS[int(u[3] * 3)]
    if u[4] < 0.5:
        a, b = b, a
    other_line = [k for k in range(3) if k != line][int(u[5] * 2)]
    if horizontal:   # the pair in row `line`; the distractor in another row, in the column neither pair object uses
        cells = [line * 3 + a, line * 3 + b, other_line * 3 + (3 - a - b)]
    else:            # the pair in column `line`; the distractor in another column, in the remaining row
        cells = [a * 3 + line, b * 3 + line, (3 - a - b) * 3 + other_line]
    shapes = _distinct(N_SHAPES, u[6:6 + n])
    colours = _distinct(N_COLOURS, u[9:9 + n])
    objs = [_object(shapes[k], colours[k], int(u[12 + k] * 3), cells[k], u[15 + 6 * k:21 + 6 * k]) for k in range(n)]
    pair = sorted(objs[:2], key=lambda o: o["colour"])
    return {"objects": pair + objs[2:], **_background(u[33:39])}


def scene_params(objects: Sequence[dict[str, Any]], seed: int = 0, index: int = 0) -> dict[str, Any]:
    """Parameters of a scene with the given objects (each a dict of attribute indices ``shape``, ``colour``,
    ``size``, ``position``; names are accepted too), in any order and any number up to 9.

    Jitter, fill colours and background are drawn from ``item_rng(seed, index, 2)``.  For rendering scenes that did not
    come from :func:`sample_params`, e.g. what a test generator makes of a caption; :func:`attributes_of` then gives
    their ground truth.
    """
    seed = _check_int("seed", seed, 0)
    index = _check_int("index", index, 0)
    if not 1 <= len(objects) <= 9:
        raise ValueError(f"a scene has 1 to 9 objects, got {len(objects)}")
    attrs = [_object_indices(o, f"objects[{k}]") for k, o in enumerate(objects)]
    cells = [a["position"] for a in attrs]
    if len(set(cells)) != len(cells):
        raise ValueError(f"two objects share a grid cell: positions {cells}")
    u = item_rng(seed, index, 2).random(6 + 6 * len(attrs)).tolist()
    objs = [_object(a["shape"], a["colour"], a["size"], a["position"], u[6 + 6 * k:12 + 6 * k])
            for k, a in enumerate(attrs)]
    return {"objects": objs, **_background(u[:6])}


def _object_indices(obj: Any, where: str) -> dict[str, int]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a dict with {list(OBJECT_ATTRIBUTES)}, got {obj!r}")
    out = {}
    for a in OBJECT_ATTRIBUTES:
        if a not in obj:
            raise ValueError(f"{where} lacks {a!r} (need {list(OBJECT_ATTRIBUTES)})")
        out[a] = _shapes.value_index(f"{where}: {a}", obj[a], _VALUES[a])
    return out


def relation_between(position_a: int, position_b: int) -> int:
    """Index in :data:`RELATIONS` of the relation of the object in cell ``position_a`` to the one in ``position_b``:
    the axis along which they are further apart decides (same row: left of / right of); -1 when they are as far apart
    along both axes (diagonal, or the same cell)."""
    ra, ca = divmod(int(position_a), 3)
    rb, cb = divmod(int(position_b), 3)
    dr, dc = rb - ra, cb - ca
    if abs(dc) > abs(dr):
        return 0 if dc > 0 else 1
    if abs(dr) > abs(dc):
        return 2 if dr > 0 else 3
    return -1


def _aligned(pa: int, pb: int) -> bool:
    return pa != pb and (pa // 3 == pb // 3 or pa % 3 == pb % 3)


def scene_attributes(objects: Sequence[dict[str, Any]]) -> dict[str, int]:
    """The flat ground truth (:data:`ATTRIBUTE_SCHEMA`) of a list of objects (dicts with integer ``shape``,
    ``colour``, ``size``, ``position``), in any order.

    The pair is the two objects in one row or column (the first such pair in reading order when a prediction has
    several, any two objects when none is aligned); ``obj0`` is the pair object with the smaller colour index (ties:
    shape, then cell), and the relation is that of ``obj0`` to ``obj1`` (:func:`relation_between`).  The first other
    object is the distractor.  Values that a *prediction* may lack are -1 (fewer than two objects, diagonal pair);
    an absent distractor is "none".
    """
    objs = sorted(({a: int(o[a]) for a in OBJECT_ATTRIBUTES} for o in objects), key=lambda o: o["position"])
    pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))]
    aligned = [p for p in pairs if _aligned(objs[p[0]]["position"], objs[p[1]]["position"])]
    pick = aligned[0] if aligned else (pairs[0] if pairs else None)
    out: dict[str, int] = {}
    if pick is None:
        pair = objs[:1]
    else:
        pair = sorted((objs[pick[0]], objs[pick[1]]), key=lambda o: (o["colour"], o["shape"], o["position"]))
    for k in (0, 1):
        for a in OBJECT_ATTRIBUTES:
            out[f"obj{k}_{a}"] = pair[k][a] if k < len(pair) else -1
    out["relation"] = relation_between(pair[0]["position"], pair[1]["position"]) if len(pair) == 2 else -1
    rest = [o for k, o in enumerate(objs) if pick is not None and k not in pick]
    out["n_objects"] = 1 if len(objs) >= 3 else 0
    for a in OBJECT_ATTRIBUTES:
        out[f"obj2_{a}"] = rest[0][a] if rest else len(_VALUES[a])
    return {k: out[k] for k in ATTRIBUTE_SCHEMA}


def attributes_of(params: dict[str, Any]) -> dict[str, int]:
    """The flat ground truth of a parameter dict (:func:`scene_attributes` of its objects), in schema order."""
    return scene_attributes(params["objects"])


def class_id_of(attributes: dict[str, Any]) -> int:
    """``((obj0_shape * 8 + obj0_colour) * 40 + obj1_shape * 8 + obj1_colour) * 4 + relation``."""
    a = _attribute_indices(attributes)
    first = a["obj0_shape"] * N_COLOURS + a["obj0_colour"]
    second = a["obj1_shape"] * N_COLOURS + a["obj1_colour"]
    return (first * N_SHAPES * N_COLOURS + second) * len(RELATIONS) + a["relation"]


def _attribute_indices(attributes: dict[str, Any]) -> dict[str, int]:
    """Flat attribute dict with indices or value names -> indices (validated)."""
    return _shapes.attribute_indices(attributes, ATTRIBUTE_SCHEMA)


def describe(attributes: dict[str, Any]) -> str:
    """Canonical full description, e.g. ``"a small red circle left of a large blue square"`` (with ", and a medium
    green cross" for a distractor); indices or names."""
    a = _attribute_indices(attributes)

    def np_(k: int) -> str:
        return " ".join(_fix_articles(["a", SIZES[a[f"obj{k}_size"]], COLOURS[a[f"obj{k}_colour"]],
                                       SHAPES[a[f"obj{k}_shape"]]]))

    text = f"{np_(0)} {RELATIONS[a['relation']]} {np_(1)}"
    if a["obj2_shape"] < N_SHAPES:
        text += f", and {np_(2)}"
    return text


# ------------------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------------------
def _check_size(size: Any) -> int:
    return _check_int("size", size, 1)


def render(params: dict[str, Any], size: int) -> np.ndarray:
    """The image of ``params`` at ``size`` x ``size`` pixels: uint8 array (size, size, 3), bitwise deterministic.

    Background and objects as in caption-shapes (:func:`t2i_lib.data.synthetic.render`); objects never overlap, so
    the drawing order does not matter.
    """
    size = _check_size(size)
    c = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
    gx, gy = (float(v) for v in params["gradient"])
    bg = np.asarray(params["background"], dtype=np.float64)
    row = bg[None, :] + (gx * c)[:, None]
    img = row[None, :, :] + (gy * c)[:, None, None]
    for obj in params["objects"]:
        box = _shape_window(obj, size)
        if box is None:
            continue
        (y0, y1, x0, x1), a = box
        fill = np.asarray(obj["fill"], dtype=np.float64)
        sub = img[y0:y1, x0:x1]
        sub += a[:, :, None] * (fill[None, None, :] - sub)
    img *= 255.0
    img += 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


# ------------------------------------------------------------------------------------------------------------
# Captions
# ------------------------------------------------------------------------------------------------------------
def _check_n_captions(n_captions: Any) -> int:
    n = _check_int("n_captions", n_captions, 1)
    if n > MAX_CAPTIONS:
        raise ValueError(f"n_captions must be between 1 and {MAX_CAPTIONS}, got {n}")
    return n


def _pick(options: Sequence[str], u: float) -> str:
    return options[int(u * len(options))]


class _Filler:
    """Fills the slots of one caption from one row of uniforms, recording which attributes it states."""

    def __init__(self, objs: list[dict[str, int]], relation: int, u: list[float]):
        self.objs, self.u = objs, u
        self.subject = 0 if u[2] < 0.5 else 1                  # which pair object is the subject S
        self.rel = RELATIONS[relation if self.subject == 0 else CONVERSE[relation]]
        self.stated: set[str] = set()

    def _np(self, k: int, article: str, j: int, p_size: float) -> str:
        """Noun phrase of object k; uses uniforms j .. j+3 (shape, colour, size synonym, whether to state size)."""
        o, u, key = self.objs[k], self.u, f"obj{k}_"
        words = [article] if article else []
        if u[j + 3] < p_size:
            words.append(_pick(SYNONYMS["size"][SIZES[o["size"]]], u[j + 2]))
            self.stated.add(key + "size")
        words.append(_pick(SYNONYMS["colour"][COLOURS[o["colour"]]], u[j + 1]))
        words.append(_pick(SYNONYMS["shape"][SHAPES[o["shape"]]], u[j]))
        self.stated.update((key + "shape", key + "colour"))
        return " ".join(words)

    def _colour(self, k: int, j: int) -> str:
        self.stated.add(f"obj{k}_colour")
        return _pick(SYNONYMS["colour"][COLOURS[self.objs[k]["colour"]]], self.u[j])

    def _shape(self, k: int, j: int) -> str:
        self.stated.add(f"obj{k}_shape")
        return _pick(SYNONYMS["shape"][SHAPES[self.objs[k]["shape"]]], self.u[j])

    def slot(self, name: str) -> str:
        s, o, u = self.subject, 1 - self.subject, self.u
        p = SIZE_STATED_PROBABILITY
        if name in ("S", "O", "SD", "OD"):
            k, j = (s, 3) if name[0] == "S" else (o, 7)
            return self._np(k, "the" if len(name) == 2 else "a", j, p)
        if name in ("SC", "OC"):
            k, j = (s, 4) if name[0] == "S" else (o, 8)
            return f"the {self._colour(k, j)} {'one' if u[11] < 0.5 else 'object'}"
        if name in ("SW", "OW"):
            return self._colour(s, 4) if name[0] == "S" else self._colour(o, 8)
        if name in ("SS", "OS"):
            return self._shape(s, 3) if name[0] == "S" else self._shape(o, 7)
        if name in ("A", "B"):
            first = 0 if u[12] < 0.5 else 1
            k = first if name == "A" else 1 - first
            return self._np(k, "a", 3 if k == s else 7, p)
        if name == "X":
            return self._np(0 if u[13] < 0.5 else 1, "a", 14, SINGLE_SIZE_PROBABILITY)
        if name == "E":
            return self._np(2, "a", 14, p)
        if name in ("R", "RF", "RI"):
            self.stated.add("relation")
            kind = {"R": "infix", "RF": "front", "RI": "anaphor"}[name]
            return _pick(RELATION_PHRASES[kind][self.rel], u[18])
        if name == "N":
            self.stated.add("n_objects")
            return COUNTS[len(self.objs) - 2]
        raise AssertionError(name)  # pragma: no cover - slots are checked when the templates are built


def _phrase_tokens(phrase: str) -> tuple[str, ...]:
    toks = _PHRASE_TOKENS.get(phrase)
    if toks is None:
        toks = _PHRASE_TOKENS[phrase] = tuple(tokenize(phrase))
    return toks


def _realise(template: str, slots: tuple[str, ...], parts: tuple[tuple[bool, Any], ...],
             filler: _Filler) -> tuple[str, list[str]]:
    """(raw caption, tokens) of ``template`` with its slots filled by ``filler``."""
    fill = {s: filler.slot(s) for s in slots}
    raw = " ".join(_fix_articles(template.format_map(fill).split(" ")))
    tokens: list[str] = []
    for is_slot, value in parts:
        tokens.extend(_phrase_tokens(fill[value]) if is_slot else value)
    return raw, _fix_articles(tokens)


def make_captions(params: dict[str, Any], seed: int, index: int,
                  n_captions: int = 10) -> list[tuple[str, list[str], list[str], int]]:
    """``n_captions`` distinct captions of image ``index``: (raw caption, tokens, mentioned attribute names, template
    id in :data:`TEMPLATES`).

    Drawn from ``item_rng(seed, index, 1)``; caption 0 is a *full* description, the others follow
    :data:`GROUP_WEIGHTS`.  Captions longer than :data:`MAX_TOKENS` tokens or equal (as tokens) to an earlier one
    are drawn again.
    """
    n_captions = _check_n_captions(n_captions)
    seed = _check_int("seed", seed, 0)
    index = _check_int("index", index, 0)
    return _make_captions(attributes_of(params), seed, index, n_captions)


def _make_captions(a: dict[str, int], seed: int, index: int, n_captions: int) -> list:
    objs = [{x: a[f"obj{k}_{x}"] for x in OBJECT_ATTRIBUTES} for k in range(2 + a["n_objects"])]
    relation, has_extra = a["relation"], len(objs) == 3
    rng = item_rng(seed, index, 1)
    out: list[tuple[str, list[str], list[str], int]] = []
    seen: set[tuple[str, ...]] = set()
    draws = rng.random((n_captions + 4, 21)).tolist()
    row, attempts = 0, 0
    while len(out) < n_captions:
        if row == len(draws):
            draws = rng.random((n_captions + 4, 21)).tolist()
            row = 0
        u = draws[row]
        row += 1
        attempts += 1
        if attempts > 200 * MAX_CAPTIONS:  # pragma: no cover - the grammar offers far more than MAX_CAPTIONS
            raise RuntimeError(f"could not draw {n_captions} distinct captions for image {index}")
        group = "full" if not out else _GROUP_NAMES[bisect.bisect_right(_GROUP_CDF, u[0])]
        if group == "extra" and not has_extra:
            group = "full"
        templates = _BY_GROUP[group]
        tid, _, template, slots, parts = templates[int(u[1] * len(templates))]
        filler = _Filler(objs, relation, u)
        raw, tokens = _realise(template, slots, parts, filler)
        key = tuple(tokens)
        if len(tokens) > MAX_TOKENS or key in seen:
            continue
        seen.add(key)
        if u[19] < 0.5:
            raw = raw[0].upper() + raw[1:]
        if u[20] < 0.5:
            raw += "."
        out.append((raw, tokens, [a for a in ATTRIBUTE_SCHEMA if a in filler.stated], tid))
    return out


# ------------------------------------------------------------------------------------------------------------
# Dataset generation
# ------------------------------------------------------------------------------------------------------------
def _validate(n_images: Any, seed: Any, size: Any, n_captions: Any, test_fraction: Any) -> None:
    _shapes.validate_generation(n_images, seed, size, test_fraction, min_size=MIN_SIZE)
    _check_n_captions(n_captions)


def generate(n_images: int, seed: int = 0, size: int = 64, n_captions: int = 10,
             test_fraction: float = 0.2) -> Iterator[dict[str, Any]]:
    """Generate the dataset in memory, one dict per image, in index order.

    Each dict has ``key`` ("scenes_000042"), ``split``, ``class_id``, ``image`` (uint8 (size, size, 3)),
    ``captions`` (list of (raw, tokens)), ``mentions`` (per caption, the attribute names it states),
    ``templates`` (per caption, its template id), ``attributes`` ({name: index}) and ``params``.  Arguments are
    validated now, not at the first ``next``.
    """
    _validate(n_images, seed, size, n_captions, test_fraction)
    return _generate(int(n_images), int(seed), int(size), int(n_captions), float(test_fraction))


def _generate(n_images: int, seed: int, size: int, n_captions: int, test_fraction: float) -> Iterator[dict]:
    width = max(6, len(str(n_images - 1)))
    for i in range(n_images):
        params = sample_params(seed, i)
        attrs = attributes_of(params)
        caps = _make_captions(attrs, seed, i, n_captions)
        yield {
            "key": f"scenes_{i:0{width}d}",
            "split": split_of(i, test_fraction),
            "class_id": class_id_of(attrs),
            "image": render(params, size),
            "captions": [(raw, toks) for raw, toks, _, _ in caps],
            "mentions": [m for _, _, m, _ in caps],
            "templates": [t for _, _, _, t in caps],
            "attributes": attrs,
            "params": params,
        }


def prepare_scenes(out_dir: str | Path, n_images: int = 1000, seed: int = 0, size: int = 64,
                   n_captions: int = 10, test_fraction: float = 0.2, overwrite: bool = False,
                   progress: bool | str = True) -> Path:
    """Write ``caption-scenes`` as a canonical dataset (PNG images) into ``out_dir``; returns ``out_dir``.

    Refuses an existing ``out_dir`` unless ``overwrite`` (``FileExistsError``); a failure leaves nothing under
    ``out_dir``.  The manifest's ``source`` records every generation argument and the generator version.
    """
    _validate(n_images, seed, size, n_captions, test_fraction)
    items = generate(n_images, seed=seed, size=size, n_captions=n_captions, test_fraction=test_fraction)
    return _shapes.write_generated(out_dir, "caption-scenes", items, n_images, seed, size, n_captions,
                                   test_fraction, GENERATOR_VERSION, ATTRIBUTE_SCHEMA, NUM_CLASSES, overwrite,
                                   progress)


# ------------------------------------------------------------------------------------------------------------
# Scoring: a per-cell classifier, its scene predictions, binding and relation accuracy
# ------------------------------------------------------------------------------------------------------------
CELL_HEADS: dict[str, int] = {"shape": N_SHAPES + 1, "colour": N_COLOURS + 1, "size": len(SIZES) + 1}  # last: empty


def cell_targets(attributes: dict[str, Any]) -> np.ndarray:
    """int64 (9, 3): per grid cell the (shape, colour, size) of its object, or the "empty" index of each head."""
    a = _attribute_indices(attributes)
    t = np.array([[N_SHAPES, N_COLOURS, len(SIZES)]] * 9, dtype=np.int64)
    for k in (0, 1, 2):
        if a[f"obj{k}_shape"] < N_SHAPES:
            t[a[f"obj{k}_position"]] = (a[f"obj{k}_shape"], a[f"obj{k}_colour"], a[f"obj{k}_size"])
    return t


_CLASSIFIER_CLASS = None


def _classifier_class():
    """The torch module class (built on first use, so that importing this module does not import torch)."""
    global _CLASSIFIER_CLASS
    if _CLASSIFIER_CLASS is not None:
        return _CLASSIFIER_CLASS
    import torch
    from torch import nn

    class SceneClassifier(nn.Module):
        """Reads each of the nine grid cells with one small shared CNN: empty, or the shape, colour and size of its
        object.  ``forward``: images B x 3 x H x W in [-1, 1] (resized to ``input_size``) -> {head: B x 9 x n}."""

        def __init__(self, width: int = 8, input_size: int = 48):
            super().__init__()
            self.width, self.input_size, self.cell = width, input_size, input_size // 3
            w, c = width, input_size // 3
            self.trunk = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                                       nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
                                       nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w),
                                       nn.ReLU(inplace=True), nn.Flatten())
            side = (c + 3) // 4
            self.hidden = nn.Sequential(nn.Linear(2 * w * side * side, 64), nn.ReLU(inplace=True))
            self.heads = nn.ModuleDict({k: nn.Linear(64, n) for k, n in CELL_HEADS.items()})

        def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
            if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
                images = nn.functional.interpolate(images, size=(self.input_size, self.input_size),
                                                   mode="bilinear", align_corners=False, antialias=True)
            b, c = images.shape[0], self.cell
            cells = images.reshape(b, 3, 3, c, 3, c).permute(0, 2, 4, 1, 3, 5).reshape(b * 9, 3, c, c)
            h = self.hidden(self.trunk(cells))
            return {k: head(h).reshape(b, 9, -1) for k, head in self.heads.items()}

    _CLASSIFIER_CLASS = SceneClassifier
    return SceneClassifier


def scene_classifier(width: int = 8, input_size: int = 48):
    """A new, untrained per-cell scene classifier (a ``torch.nn.Module``; ``input_size`` a multiple of 3)."""
    width = _check_int("width", width, 1)
    input_size = _check_int("input_size", input_size, 12)
    if input_size % 3:
        raise ValueError(f"input_size must be a multiple of 3 (three grid cells per side), got {input_size}")
    return _classifier_class()(width, input_size)


def images_to_tensor(images: np.ndarray | Sequence[np.ndarray]):
    """uint8 images (N, H, W, 3) -> float tensor N x 3 x H x W in [-1, 1] (the project's image convention)."""
    import torch

    arr = np.ascontiguousarray(np.stack(list(images)) if not isinstance(images, np.ndarray) else images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {arr.dtype} {arr.shape}")
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _as_tensor(images):
    import torch

    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"image tensors must be N x 3 x H x W in [-1, 1], got shape {tuple(images.shape)}")
        return images.float()
    return images_to_tensor(images)


def fit_scene_classifier(images, attributes: Sequence[dict[str, Any]], epochs: int = 6, batch_size: int = 64,
                         width: int = 8, input_size: int = 48, lr: float = 3e-3, seed: int = 0, device="cpu"):
    """Train a :func:`scene_classifier` on real images (uint8 (N, H, W, 3) or a float tensor in [-1, 1]) and their
    flat ground truth; returns the model in eval mode.  Seeded (initialisation and batch order)."""
    import torch

    x = _as_tensor(images)
    if len(attributes) != x.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {len(attributes)} attribute dicts")
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    y = torch.from_numpy(np.stack([cell_targets(a) for a in attributes]))   # N x 9 x 3
    torch.manual_seed(int(seed))
    model = scene_classifier(width, input_size).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng([int(seed), 31])
    heads = list(CELL_HEADS)
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(x.shape[0]))
        for s in range(0, x.shape[0], batch_size):
            idx = order[s:s + batch_size]
            logits = model(x[idx].to(device))
            t = y[idx].to(device)
            loss = sum(torch.nn.functional.cross_entropy(logits[h].reshape(-1, logits[h].shape[-1]),
                                                         t[:, :, j].reshape(-1)) for j, h in enumerate(heads))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def predict_objects(model, images, device="cpu", batch_size: int = 256) -> list[list[dict[str, int]]]:
    """Per image, the objects the classifier sees: one dict (``shape``, ``colour``, ``size``, ``position``) per cell
    whose shape head does not answer "empty" (colour and size then taken among the non-empty values)."""
    import torch

    x = _as_tensor(images)
    out: list[list[dict[str, int]]] = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            logits = model(x[s:s + batch_size].to(device))
            shape = logits["shape"].argmax(-1).cpu().numpy()
            colour = logits["colour"][..., :N_COLOURS].argmax(-1).cpu().numpy()
            size = logits["size"][..., :len(SIZES)].argmax(-1).cpu().numpy()
            for b in range(shape.shape[0]):
                out.append([{"shape": int(shape[b, c]), "colour": int(colour[b, c]), "size": int(size[b, c]),
                             "position": c} for c in range(9) if shape[b, c] < N_SHAPES])
    return out


def predict_scenes(model, images, device="cpu", batch_size: int = 256) -> list[dict[str, int]]:
    """Per image, the predicted flat ground truth (:func:`scene_attributes` of :func:`predict_objects`)."""
    return [scene_attributes(objs) for objs in predict_objects(model, images, device, batch_size)]


def scene_scores(predicted: Sequence[dict[str, int]], truth: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Binding and relation accuracy of predicted scenes against their ground truth (flat attribute dicts).

    - ``binding_accuracy``: both pair objects have the right shape *and* colour (the roles are canonical, so a
      scene whose two objects swapped their shapes fails, one whose objects swapped places does not);
    - ``relation_accuracy``: the two pair objects, recognised by their colours, stand in the right relation (the
      object of ``obj0``'s colour is to the left of / right of / above / below the object of ``obj1``'s colour);
    - ``scene_accuracy``: both; ``per_attribute``: the accuracy of each attribute of the schema.

    A generator that knows the colours, the shapes and the axis of the relation but pairs colours with shapes and
    orders the two objects at random scores 0.5 on both, read by a perfect classifier.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} ground-truth scenes")
    if not truth:
        raise ValueError("scene_scores needs at least one scene")
    truth = [_attribute_indices(t) for t in truth]
    hits = {k: [] for k in ATTRIBUTE_SCHEMA}
    binding, relation = [], []
    for p, t in zip(predicted, truth):
        for k in ATTRIBUTE_SCHEMA:
            hits[k].append(int(p.get(k, -1)) == t[k])
        same = {k: int(p.get(k, -1)) == t[k] for k in ("obj0_shape", "obj0_colour", "obj1_shape", "obj1_colour",
                                                         "relation")}
        binding.append(same["obj0_shape"] and same["obj0_colour"] and same["obj1_shape"] and same["obj1_colour"])
        relation.append(same["relation"] and same["obj0_colour"] and same["obj1_colour"])
    b, r = np.array(binding), np.array(relation)
    return {"binding_accuracy": float(b.mean()), "relation_accuracy": float(r.mean()),
            "scene_accuracy": float((b & r).mean()),
            "per_attribute": {k: float(np.mean(v)) for k, v in hits.items()}, "n": len(truth)}


def _load_split(root: Path, split: str) -> tuple[np.ndarray, list[dict[str, int]]]:
    from .dataset import read_records
    from .images import load_rgb

    recs = [r for r in read_records(root) if r["split"] == split]
    if not recs:
        raise ValueError(f"{root}: split {split!r} is empty")
    if any("attributes" not in r or "obj0_shape" not in r["attributes"] for r in recs):
        raise ValueError(f"{root} is not a caption-scenes dataset (its records lack the scene attributes)")
    return np.stack([np.asarray(load_rgb(root / r["image"])) for r in recs]), [r["attributes"] for r in recs]


def train_scene_classifier(dataset_root: str | Path, device="cpu", epochs: int = 6, batch_size: int = 64,
                           width: int = 8, input_size: int = 48, lr: float = 3e-3, seed: int = 0,
                           max_train: int = 0):
    """Train the scene classifier on the real training images of a caption-scenes dataset; returns (model in eval
    mode, report with its :func:`scene_scores` on the real *test* images)."""
    root = Path(dataset_root)
    t0 = time.time()
    images, attrs = _load_split(root, "train")
    if max_train:
        images, attrs = images[:max_train], attrs[:max_train]
    model = fit_scene_classifier(images, attrs, epochs=epochs, batch_size=batch_size, width=width,
                                 input_size=input_size, lr=lr, seed=seed, device=device)
    test_images, test_attrs = _load_split(root, "test")
    scores = scene_scores(predict_scenes(model, test_images, device), test_attrs)
    report = {"width": width, "input_size": input_size, "epochs": epochs, "n_train": len(attrs), "seed": seed,
              "real_test": scores, "seconds": time.time() - t0}
    return model, report
