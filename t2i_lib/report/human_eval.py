"""Human evaluation of semantic consistency: a blinded study page, simulated raters and the analysis.

Layout under ``results/<profile>/human_eval/`` (``out_dir``)::

    study/              share this folder: index.html (self-contained, works from file://) and images/
    study_key.json      the unblinding key (which arm is behind option a/b of each trial): keep it, do not share
    answers/            put the raters' downloaded JSON files here
    simulated/          answer files written by simulated raters (used when answers/ is empty)
    results.json, summary.md, human_eval.png, screenshot_*.png

**Trials.**  Every test item contributes, for every pair of arms, a *consistency* trial (each side shows one
arm's two images generated from two sibling captions of the item with the same noise: which side's two images
show the same thing more clearly?) and a *faithfulness* trial (each side shows one arm's image for one caption:
which matches the caption better?).  Attention checks look the same to the rater: an identical pair (a real
image twice) against a mismatched one (the real image and a real image of another class), and the real image of
the caption against a real image of an unrelated caption.

**Blinding.**  The page knows trials only by opaque ids and options ``a``/``b`` (which arm is ``a`` is drawn per
trial); image files are named by a hash of their content.  Per rater id the trial order and the side each
option is shown on come from a seeded generator that the page (JavaScript) and :func:`rater_schedule` (Python)
implement identically; the analysis checks every answer file against it.

**Analysis.**  :func:`load_answers` refuses malformed, duplicated and foreign (another study version) files with a
message naming the file and the reason; :func:`analyse` excludes raters below the attention threshold (reported),
gives per pair of arms and trial kind the win rate with a Wilson 95 % interval and an exact two-sided binomial
test against 0.5 ("can't tell" answers are counted and reported, and left out of both), a Bradley-Terry ranking
with three or more arms, and the inter-rater agreement (Krippendorff's alpha, nominal; Fleiss' kappa over the
trials every included rater answered).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
import re
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..utils.io import atomic_write_bytes, atomic_write_text, canonical_json, read_json, write_json

log = logging.getLogger(__name__)

STUDY_FORMAT = "t2i-human-eval-study/1"
KEY_FORMAT = "t2i-human-eval-key/1"
ANSWERS_FORMAT = "t2i-human-eval-answers/1"
RESULTS_FORMAT = "t2i-human-eval-results/1"
KINDS = ("consistency", "faithfulness")
ANSWERS = ("left", "right", "cant_tell")
RATER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
Z95 = 1.959963984540054


class AnswerFileError(ValueError):
    """One or more answer files were refused; the message names each file and why."""


class StudyError(ValueError):
    """A study cannot be built or rebuilt as asked."""


# ------------------------------------------------------------------------------------------------------------
# The seeded per-rater schedule (the page's JavaScript implements the same arithmetic)
# ------------------------------------------------------------------------------------------------------------
def _fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def _imul(a: int, b: int) -> int:
    return (a * b) & 0xFFFFFFFF


def _mulberry32(seed: int):
    state = seed & 0xFFFFFFFF

    def nxt() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = _imul(state ^ (state >> 15), 1 | state)
        t = ((t + _imul(t ^ (t >> 7), 61 | t)) & 0xFFFFFFFF) ^ t
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return nxt


def rater_schedule(version: str, rater_id: str, trial_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The order in which the page shows the trials to ``rater_id`` and the option shown on the left of each:
    ``[{"trial": id, "position": k, "shown": ["a", "b"] or ["b", "a"]}, ...]``."""
    rng = _mulberry32(_fnv1a32(f"{version}|{rater_id}"))
    order = list(range(len(trial_ids)))
    for k in range(len(order) - 1, 0, -1):
        j = math.floor(rng() * (k + 1))
        order[k], order[j] = order[j], order[k]
    out = []
    for pos, idx in enumerate(order):
        left = "a" if rng() < 0.5 else "b"
        out.append({"trial": trial_ids[idx], "position": pos, "shown": [left, "b" if left == "a" else "a"]})
    return out


