"""Evaluate one trained GAN run with one protocol: FID/KID (IS when possible), R-precision, semantic consistency,
attribute accuracy; write ``results/<profile>/metrics/<run_id>.json``.

Every number is traced: the JSON records the run's config and hash, the library version, the seed, and the
protocol (sample count, reference split and size, feature extractor and weights hash, DAMSM encoders).  Paths in
it are relative to the results directory (``results/<profile>/``), so a copied results directory stays readable.

Two DAMSM encoders score a run.  The *training encoder* (the one the G loss and the contrastive losses used)
gives ``r_precision`` and ``consistency_gap_damsm``: the paper's protocol, kept for comparison with published
numbers, but it is player and referee.  The *evaluation encoder* (the judge: same data and settings, its own seed,
selected on the validation split; :func:`t2i_lib.train.damsm.judge_config_for`) gives ``r_precision_judge`` and
``consistency_gap_judge``.  Generated images are always produced with the training encoder's text features (the
generator's conditioning).  On the synthetic data the attribute classifier is the primary judge.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, paths
from ..config import Config
from ..utils.io import canonical_json, read_json, sha256_hex, write_json

log = logging.getLogger(__name__)


def _rel(path, root: Path) -> str | None:
    """``path`` relative to the results directory ``root`` when it lies inside it (else as given)."""
    if path is None:
        return None
    p = Path(path)
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def _portable_fidelity(protocol: dict | None) -> dict | None:
    """The fidelity protocol with its weights file named relative to the project root (or by file name when it
    lies elsewhere); its sha256 identifies it."""
    if not protocol or not protocol.get("weights_path"):
        return protocol
    out = dict(protocol)
    p = Path(out["weights_path"])
    try:
        out["weights_path"] = p.resolve().relative_to(paths.PROJECT_ROOT).as_posix()
    except ValueError:
        out["weights_path"] = p.name
    return out


def portable_text(text: str | None) -> str | None:
    """``text`` (e.g. the reason IS is unavailable, which names the weights file) with this machine's project root
    and cache folder written as ``<repo>/`` and ``<cache>/``: a metrics file names no absolute path."""
    if text is None:
        return None
    for root, shown in ((paths.cache_root(), "<cache>"), (paths.PROJECT_ROOT, "<repo>")):
        text = text.replace(str(root) + "/", shown + "/")
    return text


def metrics_path(cfg: Config) -> Path:
    return paths.profile_dir(cfg.profile, cfg.run.results_dir) / "metrics" / f"{cfg.run_id}.json"


def variant_of(cfg: Config) -> str:
    """baseline | f2r | f2f | both from the loss weights; ``baseline1cap`` for the reference's single-caption
    baseline (``train.caption_sets="auto"`` without contrastive terms)."""
    w = cfg.train.losses
    v = {(False, False): "baseline", (False, True): "f2r", (True, False): "f2f", (True, True): "both"}[
        (w.f2f > 0, w.f2r > 0)]
    return f"{v}1cap" if cfg.captions_per_sample == 1 and v == "baseline" else v


def _eval_hash(cfg: Config) -> str:
    """The evaluation protocol's hash; the batch size is left out (results do not depend on it, tested)."""
    return sha256_hex(canonical_json({k: v for k, v in cfg.to_dict()["eval"].items() if k != "batch_size"}))[:16]


def pixel_judge_accuracy(fakes_u8: torch.Tensor, attributes: list[dict], mentions: list) -> dict[str, Any]:
    """Share of generated caption-shapes images whose colour / position, read by the training-free pixel judge
    (:func:`t2i_lib.data.synthetic.judge_colour_position`), is the one of the caption's image; each attribute is
    counted only where the caption mentions it.  ``{"colour", "position", "n_checks": {...}}`` (None where no
    caption mentions the attribute).  A second judge beside the attribute classifier: it depends on no trained
    network, so images off the real data's distribution (another background, saturated colours) do not fool it
    the way they can fool a classifier trained on real images only."""
    from ..data.synthetic import judge_colour_position

    colour, position = (t.numpy() for t in judge_colour_position(fakes_u8.float().div(127.5).sub(1)))
    out: dict[str, Any] = {"n_checks": {}}
    for name, pred in (("colour", colour), ("position", position)):
        hits = [int(pred[i] == a[name]) for i, (a, m) in enumerate(zip(attributes, mentions)) if name in m]
        out[name] = float(np.mean(hits)) if hits else None
        out["n_checks"][name] = len(hits)
    return out


