"""The plan of a profile's full run, without training: validate the data, list the runs, estimate the cost.

``python -m t2i_lib plan --profile paper [--dataset cub|coco|flowers|flickr30k]`` (and ``./run_all.sh --profile paper
--dry-run [--dataset ...]``) checks the source data directory (AttnGAN layout, or the Karpathy JSON beside its
images for flickr30k; clear message when it is missing or incomplete), then prints every run
(DAMSM pretraining, each model family x loss variant, evaluation) with epochs, steps, images per step and samples,
and an estimate of GPU hours.  Estimates come from benchmark figures: a measured GPU step benchmark
(``results/benchmarks/train_step-cuda-*.json``) of the same family, variant, size and batch when one exists, else the
orientation figures below, each labelled with where it comes from.
"""

from __future__ import annotations

from typing import Any

from . import paths
from .config import Config, resolve
from .data.errors import DataError

FAMILIES_IN_STUDY = ("ssagan", "style_attngan")
VARIANTS = ("baseline", "f2r", "f2f", "both")
# Split sizes used when the data is not checked (docs/datasets.md): CUB and COCO as AttnGAN's split files; flowers
# as the StackGAN split (82 train / 20 test classes); Flickr30k as commonly reported for dataset_flickr30k.json
# (29,000 train, 1,014 val dropped by default, 1,000 test).  A checked data directory replaces these by its counts.
TRAIN_SIZES = {"cub": 8855, "coco": 82783, "flowers": 7034, "flickr30k": 29000}
TEST_SIZES = {"cub": 2933, "coco": 40470, "flowers": 1155, "flickr30k": 1000}

# Training images per second per GPU, with their source.  Measured in this project where stated.
THROUGHPUT = {
    ("ssagan", 256): (51.0, "public SSA-GAN fp32 step at batch 24 on an H200 (issue 'Scale and speed'; not yet "
                            "re-measured here)"),
    ("ssagan", 64): (12.4 * 32, "this project, demo profile on an H200 (1,800 steps of batch 32 in ~145 s)"),
}
FID_IMAGES_PER_S_GPU = (1000.0, "order of magnitude for Inception-v3 on a modern GPU (not measured here)")


def measured_throughput(family: str, variant: str, size: int, batch: int, pairing: str,
                        bench_dir=None) -> tuple[float | None, str]:
    """Real training images per second from a GPU step benchmark of this setting (``benchmarks/bench_train_step.py``,
    plain fp32 without speed flags, same family, variant, size and batch; the pairing must match when the variant
    has fake-to-fake), or ``(None, reason)``."""
    import json
    from pathlib import Path

    bench_dir = Path(bench_dir) if bench_dir else paths.results_root() / "benchmarks"
    for f in sorted(bench_dir.glob(f"train_step-cuda-*-{size}px-b{batch}-*.json")):
        rec = json.loads(f.read_text())
        if rec.get("flags"):
            continue
        for r in rec.get("rows", []):
            if (r["family"], r["variant"]) == (family, variant) and ("f2f" not in variant and variant != "both"
                                                                      or r["pairing"] == pairing):
                return r["images_per_s"], f"measured here: {rec.get('device_name', '?')} ({f.name})"
    return None, "no benchmark for this setting yet"


def _throughput(family: str, variant: str, size: int, batch: int, pairing: str) -> tuple[float | None, str, bool]:
    """(real images/s, source, per_variant): a measured benchmark of this variant, else the family's orientation
    figure (a single-caption step; fake-to-fake costs are then scaled by the fakes per image)."""
    ips, src = measured_throughput(family, variant, size, batch, pairing)
    if ips is not None:
        return ips, src, True
    if (family, size) in THROUGHPUT:
        return (*THROUGHPUT[(family, size)], False)
    return None, src, False


def check_data(cfg: Config) -> dict[str, Any]:
    """Validate the raw data directory of a real-data config; raises DataError/LayoutError with what to do."""
    from .data.attngan import check_layout
    from .data.prepare import KARPATHY_DATASETS, SOURCE_SUBDIRS, source_dir

    src = source_dir(cfg)
    ds = cfg.data.dataset
    if not src.exists():
        what = (f"dataset_{ds}.json beside its image folder" if ds in KARPATHY_DATASETS else "the AttnGAN layout")
        raise DataError(
            f"{ds.upper()} data not found at {src}. Put {what} under $T2I_DATA_DIR/{SOURCE_SUBDIRS[ds]} (or set "
            f"data.source_dir): see docs/datasets.md and the README section 'Reproducing the paper'.")
    if ds in KARPATHY_DATASETS:
        from .data.karpathy import check_karpathy, find_karpathy

        return check_karpathy(*find_karpathy(src, ds))
    return check_layout(ds, src)