# ------------------------------------------------------------------------------------------------------------
# Material: the images of each arm for each test item (from trained runs)
# ------------------------------------------------------------------------------------------------------------
def material_from_runs(configs: Sequence, dataset_root, device, n_items: int = 8, seed: int = 0,
                       arm_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Sample the study's images from trained runs (one config per arm, all of the same dataset and DAMSM).

    For ``n_items`` test images with at least two captions (chosen as the consistency metric chooses them), two
    sibling captions each; every arm generates an image from each caption with the *same* noise: the noise of
    item ``g`` is drawn from a generator seeded ``seed + g``, so arms differ only by the model.  Also the real
    image and, for attention checks, a real image (and caption) of an item of another class.
    """
    import torch

    from ..data.dataset import CaptionDataset
    from ..metrics.consistency import consistency_plan
    from ..metrics.sampling import generate, sample_noise
    from ..train.damsm import encoder_path, load_encoders
    from ..train.gan import get_family, load_generator, run_dir_for

    cfg0 = configs[0]
    names = list(arm_names) if arm_names is not None else [c.experiment for c in configs]
    if len(names) != len(configs) or len(set(names)) != len(names):
        raise StudyError(f"arms need distinct names, one per config: {names}")
    if len(names) < 2:
        raise StudyError("a comparison needs at least two arms")
    size = cfg0.data.image_size
    test = CaptionDataset(dataset_root, "test", (size,), 1, cfg0.data.max_words, "truncate")
    text_enc, _, _ = load_encoders(encoder_path(cfg0), device, vocab_hash=test.vocab.hash)
    plan = consistency_plan(test, n_items, 2, seed)
    items, caps = plan["sib_items"], plan["sib_caps"]
    others = plan["unrel_items"][:, 0]
    other_caps = plan["unrel_caps"][:, 0]
    out_items = []
    for g in range(items.shape[0]):
        i = int(items[g, 0])
        rec, orec = test.records[i], test.records[int(others[g])]
        out_items.append({"key": rec["key"], "captions": [rec["captions"][int(c)] for c in caps[g]],
                          "real": _real_image(test, i, size), "other_real": _real_image(test, int(others[g]), size),
                          "other_key": orec["key"], "other_caption": orec["captions"][int(other_caps[g])],
                          "generated": {}})
    for name, c in zip(names, configs):
        summary = read_json(run_dir_for(c) / "summary.json")
        G, _ = load_generator(summary["checkpoint"], device)
        fam = get_family(c.model.family)
        z_dim = fam.noise_dim(c)
        z = sample_noise(range(items.shape[0]), z_dim, seed).repeat_interleave(2, dim=0)
        with torch.no_grad():
            imgs = torch.cat(list(generate(G, fam.generate, text_enc, test, items.ravel(), caps.ravel(), z_dim, seed,
                                           device, batch_size=16, noise=z)))
        arr = imgs.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for g, it in enumerate(out_items):
            it["generated"][name] = [arr[2 * g], arr[2 * g + 1]]
        del G
    return {"arms": names, "items": out_items, "seed": int(seed), "image_size": int(size),
            "runs": {n: c.run_id for n, c in zip(names, configs)}, "profile": cfg0.profile}


def toy_material(arms: Sequence[str], n_items: int = 4, size: int = 32, seed: int = 0) -> dict[str, Any]:
    """Material without trained runs (tests, a dry run of the page): ``caption-shapes`` pictures rendered by the
    synthetic generator; arm ``k`` "generates" the picture with noise of standard deviation ``40 k`` grey levels."""
    from ..data.synthetic import describe, render, sample_params

    rng = np.random.default_rng([int(seed), 99])
    items = []
    for g in range(n_items):
        par, other = sample_params(seed, 2 * g), sample_params(seed, 2 * g + 1)
        real, other_real = render(par, size), render(other, size)
        text = describe(par)
        caps = [text, text.replace("a ", "there is a ", 1)]
        gen = {}
        for k, a in enumerate(arms):
            gen[a] = [np.clip(real.astype(float) + rng.normal(0, 40 * k, real.shape), 0, 255).astype(np.uint8)
                      for _ in range(2)]
        items.append({"key": f"toy_{g:03d}", "captions": caps, "real": real, "other_real": other_real,
                      "other_key": f"toy_{g:03d}_other", "other_caption": describe(other), "generated": gen})
    return {"arms": list(arms), "items": items, "seed": int(seed), "image_size": int(size)}


def _real_image(dataset, index: int, size: int) -> np.ndarray:
    from PIL import Image

    im = dataset.load_image(index).convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


# ------------------------------------------------------------------------------------------------------------
# Building the study folder
# ------------------------------------------------------------------------------------------------------------
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build_study(material: Mapping[str, Any], out_dir, seed: int = 0, n_attention: int = 4,
                min_attention: float = 0.75, title: str = "Which images agree?", force: bool = False,
                kinds: Sequence[str] = KINDS) -> dict[str, Any]:
    """Write the blinded study into ``out_dir`` (``study/``, ``study_key.json``, ``answers/``); returns the key.

    ``material``: ``{"arms": [...], "items": [{"key", "captions": [c1, c2], "real", "other_real",
    "other_caption", "generated": {arm: [img_c1, img_c2]}}]}`` with uint8 H x W x 3 images (see
    :func:`material_from_runs`).  ``n_attention`` attention checks alternate between the two kinds; a rater whose
    share of correct attention answers is below ``min_attention`` is excluded by the analysis.

    Rebuilding with identical inputs gives the identical page (same version).  If ``out_dir`` already holds a
    study of another version *and* answer files, it is left alone unless ``force`` (the old key would be lost).
    """
    out = Path(out_dir)
    arms = list(material["arms"])
    items = list(material["items"])
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise StudyError(f"need two or more distinct arms, got {arms}")
    if not items:
        raise StudyError("no items")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise StudyError(f"unknown trial kinds {bad} (known: {KINDS})")
    for it in items:
        missing = [a for a in arms if a not in it["generated"]]
        if missing or len(it["captions"]) < 2:
            raise StudyError(f"item {it.get('key')}: needs two captions and images of every arm (missing {missing})")
    rng = np.random.default_rng([int(seed), 1717])
    images: dict[str, bytes] = {}

    def img(arr) -> str:
        data = _png(arr)
        name = hashlib.sha256(data).hexdigest()[:20] + ".png"
        images[name] = data
        return "images/" + name

    trials, key_trials = [], []
    pairs = list(itertools.combinations(arms, 2))
    for g, it in enumerate(items):
        for pi, (x, y) in enumerate(pairs):
            flip = bool(rng.integers(2))
            arm_a, arm_b = (y, x) if flip else (x, y)
            for kind in kinds:
                if kind == "consistency":
                    caps = list(it["captions"][:2])
                    opts = {"a": [img(v) for v in it["generated"][arm_a][:2]],
                            "b": [img(v) for v in it["generated"][arm_b][:2]]}
                    cap_idx = [0, 1]
                else:
                    c = (g + pi) % 2
                    caps = [it["captions"][c]]
                    opts = {"a": [img(it["generated"][arm_a][c])], "b": [img(it["generated"][arm_b][c])]}
                    cap_idx = [c]
                trials.append({"kind": kind, "captions": caps, "options": opts})
                key_trials.append({"kind": kind, "attention": False, "item": it["key"], "caption_index": cap_idx,
                                   "options": {"a": arm_a, "b": arm_b}, "correct": None})
    for j in range(n_attention):
        it = items[j % len(items)]
        kind = kinds[j % len(kinds)]
        good = "a" if rng.integers(2) == 0 else "b"
        bad_opt = "b" if good == "a" else "a"
        if kind == "consistency":
            caps = list(it["captions"][:2])
            same = img(it["real"])
            opts = {good: [same, same], bad_opt: [img(it["real"]), img(it["other_real"])]}
            what = "identical real pair vs real image and a real image of another class"
        else:
            caps = [it["captions"][0]]
            opts = {good: [img(it["real"])], bad_opt: [img(it["other_real"])]}
            what = "real image of the caption vs real image of an unrelated caption"
        trials.append({"kind": kind, "captions": caps, "options": {"a": opts["a"], "b": opts["b"]}})
        key_trials.append({"kind": kind, "attention": True, "item": it["key"], "other_item": it.get("other_key"),
                           "check": what, "options": {"a": None, "b": None}, "correct": good})
    ids = _opaque_ids(rng, len(trials))
    for t, kt, tid in zip(trials, key_trials, ids):
        t["id"] = tid
        kt["id"] = tid
    order = rng.permutation(len(trials))  # page order of the spec (raters see their own shuffles of it)
    trials = [trials[i] for i in order]
    key_trials = [key_trials[i] for i in order]
    page_trials = [{"id": t["id"], "kind": t["kind"], "captions": t["captions"], "options": t["options"]}
                   for t in trials]

    css, js, tmpl = _asset("human_eval_page.css"), _asset("human_eval_page.js"), _asset("human_eval_page.tmpl")
    spec = {"format": STUDY_FORMAT, "title": title, "trials": page_trials}
    version = hashlib.sha256((canonical_json(spec) + css + js + tmpl).encode("utf-8")).hexdigest()[:16]
    spec = {"format": STUDY_FORMAT, "version": version, "title": title, "trials": page_trials}
    study_json = json.dumps(spec, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    html = (tmpl.replace("{{CSS}}", css).replace("{{JS}}", js).replace("{{TITLE}}", _html_escape(title))
            .replace("{{VERSION}}", version).replace("{{STUDY_JSON}}", study_json))

    key_path = out / "study_key.json"
    answers_dir = out / "answers"
    if key_path.is_file() and not force:
        old = read_json(key_path).get("version")
        held = sorted(answers_dir.glob("*.json")) if answers_dir.is_dir() else []
        if old != version and held:
            raise StudyError(f"{out} holds study {old} with {len(held)} answer file(s) in answers/; rebuilding would "
                             f"replace its key with study {version}. Move the answers and the key away, or pass "
                             "force=True (FORCE) to overwrite")
    study = out / "study"
    if study.exists():
        shutil.rmtree(study)
    (study / "images").mkdir(parents=True)
    for name, data in images.items():
        (study / "images" / name).write_bytes(data)
    atomic_write_text(study / "index.html", html)
    atomic_write_text(study / "README.txt",
                      "Open index.html in a web browser (double-click it; no internet needed). Enter the rater id\n"
                      "you were given, answer every trial, then download your answers file and send it back.\n")
    answers_dir.mkdir(parents=True, exist_ok=True)
    key = {"format": KEY_FORMAT, "version": version, "title": title, "arms": arms, "seed": int(seed),
           "n_items": len(items), "n_attention": int(n_attention), "min_attention": float(min_attention),
           "kinds": list(kinds), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "material": {k: material[k] for k in ("runs", "profile", "image_size", "seed") if k in material},
           "trials": key_trials}
    write_json(key_path, key)
    return key


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _opaque_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        t = "t" + "".join(f"{b:02x}" for b in rng.integers(0, 256, size=5))
        if t not in ids:
            ids.append(t)
    return ids


def ensure_study(configs: Sequence, dataset_root, device, out_dir, n_items: int = 8, seed: int = 0,
                 n_attention: int = 4, min_attention: float = 0.75, force: bool = False) -> dict[str, Any]:
    """The study of ``out_dir``: when it already holds a key and answer files in ``answers/``, that study is kept
    as it is (its raters answered that page; nothing is sampled) unless ``force``; otherwise the images are
    sampled from the runs (:func:`material_from_runs`) and the study is (re)built (:func:`build_study`)."""
    out = Path(out_dir)
    held = sorted((out / "answers").glob("*.json")) if (out / "answers").is_dir() else []
    if held and (out / "study_key.json").is_file() and not force:
        key = load_key(out)
        names = [c.experiment for c in configs]
        if key["arms"] != names:
            raise StudyError(f"{out} holds answers to a study of arms {key['arms']}, not {names}: analyse it with "
                             "those arms, or move answers/ and study_key.json away (or FORCE to rebuild)")
        log.info("kept the study %s: answers/ holds %d answer file(s)", key["version"], len(held))
        return key
    material = material_from_runs(configs, dataset_root, device, n_items=n_items, seed=seed)
    return build_study(material, out, seed=seed, n_attention=n_attention, min_attention=min_attention, force=force)


def load_key(out_dir_or_key) -> dict[str, Any]:
    p = Path(out_dir_or_key)
    p = p / "study_key.json" if p.is_dir() else p
    key = read_json(p)
    if key.get("format") != KEY_FORMAT:
        raise StudyError(f"{p} is not a study key ({KEY_FORMAT})")
    return key


# ------------------------------------------------------------------------------------------------------------
# Simulated raters
# ------------------------------------------------------------------------------------------------------------
def simulate_answers(key: Mapping[str, Any], out_dir, n_raters: int = 12, p: float = 0.7,
                     arm_scores: Mapping[str, float] | None = None, attention_fail_rate: float = 0.2,
                     tie_rate: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Write ``n_raters`` answer files (the page's format and per-rater schedule) into ``out_dir``.

    An attentive rater answers "can't tell" with probability ``tie_rate`` and otherwise picks the arm with the
    higher ``arm_scores`` with probability ``p`` (equal scores: a coin flip); attention checks are answered
    correctly.  ``round(attention_fail_rate * n_raters)`` inattentive raters answer every trial uniformly at random
    among left, right and can't tell.  Default scores: the key's arms in decreasing order (the first preferred).
    Returns the truth (written beside as ``simulation_truth.json``, never into ``out_dir``).
    """
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    arms = key["arms"]
    scores = dict(arm_scores) if arm_scores else {a: float(len(arms) - i) for i, a in enumerate(arms)}
    rng = np.random.default_rng([int(seed), 7001])
    n_bad = int(round(attention_fail_rate * n_raters))
    bad = set(rng.choice(n_raters, size=n_bad, replace=False).tolist()) if n_bad else set()
    by_id = {t["id"]: t for t in key["trials"]}
    ids = [t["id"] for t in key["trials"]]
    raters = []
    for r in range(n_raters):
        rid = f"sim-{seed}-{r:03d}"
        answers = []
        for step in rater_schedule(key["version"], rid, ids):
            t = by_id[step["trial"]]
            shown = step["shown"]
            if r in bad:
                ans = ANSWERS[int(rng.integers(3))]
            elif t["attention"]:
                ans = "left" if shown[0] == t["correct"] else "right"
            elif rng.random() < tie_rate:
                ans = "cant_tell"
            else:
                sa, sb = scores[t["options"]["a"]], scores[t["options"]["b"]]
                if sa == sb:
                    pick = "a" if rng.random() < 0.5 else "b"
                else:
                    better, worse = ("a", "b") if sa > sb else ("b", "a")
                    pick = better if rng.random() < p else worse
                ans = "left" if shown[0] == pick else "right"
            chosen = shown[0] if ans == "left" else shown[1] if ans == "right" else None
            answers.append({"trial": step["trial"], "position": step["position"], "shown": shown, "answer": ans,
                            "chosen": chosen, "rt_ms": round(float(rng.lognormal(7.6, 0.5)), 1)})
        doc = {"format": ANSWERS_FORMAT, "study_version": key["version"], "rater_id": rid,
               "started_at": None, "finished_at": None, "n_trials": len(ids), "complete": True,
               "page": {"user_agent": "simulated rater (t2i_lib.report.human_eval)", "viewport": [0, 0]},
               "answers": answers}
        write_json(out / f"answers-{rid}.json", doc)
        raters.append({"rater_id": rid, "attentive": r not in bad})
    truth = {"n_raters": n_raters, "p": p, "tie_rate": tie_rate, "attention_fail_rate": attention_fail_rate,
             "arm_scores": scores, "seed": seed, "raters": raters,
             "inattentive": sorted(x["rater_id"] for x in raters if not x["attentive"])}
    write_json(out.parent / "simulation_truth.json", truth)
    return truth


# ------------------------------------------------------------------------------------------------------------
# Loading answer files
# ------------------------------------------------------------------------------------------------------------
def _check_answers(doc: Any, key: Mapping[str, Any], by_id: Mapping[str, Any]) -> list[str]:
    """Problems of one parsed answer file (empty: accepted)."""
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    if doc.get("format") != ANSWERS_FORMAT:
        return [f"not an answers file of this study page (format {doc.get('format')!r}, expected {ANSWERS_FORMAT!r})"]
    if doc.get("study_version") != key["version"]:
        return [f"foreign: answers to study version {doc.get('study_version')!r}, this study is {key['version']!r} "
                "(a rebuilt or another study's page)"]
    rid = doc.get("rater_id")
    if not isinstance(rid, str) or not RATER_RE.match(rid):
        return [f"rater_id {rid!r} is missing or not 1-40 letters, digits, '.', '-' or '_'"]
    ans = doc.get("answers")
    if not isinstance(ans, list) or not ans:
        return ["no answers (the 'answers' list is missing or empty)"]
    sched = {s["trial"]: s for s in rater_schedule(key["version"], rid, [t["id"] for t in key["trials"]])}
    problems, seen = [], set()
    for k, a in enumerate(ans):
        where = f"answer {k}"
        if not isinstance(a, dict):
            problems.append(f"{where}: not an object")
            continue
        tid = a.get("trial")
        if tid not in by_id:
            problems.append(f"{where}: unknown trial {tid!r}")
            continue
        if tid in seen:
            problems.append(f"{where}: trial {tid} answered twice")
            continue
        seen.add(tid)
        if a.get("answer") not in ANSWERS:
            problems.append(f"{where}: answer {a.get('answer')!r} is not one of {ANSWERS}")
            continue
        shown = a.get("shown")
        if shown != sched[tid]["shown"] or a.get("position") != sched[tid]["position"]:
            problems.append(f"{where}: trial {tid} position/sides {a.get('position')!r}/{shown!r} differ from the "
                            f"page's schedule for rater {rid} ({sched[tid]['position']}/{sched[tid]['shown']}): "
                            "an edited file?")
            continue
        want = shown[0] if a["answer"] == "left" else shown[1] if a["answer"] == "right" else None
        if a.get("chosen") != want:
            problems.append(f"{where}: chosen {a.get('chosen')!r} contradicts answer {a['answer']!r} with sides {shown}")
        rt = a.get("rt_ms")
        if isinstance(rt, bool) or not isinstance(rt, (int, float)) or not math.isfinite(rt) or rt < 0:
            problems.append(f"{where}: rt_ms {rt!r} is not a finite non-negative number")
    return problems


def load_answers(files: Iterable, key: Mapping[str, Any], strict: bool = True) -> tuple[list[dict], list[dict]]:
    """Read answer files; returns (accepted, refused).

    Refused: unreadable or not JSON, not this page's format, foreign (another study version), malformed (unknown
    or repeated trials, impossible sides, a schedule that is not the page's for that rater id, bad times), or
    duplicated (a byte-identical file, or a rater id already seen in another file).  With ``strict`` (default)
    any refusal raises :class:`AnswerFileError` listing every refused file and its reason; otherwise the refused
    files are returned with their reasons (the analysis reports them).
    """
    by_id = {t["id"]: t for t in key["trials"]}
    accepted: list[dict] = []
    refused: list[dict] = []
    hashes: dict[str, str] = {}
    raters: dict[str, str] = {}
    for f in sorted(Path(x) for x in files):
        try:
            raw = f.read_bytes()
        except OSError as e:
            refused.append({"file": str(f), "reasons": [f"unreadable: {e}"]})
            continue
        digest = hashlib.sha256(raw).hexdigest()
        if digest in hashes:
            refused.append({"file": str(f), "reasons": [f"duplicated: identical to {hashes[digest]}"]})
            continue
        hashes[digest] = f.name
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            refused.append({"file": str(f), "reasons": [f"malformed: not JSON ({e})"]})
            continue
        problems = _check_answers(doc, key, by_id)
        if problems:
            refused.append({"file": str(f), "reasons": problems})
            continue
        rid = doc["rater_id"]
        if rid in raters:
            refused.append({"file": str(f), "reasons": [f"duplicated: rater {rid} already answered in {raters[rid]}"]})
            continue
        raters[rid] = f.name
        accepted.append({"file": str(f), "rater_id": rid, "answers": doc["answers"],
                         "complete": len(doc["answers"]) == len(by_id), "doc": doc})
    if strict and refused:
        lines = [f"  {r['file']}: " + "; ".join(r["reasons"][:5]) + (" ..." if len(r["reasons"]) > 5 else "")
                 for r in refused]
        raise AnswerFileError(f"{len(refused)} answer file(s) refused (fix or remove them; nothing was analysed):\n"
                              + "\n".join(lines))
    return accepted, refused


# ------------------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------------------
def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (nan, nan when n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    phat = k / n
    den = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / den
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial test of k successes in n against p = 0.5 (1.0 when n = 0)."""
    if n <= 0:
        return 1.0
    m = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(m + 1)) / 2 ** n
    return min(1.0, 2 * tail) if 2 * m != n else 1.0


def bradley_terry(wins: np.ndarray, names: Sequence[str], prior: float = 0.5, iters: int = 10000,
                  tol: float = 1e-12) -> dict[str, Any]:
    """Bradley-Terry strengths from ``wins[i, j]`` (times i beat j) by Hunter's MM algorithm.

    ``prior`` pseudo-wins are added each way for every pair that was compared (keeps an arm that never won
    finite).  Returns log-strengths centred at 0, the ranking (strongest first) and the model's P(i beats j).
    """
    w = np.asarray(wins, dtype=float)
    m = w.shape[0]
    comp = (w + w.T) > 0
    w = w + prior * comp
    n = w + w.T
    p = np.ones(m)
    for _ in range(iters):
        tot = w.sum(1)
        den = np.array([sum(n[i, j] / (p[i] + p[j]) for j in range(m) if j != i and n[i, j] > 0) for i in range(m)])
        new = np.where(den > 0, tot / np.where(den > 0, den, 1), p)
        new = new / np.exp(np.mean(np.log(new)))
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    logp = np.log(p)
    order = np.argsort(-logp, kind="stable")
    prob = p[:, None] / (p[:, None] + p[None, :])
    return {"arms": list(names), "log_strength": {names[i]: float(logp[i]) for i in range(m)},
            "ranking": [names[i] for i in order], "prior_pseudo_wins": prior,
            "p_beats": {names[i]: {names[j]: float(prob[i, j]) for j in range(m) if j != i} for i in range(m)}}


def krippendorff_alpha_nominal(units: Sequence[Sequence[Any]]) -> float:
    """Krippendorff's alpha for nominal data; ``units``: the values each unit received (missing ones left out).
    Units with fewer than two values are not pairable and are ignored.  nan when there is no variation."""
    units = [list(u) for u in units if len(u) >= 2]
    cats = sorted({v for u in units for v in u}, key=str)
    if not units or len(cats) < 2:
        return float("nan")
    idx = {c: i for i, c in enumerate(cats)}
    o = np.zeros((len(cats), len(cats)))
    for u in units:
        cnt = np.zeros(len(cats))
        for v in u:
            cnt[idx[v]] += 1
        mu = len(u)
        o += (np.outer(cnt, cnt) - np.diag(cnt)) / (mu - 1)
    nc = o.sum(1)
    n = nc.sum()
    d_o = (n - np.trace(o))
    d_e = (n * n - (nc ** 2).sum()) / (n - 1)
    if d_e == 0:
        return float("nan")
    return float(1 - d_o / d_e)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an items x categories matrix of rater counts (the same number of raters per item)."""
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2 or c.shape[0] == 0:
        return float("nan")
    m = c.sum(1)
    if not np.all(m == m[0]) or m[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item")
    m = m[0]
    p_i = ((c * c).sum(1) - m) / (m * (m - 1))
    p_j = c.sum(0) / c.sum()
    pe = float((p_j ** 2).sum())
    return float((p_i.mean() - pe) / (1 - pe)) if pe < 1 else float("nan")


# ------------------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------------------
def analyse(key: Mapping[str, Any], files: Iterable, strict: bool = True, min_attention: float | None = None,
            source: str = "answers") -> dict[str, Any]:
    """Analyse answer files against the study key (see the module docstring); returns the results dict."""
    accepted, refused = load_answers(files, key, strict=strict)
    by_id = {t["id"]: t for t in key["trials"]}
    thr = key.get("min_attention", 0.75) if min_attention is None else min_attention
    raters, included, excluded = [], [], []
    for a in accepted:
        att = [x for x in a["answers"] if by_id[x["trial"]]["attention"]]
        ok = sum(1 for x in att if x["chosen"] == by_id[x["trial"]]["correct"])
        share = ok / len(att) if att else float("nan")
        row = {"rater_id": a["rater_id"], "file": Path(a["file"]).name, "n_answers": len(a["answers"]),
               "complete": a["complete"], "attention_checks": len(att), "attention_correct": ok,
               "median_rt_ms": float(np.median([x["rt_ms"] for x in a["answers"]]))}
        if not att:
            row["excluded"] = "answered no attention check"
        elif share < thr:
            row["excluded"] = f"attention checks {ok}/{len(att)} correct (< {thr:.0%})"
        raters.append(row)
        (excluded if "excluded" in row else included).append(a)
    arms = list(key["arms"])
    ai = {a: i for i, a in enumerate(arms)}
    tallies: dict[tuple[str, str, str], list[int]] = {}
    wins = {k: np.zeros((len(arms), len(arms))) for k in ("all",) + tuple(key.get("kinds", KINDS))}
    unit_values: dict[str, list[str]] = {}
    for a in included:
        for x in a["answers"]:
            t = by_id[x["trial"]]
            if t["attention"]:
                continue
            unit_values.setdefault(x["trial"], []).append(x["chosen"] or "cant_tell")
            pa, pb = t["options"]["a"], t["options"]["b"]
            first, second = (pa, pb) if ai[pa] < ai[pb] else (pb, pa)
            for kind in (t["kind"], "all"):
                tl = tallies.setdefault((kind, first, second), [0, 0, 0])
                if x["chosen"] is None:
                    tl[2] += 1
                    continue
                winner = t["options"][x["chosen"]]
                tl[0 if winner == first else 1] += 1
                loser = second if winner == first else first
                wins[kind][ai[winner], ai[loser]] += 1
    pairwise = []
    for kind in tuple(key.get("kinds", KINDS)) + ("all",):
        for x, y in itertools.combinations(arms, 2):
            wa, wb, ties = tallies.get((kind, x, y), [0, 0, 0])
            n = wa + wb
            lo, hi = wilson_interval(wa, n)
            pairwise.append({"kind": kind, "arm_a": x, "arm_b": y, "wins_a": wa, "wins_b": wb, "cant_tell": ties,
                             "n": n, "win_rate_a": wa / n if n else float("nan"), "ci95": [lo, hi],
                             "p_value": binomial_two_sided(wa, n)})
    bt = None
    if len(arms) >= 3:
        bt = {k: bradley_terry(w, arms) for k, w in wins.items()}
    units = list(unit_values.values())
    full = [u for u in units if len(u) == len(included)]
    cats = ["a", "b", "cant_tell"]
    counts = np.array([[u.count(c) for c in cats] for u in full]) if full else np.zeros((0, 3))
    agreement = {"krippendorff_alpha_nominal": krippendorff_alpha_nominal(units),
                 "fleiss_kappa": fleiss_kappa(counts) if len(full) and len(included) >= 2 else float("nan"),
                 "n_units": len([u for u in units if len(u) >= 2]), "n_units_all_raters": len(full),
                 "n_raters": len(included), "categories": ["option a", "option b", "can't tell"]}
    return {"format": RESULTS_FORMAT, "study_version": key["version"], "arms": arms, "source": source,
            "min_attention": thr, "n_files": len(accepted) + len(refused), "refused": refused, "raters": raters,
            "included_raters": [a["rater_id"] for a in included],
            "excluded_raters": [{"rater_id": r["rater_id"], "reason": r["excluded"]} for r in raters
                                if "excluded" in r],
            "pairwise": pairwise, "bradley_terry": bt, "agreement": agreement}


def figure(results: Mapping[str, Any]):
    """Win rate of arm a over arm b with its Wilson 95 % interval, per pair of arms and trial kind."""
    from .figures import _plt

    plt = _plt()
    rows = [r for r in results["pairwise"] if r["n"] > 0]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * max(len(rows), 1) + 1.4))
    markers = {"consistency": "o", "faithfulness": "s", "all": "D"}
    for y, r in enumerate(rows):
        lo, hi = r["ci95"]
        ax.plot([lo, hi], [y, y], color="black", lw=1.5)
        ax.plot([r["win_rate_a"]], [y], marker=markers.get(r["kind"], "o"), color="black",
                markerfacecolor="white" if r["kind"] == "all" else "black", ms=6)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['arm_a']} vs {r['arm_b']} ({r['kind']}, n={r['n']})" for r in rows], fontsize=7)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of decided trials won by the first arm (Wilson 95 % interval)")
    ax.set_title(f"Human preference ({results['source']}, {len(results['included_raters'])} raters)", fontsize=9)
    fig.tight_layout()
    return fig