def attribute_classifier(cfg: Config, dataset_root: str | Path, device):
    """The profile's attribute classifier (trained once per dataset, cached under runs/attrclf-<hash>/)."""
    from ..data.dataset import read_manifest
    from ..models.attribute_classifier import AttributeClassifier
    from .consistency import train_attribute_classifier

    m = read_manifest(dataset_root)
    key = sha256_hex(canonical_json({"records": m["records"].get("sha256"), "epochs": cfg.eval.attribute_epochs,
                                     "seed": cfg.eval.eval_seed}))[:8]
    run = paths.profile_dir(cfg.profile, cfg.run.results_dir) / "runs" / f"attrclf-{key}"
    if (run / "model.pt").is_file() and (run / "report.json").is_file():
        rep = read_json(run / "report.json")
        model = AttributeClassifier(rep["heads"], width=rep["width"], input_size=rep["input_size"])
        model.load_state_dict(torch.load(run / "model.pt", map_location="cpu", weights_only=True))
        log.info("reusing attribute classifier %s", run)
        return model.to(device).eval(), rep
    model, rep = train_attribute_classifier(dataset_root, device, epochs=cfg.eval.attribute_epochs,
                                            seed=cfg.eval.eval_seed)
    import io

    from ..utils.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(run / "model.pt", buf.getvalue())
    write_json(run / "report.json", rep)
    return model, rep


def _eval_samples(G, cfg: Config, test, text_enc, device, encoders=(), progress: bool | str = False):
    """The evaluation's samples of generator ``G``: ``eval.n_samples`` test captions in :func:`eval_plan`'s order,
    noise per sample index.  Returns ``(uint8 images, items, caption indices, codes)`` where ``codes[j]`` are the
    global image codes of the samples under ``encoders[j]`` (image encoders, e.g. the DAMSM's and the judge's)."""
    from ..train.gan import get_family
    from .sampling import eval_plan, generate, to_uint8

    e, fam = cfg.eval, get_family(cfg.model.family)
    items, caps = eval_plan(test, e.n_samples, e.eval_seed)
    fakes: list[torch.Tensor] = []
    codes: list[list[torch.Tensor]] = [[] for _ in encoders]
    with torch.no_grad():
        for imgs in generate(G, fam.sampler(cfg), text_enc, test, items, caps, fam.noise_dim(cfg), e.eval_seed, device,
                             e.batch_size, progress=progress):
            for enc, out in zip(encoders, codes):
                out.append(enc(imgs.to(device))[1].float().cpu())
            fakes.append(to_uint8(imgs))
    return torch.cat(fakes), items, caps, [torch.cat(c) for c in codes]


def _caption_attributes(test, items, caps) -> tuple[list[dict], list]:
    """The true attributes of each sample's image and the attribute names its caption mentions."""
    return ([test.records[int(i)]["attributes"] for i in items],
            [test.records[int(i)]["mentions"][int(c)] for i, c in zip(items, caps)])