def paper_plan(profile: str = "paper", dataset: str = "cub", overrides: dict | None = None,
               check: bool = True) -> dict[str, Any]:
    over = dict(overrides or {})
    cfgs = [resolve(f"{fam}_{var}_{dataset}", profile, over) for fam in FAMILIES_IN_STUDY for var in VARIANTS]
    layout = check_data(cfgs[0]) if check and dataset in TRAIN_SIZES else None
    n_train = layout["splits"]["train"] if layout else TRAIN_SIZES.get(dataset, 0)
    n_test = layout["splits"]["test"] if layout else TEST_SIZES.get(dataset, 0)
    from .metrics.evaluate import variant_of
    from .train.damsm import damsm_config_for

    dcfg = damsm_config_for(cfgs[0])
    runs = [{"run": dcfg.run_id, "what": "DAMSM pretraining", "epochs": dcfg.damsm.epochs,
             "steps": dcfg.damsm.epochs * (n_train // dcfg.damsm.batch_size), "images_per_step": dcfg.damsm.batch_size,
             "gpu_hours": None, "estimate_source": "no benchmark for DAMSM pretraining yet"}]
    total = 0.0
    for c in cfgs:
        t = c.train
        from .train.gan import images_per_loader_batch

        per_step_images = images_per_loader_batch(c)
        steps_per_epoch = n_train // per_step_images
        steps = t.max_steps if t.max_steps > 0 else t.epochs * steps_per_epoch
        fakes = per_step_images * c.captions_per_sample
        ips, src, per_variant = _throughput(c.model.family, variant_of(c), c.data.image_size, t.batch_size,
                                            t.f2f_pairing)
        scale = 1.0 if per_variant else fakes / per_step_images
        hours = None if ips is None else steps * per_step_images / ips / 3600 * scale
        if hours is not None:
            total += hours
        runs.append({"run": c.run_id, "what": f"train {c.experiment}", "epochs": t.epochs, "steps": steps,
                     "images_per_step": per_step_images, "fakes_per_step": fakes,
                     "gpu_hours": None if hours is None else round(hours, 1), "estimate_source": src})
    n_eval = cfgs[0].eval.n_samples
    ev_hours = len(cfgs) * (n_eval + n_test) / FID_IMAGES_PER_S_GPU[0] / 3600
    runs.append({"run": "evaluation", "what": f"evaluate {len(cfgs)} runs", "samples_per_run": n_eval,
                 "reference_images": n_test, "gpu_hours": round(ev_hours, 2),
                 "estimate_source": FID_IMAGES_PER_S_GPU[1]})
    return {"profile": profile, "dataset": dataset, "data": layout, "n_train": n_train, "n_test": n_test,
            "runs": runs, "gpu_hours_known": round(total + ev_hours, 1),
            "unknown": [r["run"] for r in runs if r.get("gpu_hours") is None],
            "results_dir": str(paths.profile_dir(profile, cfgs[0].run.results_dir))}


def format_plan(plan: dict) -> str:
    lines = [f"Plan for profile '{plan['profile']}' on {plan['dataset'].upper()} "
             f"({plan['n_train']} train / {plan['n_test']} test images); results in {plan['results_dir']}"]
    if plan["data"]:
        d = plan["data"]
        lines.append(f"data: {d['src']} OK (splits {d['splits']}, class ids {d['class_ids']}, "
                     f"duplicated keys {len(d['duplicated_keys'])})")
        if d.get("json"):
            lines.append(f"data: {d['json']}: entries per split {d['json_splits']}, dropped {d['dropped'] or 'none'}")
    for r in plan["runs"]:
        cost = "unknown" if r.get("gpu_hours") is None else f"{r['gpu_hours']} GPU h"
        detail = (f"{r['epochs']} epochs, {r['steps']} steps, {r['images_per_step']} images/step"
                  if "steps" in r else f"{r['samples_per_run']} samples + {r['reference_images']} real images each")
        lines.append(f"  {r['what']:<34s} {detail:<52s} {cost:>12s}  [{r['estimate_source']}]")
    lines.append(f"estimated total where known: {plan['gpu_hours_known']} GPU hours; "
                 f"no estimate yet for: {', '.join(plan['unknown']) or 'none'}")
    return "\n".join(lines)


def encoder_groups(profile: str, experiments: list[str], overrides: dict | None = None) -> list[dict[str, Any]]:
    """The distinct training encoders (DAMSM pretraining configs) that ``experiments`` use under ``profile``, in
    order of first use: ``{"run_id", "experiments", "families", "default"}`` each, where ``default`` marks the
    encoder of the profile's own damsm settings (what notebook 01 trains with its default ``EXPERIMENT``).  A
    family whose profile delta changes a damsm setting gets its own encoder (and judge) and its own group."""
    from .train.damsm import damsm_config_for

    over = dict(overrides or {})
    default_id = damsm_config_for(resolve("damsm", profile, over)).run_id
    groups: dict[str, dict[str, Any]] = {}
    for exp in experiments:
        cfg = resolve(exp, profile, over)
        g = groups.setdefault(damsm_config_for(cfg).run_id, {"experiments": [], "families": []})
        g["experiments"].append(exp)
        if cfg.model.family not in g["families"]:
            g["families"].append(cfg.model.family)
    return [{"run_id": rid, **g, "default": rid == default_id} for rid, g in groups.items()]