def _fmt(x: float, d: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def summary_markdown(results: Mapping[str, Any]) -> str:
    lines = [f"# Human evaluation ({results['source']})", "",
             f"Study version `{results['study_version']}`; arms: {', '.join(results['arms'])}. "
             f"{results['n_files']} answer file(s): {len(results['included_raters'])} rater(s) included, "
             f"{len(results['excluded_raters'])} excluded, {len(results['refused'])} file(s) refused.", ""]
    if results["excluded_raters"]:
        lines += ["Excluded raters: " + "; ".join(f"{r['rater_id']} ({r['reason']})"
                                                  for r in results["excluded_raters"]) + ".", ""]
    if results["refused"]:
        lines += ["Refused files: " + "; ".join(f"{Path(r['file']).name} ({r['reasons'][0]})"
                                                for r in results["refused"]) + ".", ""]
    lines += ["| kind | arm A | arm B | A wins | B wins | can't tell | A win rate | 95 % CI (Wilson) | p (binomial) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results["pairwise"]:
        lines.append(f"| {r['kind']} | {r['arm_a']} | {r['arm_b']} | {r['wins_a']} | {r['wins_b']} | {r['cant_tell']} "
                     f"| {_fmt(r['win_rate_a'])} | [{_fmt(r['ci95'][0])}, {_fmt(r['ci95'][1])}] "
                     f"| {'< 0.001' if r['p_value'] < 0.001 else _fmt(r['p_value'], 3)} |")
    bt = results.get("bradley_terry")
    if bt:
        b = bt["all"]
        lines += ["", "Bradley-Terry ranking (all trials): " + " > ".join(
            f"{a} ({b['log_strength'][a]:+.2f})" for a in b["ranking"]) + "."]
    ag = results["agreement"]
    lines += ["", f"Agreement between included raters: Krippendorff's alpha (nominal) "
              f"{_fmt(ag['krippendorff_alpha_nominal'])} over {ag['n_units']} trials; Fleiss' kappa "
              f"{_fmt(ag['fleiss_kappa'])} over the {ag['n_units_all_raters']} trials every included rater answered."]
    if results["source"] == "simulated":
        lines += ["", "**These are simulated raters** (no answer files in `answers/`): the numbers check the "
                  "pipeline, they say nothing about the models."]
        if results.get("simulation_check"):
            lines.append("Each 95 % interval covers the simulated raters' true win rate with probability 0.95, so with "
                         "several pairs of arms an occasional miss is expected:")
        for c in results.get("simulation_check") or []:
            lines.append(f"- simulated true win rate of {c['arm_a']} over {c['arm_b']}: {c['true_win_rate_a']:.2f}, "
                         f"estimated {_fmt(c['estimate'])} [{_fmt(c['ci95'][0])}, {_fmt(c['ci95'][1])}]: "
                         + ("covered" if c["covered"] else "NOT covered"))
    return "\n".join(lines) + "\n"


def simulation_check(results: Mapping[str, Any], truth: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per pair of arms (all trials): the simulated raters' true win rate of arm a (p, 1 - p or 0.5 from the arm
    scores) against the estimate, and whether the Wilson interval covers it."""
    sc, p = truth["arm_scores"], truth["p"]
    rows = []
    for r in results["pairwise"]:
        if r["kind"] != "all":
            continue
        a, b = sc[r["arm_a"]], sc[r["arm_b"]]
        want = p if a > b else (1 - p) if a < b else 0.5
        lo, hi = r["ci95"]
        rows.append({"arm_a": r["arm_a"], "arm_b": r["arm_b"], "true_win_rate_a": want,
                     "estimate": r["win_rate_a"], "ci95": [lo, hi], "covered": bool(lo <= want <= hi)})
    return rows


def arm_scores_from_metrics(configs: Sequence, metric: str = "attribute_accuracy",
                            arm_names: Sequence[str] | None = None) -> dict[str, float] | None:
    """Arm scores for the simulated raters: ``metric`` from each run's metrics file (notebook 03), or None
    (the simulator's default: the arms' order) when ``metric`` is empty or a file or value is missing."""
    from ..metrics.evaluate import metrics_path

    names = list(arm_names) if arm_names is not None else [c.experiment for c in configs]
    if not metric:
        return None
    out = {}
    for n, c in zip(names, configs):
        p = metrics_path(c)
        v = read_json(p).get("metrics", {}).get(metric) if p.is_file() else None
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        out[n] = float(v)
    return out


def answer_files(out_dir) -> tuple[list[Path], str]:
    """The answer files to analyse: ``answers/*.json`` when there are any, else ``simulated/*.json``."""
    out = Path(out_dir)
    real = sorted((out / "answers").glob("*.json")) if (out / "answers").is_dir() else []
    if real:
        return real, "answers"
    return sorted((out / "simulated").glob("*.json")) if (out / "simulated").is_dir() else [], "simulated"


def run_analysis(out_dir, strict: bool = True) -> dict[str, Any]:
    """Analyse the study in ``out_dir`` (real answers when present, else the simulated ones); writes
    ``results.json``, ``summary.md`` and ``human_eval.png`` there and returns the results (with their paths)."""
    from .figures import save

    out = Path(out_dir)
    key = load_key(out)
    files, source = answer_files(out)
    if not files:
        raise AnswerFileError(f"no answer files in {out / 'answers'} (nor simulated ones in {out / 'simulated'})")
    res = analyse(key, files, strict=strict, source=source)
    truth = out / "simulation_truth.json"
    if source == "simulated" and truth.is_file():
        res["simulation"] = read_json(truth)
        res["simulation_check"] = simulation_check(res, res["simulation"])
    write_json(out / "results.json", _json_safe(res))
    atomic_write_text(out / "summary.md", summary_markdown(res))
    fig_path = save(figure(res), out / "human_eval.png")
    import matplotlib.pyplot as plt

    plt.close("all")
    res["paths"] = {"results": str(out / "results.json"), "summary": str(out / "summary.md"),
                    "figure": str(fig_path)}
    return res


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------------------
# The page in a real browser (screenshots)
# ------------------------------------------------------------------------------------------------------------
VIEWPORTS = {"desktop": (1280, 720), "phone": (390, 844)}


def screenshots(study_dir, out_dir, rater_id: str = "preview", kind: str = "consistency",
                max_colors: int = 128, missing_ok: bool = False) -> dict[str, Path]:
    """Screenshots of the first ``kind`` trial the page shows ``rater_id``, at 1280x720 and at a phone's 390x844:
    ``screenshot_desktop.png`` and ``screenshot_phone.png`` in ``out_dir`` (palette PNGs, a few tens of kB).
    With ``missing_ok``, no Playwright or no Chromium returns {} with a logged note instead of raising."""
    from PIL import Image

    from ..utils.browser import launch_chromium, skip_reason

    reason = skip_reason()
    if reason and missing_ok:
        log.warning("no screenshots of the study page: %s", reason)
        return {}

    try:  # inside a Jupyter kernel an asyncio loop runs, where Playwright's sync API refuses to start
        import asyncio

        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as ex:
            return ex.submit(screenshots, study_dir, out_dir, rater_id, kind, max_colors, missing_ok).result()
    url = (Path(study_dir).resolve() / "index.html").as_uri() + f"?rater={rater_id}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shots = {}
    with launch_chromium() as browser:
        for name, (w, h) in VIEWPORTS.items():
            ctx = browser.new_context(viewport={"width": w, "height": h}, device_scale_factor=1)
            page = ctx.new_page()
            page.goto(url)
            page.click("#start")
            for _ in range(200):
                if page.get_attribute("#trial", "data-kind") == kind or page.is_visible("#done"):
                    break
                page.keyboard.press("ArrowDown")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            png = page.screenshot()
            ctx.close()
            im = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=max_colors)
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
            shots[name] = atomic_write_bytes(out / f"screenshot_{name}.png", buf.getvalue())
    return shots