def screen_checkpoint(checkpoint: str | Path, device, classifier_dir: str | Path | None = None) -> dict[str, Any]:
    """A quick look at one GAN checkpoint of a synthetic-data run: attribute accuracy (the profile's attribute
    classifier), the pixel judge's colour and position, and the share of pixels beyond +-0.98 (a saturated
    output), on the same ``eval.n_samples`` samples :func:`evaluate_gan` draws, without FID, R-precision or
    consistency.  Seconds instead of minutes on a CPU: made for comparing training settings before a learning
    curve.  ``classifier_dir``: the results folder holding the attribute classifier (default: the run's own)."""
    from ..config import from_dict
    from ..data.dataset import CaptionDataset
    from ..data.prepare import ensure_dataset
    from ..train.damsm import encoder_path, load_encoders
    from ..train.gan import load_generator
    from .consistency import ATTRIBUTE_ACCURACY, attribute_accuracy

    G, meta = load_generator(checkpoint, device)
    cfg = meta["config"]
    root = ensure_dataset(cfg, progress=False)
    d = cfg.data
    test = CaptionDataset(root, "test", (d.image_size,), 1, d.max_words, "truncate", cfg.run.seed)
    if not test.attribute_schema:
        raise ValueError(f"{checkpoint}: screening needs a synthetic dataset with attributes, not {d.dataset!r}")
    text_enc, _, _ = load_encoders(encoder_path(cfg), device, vocab_hash=test.vocab.hash)
    fakes, items, caps, _ = _eval_samples(G, cfg, test, text_enc, device)
    clf_cfg = cfg
    if classifier_dir is not None:
        as_dict = cfg.to_dict()
        as_dict["run"]["results_dir"] = str(classifier_dir)
        clf_cfg = from_dict(as_dict)
    clf, _ = attribute_classifier(clf_cfg, root, device)
    attrs, ments = _caption_attributes(test, items, caps)
    images = fakes.float().div(127.5).sub(1)
    acc = attribute_accuracy(clf, images, attrs, ments, device)
    pixel = pixel_judge_accuracy(fakes, attrs, ments) if d.dataset == "caption-shapes" else {}
    return {"run_id": cfg.run_id, "step": meta["step"], "config_hash": cfg.hash, "seed": cfg.run.seed,
            "lib_version": __version__, "n_samples": len(items),
            ATTRIBUTE_ACCURACY: acc[ATTRIBUTE_ACCURACY], "attribute_accuracy_chance": acc["chance"],
            "attribute_accuracy_per": acc["per_attribute"],
            "pixel_colour_accuracy": pixel.get("colour"), "pixel_position_accuracy": pixel.get("position"),
            "saturated_fraction": float((images.abs() > 0.98).float().mean()), "mean_pixel": float(images.mean())}


def evaluate_gan(cfg: Config, device, dataset_root: str | Path, force: bool = False,
                 progress: bool | str = "auto", checkpoint: str | Path | None = None,
                 out_path: str | Path | None = None) -> dict[str, Any]:
    """Evaluate the finished run of ``cfg``; reuses its metrics JSON when config and eval settings match.

    ``checkpoint`` evaluates another checkpoint of the run (e.g. an intermediate one, for a learning curve) and
    ``out_path`` writes its metrics elsewhere than the run's metrics file."""
    from ..data.dataset import CaptionDataset, read_manifest
    from ..train.damsm import encoder_path, ensure_judge, load_encoders
    from ..train.gan import get_family, load_generator, run_dir_for
    from . import fidelity
    from .consistency import (ATTRIBUTE_ACCURACY, attribute_accuracy, consistency_plan, consistency_scores,
                              generated_groups)

    results_root = paths.profile_dir(cfg.profile, cfg.run.results_dir)
    from .r_precision import r_precision, sentence_table
    from .sampling import generate, to_uint8

    e, d = cfg.eval, cfg.data
    out_path = Path(out_path) if out_path else metrics_path(cfg)
    old = None if force else _reusable(cfg, out_path)
    if old is not None:
        log.info("reusing metrics %s", out_path)
        return old
    summary_file = run_dir_for(cfg) / "summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{summary_file} not found: train {cfg.run_id} first (notebook 02 / train-gan)")
    summary = read_json(summary_file)
    t0 = time.time()
    prog = ("auto" if cfg.run.progress == "auto" else False) if progress == "auto" else progress
    fam = get_family(cfg.model.family)
    G, gmeta = load_generator(checkpoint or summary["checkpoint"], device)
    test = CaptionDataset(dataset_root, "test", (d.image_size,), 1, d.max_words, "truncate", cfg.run.seed)
    text_enc, image_enc, enc_meta = load_encoders(encoder_path(cfg), device, vocab_hash=test.vocab.hash)
    judge_path = ensure_judge(cfg, device, dataset_root)
    judge = load_encoders(judge_path, device, vocab_hash=test.vocab.hash) if judge_path is not None else None
    for meta in (enc_meta, judge[2] if judge else None):
        if meta is not None:
            meta["path"] = _rel(meta["path"], results_root)

    # 1. Samples for FID/KID, R-precision and attribute accuracy.
    fakes_u8, items, caps, enc_codes = _eval_samples(G, cfg, test, text_enc, device,
                                                     (image_enc, judge[1]) if judge else (image_enc,), prog)
    codes_t = enc_codes[0]
    png_dir = None
    if e.save_png:  # lossless copies of the evaluated samples (never JPEG: it moves FID)
        from .sampling import save_png

        png_dir = run_dir_for(cfg) / "eval_samples"
        save_png(fakes_u8, png_dir, [f"{i:06d}_{test.records[int(it)]['key']}_c{int(c)}"
                                     for i, (it, c) in enumerate(zip(items, caps))])

    # 2. R-precision of generated images.
    table, offsets = sentence_table(text_enc, test, device, seed=e.eval_seed)
    folds = max(1, min(e.r_precision_folds, len(items) // 2))
    rp = r_precision(codes_t, items, caps, table, offsets, test.class_ids, e.r_precision_candidates, folds,
                     e.eval_seed, e.r_precision_off_by_one)
    rp_judge = {"r_precision": None, "r_precision_std": None}
    if judge:  # the same queries and candidates, scored by the held-out encoder
        jtable, joffsets = sentence_table(judge[0], test, device, seed=e.eval_seed)
        rp_judge = r_precision(enc_codes[1], items, caps, jtable, joffsets, test.class_ids,
                               e.r_precision_candidates, folds, e.eval_seed, e.r_precision_off_by_one)

    # 3. FID / KID (IS when the classifier exists) against the real test split at the training resolution.
    def reals():  # loaded only when the cached real statistics are missing
        return torch.stack([to_uint8(test.load_and_transform(i)[-1][None])[0] for i in range(len(test))])

    weights = fidelity.resolve_fid_weights(e.fid_weights) if e.feature_extractor == "inception-v3-compat" else None
    man = read_manifest(dataset_root)
    key = fidelity.real_stats_key(f"{man['name']}-{man['records'].get('sha256', '')[:16]}", "test", d.image_size,
                                  weights["sha256"] if weights else e.feature_extractor)
    fid = fidelity.compute_fidelity(fakes_u8, reals, weights_spec=weights["path"] if weights else "auto",
                                    kid_subset_size=e.kid_subset_size, isc=True, device=device,
                                    batch_size=e.batch_size, cache_key=key, feature_extractor=e.feature_extractor,
                                    fused=e.inception_fused)

    # 4. Semantic consistency: sibling captions vs unrelated captions, same noise per group.
    plan = consistency_plan(test, e.consistency_images, e.consistency_captions, e.eval_seed)

    def gen_batch(it, cp, z):
        return torch.cat(list(generate(G, fam.sampler(cfg), text_enc, test, it, cp, fam.noise_dim(cfg), e.eval_seed,
                                       device, batch_size=len(it), noise=z)))

    with torch.no_grad():
        sib, unrel = generated_groups(gen_batch, plan, fam.noise_dim(cfg), e.eval_seed)
        g, k = sib.shape[:2]
        flat = torch.cat([sib.flatten(0, 1), unrel.flatten(0, 1)])
        feats = {"damsm": torch.cat([image_enc(flat[i:i + 64].to(device))[1].float().cpu()
                                     for i in range(0, len(flat), 64)])}
        if judge:
            feats["judge"] = torch.cat([judge[1](flat[i:i + 64].to(device))[1].float().cpu()
                                        for i in range(0, len(flat), 64)])
        feats["inception"] = fidelity.extract_features(to_uint8(flat), feature_extractor=e.feature_extractor,
                                                       weights_path=weights["path"] if weights else None,
                                                       device=device, fused=e.inception_fused)
    cons = {name: consistency_scores(f[:g * k].reshape(g, k, -1), f[g * k:].reshape(g, k, -1), center="pooled",
                                     n_boot=e.consistency_bootstrap, seed=e.eval_seed)
            for name, f in feats.items()}
    none = {"gap": None, "gap_ci95": None, "gap_raw": None, "sibling_sim": None, "unrelated_sim": None}

    # 5. Attribute accuracy (synthetic data only).
    attr: dict[str, Any] = {ATTRIBUTE_ACCURACY: None}
    clf_report = None
    attrs, ments = _caption_attributes(test, items, caps) if test.attribute_schema else ([], [])
    if test.attribute_schema:
        clf, clf_report = attribute_classifier(cfg, dataset_root, device)
        attr = attribute_accuracy(clf, fakes_u8.float().div(127.5).sub(1), attrs, ments, device)

    # 6. The training-free pixel judge (caption-shapes only): colour and position read off the pixels, no network.
    pixel = pixel_judge_accuracy(fakes_u8, attrs, ments) if d.dataset == "caption-shapes" and test.attribute_schema \
        else {}

    metrics = {fidelity.FID: fid[fidelity.FID], fidelity.KID_MEAN: fid[fidelity.KID_MEAN],
               fidelity.KID_STD: fid[fidelity.KID_STD], fidelity.IS_MEAN: fid.get(fidelity.IS_MEAN),
               fidelity.IS_STD: fid.get(fidelity.IS_STD), "is_unavailable_reason": portable_text(fid.get("is_unavailable_reason")),
               "r_precision": rp["r_precision"], "r_precision_std": rp["r_precision_std"],
               "r_precision_judge": rp_judge["r_precision"], "r_precision_judge_std": rp_judge["r_precision_std"],
               "attribute_accuracy": attr[ATTRIBUTE_ACCURACY], "attribute_accuracy_chance": attr.get("chance"),
               "attribute_accuracy_per": attr.get("per_attribute"),
               "pixel_colour_accuracy": pixel.get("colour"), "pixel_position_accuracy": pixel.get("position")}
    for name in ("damsm", "judge", "inception"):
        c = cons.get(name, none)
        metrics.update({f"consistency_gap_{name}": c["gap"], f"consistency_gap_{name}_ci95": c["gap_ci95"],
                        f"consistency_gap_{name}_raw": c["gap_raw"], f"sibling_sim_{name}": c["sibling_sim"],
                        f"unrelated_sim_{name}": c["unrelated_sim"]})
    protocol = {"n_samples": int(e.n_samples), "reference": f"real test split ({len(test)} images)",
                "image_size": d.image_size, "noise": f"N(0, I), seed eval_seed + sample index ({e.eval_seed})",
                "captions": "passes over the test split, one seeded caption per image per pass (truncated)",
                "fidelity": _portable_fidelity(fid.get("protocol")), "r_precision": {k: rp[k] for k in ("n_candidates", "n_folds",
                                                                                    "fold_size", "off_by_one")},
                "damsm_encoder": enc_meta, "judge_encoder": judge[2] if judge else None,
                "r_precision_encoders": {"r_precision": "training encoder (the paper's protocol)",
                                         "r_precision_judge": "held-out evaluation encoder"},
                "sample": "test items in class-interleaved order (seeded by eval_seed), the same for every arm",
                "generator_weights": gmeta["weights"],
                "consistency": {"groups": int(g), "captions_per_group": int(k), "noise": "shared within a group",
                                "calibration": "cosines of features centred by the mean of the evaluated images "
                                               "(sibling and unrelated sets pooled); gap = (sibling - unrelated) / "
                                               "(1 - unrelated); *_raw: sibling - unrelated, uncentred",
                                "ci": f"bootstrap over groups, {e.consistency_bootstrap} resamples, 95 %"},
                "attribute_classifier": clf_report, "samples_png": _rel(png_dir, results_root),
                "pixel_judge": ({"what": "t2i_lib.data.synthetic.judge_colour_position on the evaluated samples: "
                                         "colour and position of the pixels farthest from the image's median "
                                         "colour (no trained network); only attributes the caption mentions",
                                 "chance": {"colour": 1 / len(test.attribute_schema["colour"]),
                                            "position": 1 / len(test.attribute_schema["position"])},
                                 "n_checks": pixel["n_checks"]} if pixel else None)}
    rec = {"run_id": cfg.run_id, "kind": "gan", "experiment": cfg.experiment, "family": cfg.model.family,
           "variant": variant_of(cfg), "profile": cfg.profile, "dataset": d.dataset, "seed": cfg.run.seed,
           "config_hash": cfg.hash, "eval_hash": _eval_hash(cfg), "lib_version": __version__,
           "step": gmeta["step"], "metrics": metrics, "protocol": protocol, "config": cfg.to_dict(),
           "train_summary": _rel(summary_file, results_root),
           # what the study reports of the training run, kept here: run folders are not committed, metrics are
           "training": {k: summary.get(k) for k in ("wall_seconds", "device", "world_size", "steps", "skipped_steps")},
           "device": str(device), "seconds": time.time() - t0}
    write_json(out_path, rec)
    rec["_file"] = str(out_path)
    return rec


def _reusable(cfg: Config, path: Path) -> dict | None:
    """The metrics record at ``path`` when it was written for this config and evaluation protocol, else None."""
    if not path.is_file():
        return None
    old = read_json(path)
    if old.get("config_hash") != cfg.hash or old.get("eval_hash") != _eval_hash(cfg):
        return None
    old["_file"] = str(path)
    return old


def is_evaluated(cfg: Config) -> bool:
    """Whether ``cfg``'s metrics file exists for this config and evaluation protocol (:func:`evaluate_gan` reuses it)."""
    return _reusable(cfg, metrics_path(cfg)) is not None


def _evaluate_in_worker(cfg_dict: dict, device: str, force: bool, threads: int) -> dict:
    """One :func:`evaluate_gan` in a worker process of :func:`evaluate_many` (``threads`` torch threads)."""
    from ..config import from_dict
    from ..data.prepare import ensure_dataset
    from ..utils.device import resolve_device

    torch.set_num_threads(threads)
    cfg = from_dict(cfg_dict)
    return evaluate_gan(cfg, resolve_device(device), ensure_dataset(cfg), force=force)


def evaluate_many(experiments, profile: str, overrides: dict | None = None, seed: int = 0, device=None,
                  force: bool = False, jobs: int = 1) -> list[dict]:
    """Evaluate each experiment's finished run of ``profile`` (one metrics JSON each), in the given order.

    ``jobs > 1``: the first run still to evaluate goes first in this process (it computes what the others share:
    the real set's FID statistics, the attribute classifier, the evaluation encoder), then the rest ``jobs`` at a
    time in worker processes with ``cores // jobs`` torch threads each.  Same protocol and seeds as ``jobs=1``;
    the numbers agree up to floating-point summation order."""
    import os

    from ..config import resolve
    from ..data.prepare import ensure_dataset
    from ..utils.device import resolve_device

    if int(jobs) < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    cfgs = [resolve(exp, profile, overrides or {}, seed=seed) for exp in experiments]
    devs = [resolve_device(str(device) if device is not None else c.run.device) for c in cfgs]
    # reused records are read once, here; evaluate_gan would otherwise read each again
    out: dict[int, dict] = {} if force else {i: r for i, c in enumerate(cfgs)
                                             if (r := _reusable(c, metrics_path(c))) is not None}
    todo = [i for i in range(len(cfgs)) if i not in out]
    if int(jobs) > 1 and len(todo) > 1:
        first = todo[0]
        out[first] = evaluate_gan(cfgs[first], devs[first], ensure_dataset(cfgs[first]), force=force)
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // int(jobs))
        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=mp.get_context("spawn")) as pool:
            futs = {i: pool.submit(_evaluate_in_worker, cfgs[i].to_dict(), str(devs[i]), force, threads)
                    for i in todo[1:]}
            out.update({i: f.result() for i, f in futs.items()})
    for i, cfg in enumerate(cfgs):  # everything still to evaluate when jobs == 1
        if i not in out:
            out[i] = evaluate_gan(cfg, devs[i], ensure_dataset(cfg), force=force)
    return [out[i] for i in range(len(cfgs))]


def summary_rows(records: list[dict]) -> list[dict]:
    """Compact numeric rows for notebooks: one per evaluated run."""
    rows = []
    for r in records:
        m = r["metrics"]
        rows.append({"experiment": r["experiment"], "seed": r["seed"], "FID": m["fid"],
                     "KID": m["kid_mean"], "R-precision (train enc.)": m["r_precision"],
                     "R-precision (eval enc.)": m.get("r_precision_judge"),
                     "gap (eval enc.)": m.get("consistency_gap_judge"), "gap (DAMSM)": m["consistency_gap_damsm"],
                     "gap (Inception)": m["consistency_gap_inception"],
                     "sibling sim (DAMSM)": m["sibling_sim_damsm"], "attribute acc": m["attribute_accuracy"],
                     "attribute chance": m.get("attribute_accuracy_chance"), "samples": r["protocol"]["n_samples"]})
    return rows
