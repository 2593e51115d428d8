"""Training-step throughput of each model family x loss variant (the real step functions, random data).

For every (family, variant) the step of ``t2i_lib.train.gan`` runs on a random batch with frozen random DAMSM
encoders of the profile's size: one warm-up step, then the median wall time of ``--repeats`` steps (CUDA
synchronised).  Reports images/s (real images per step / step time), fakes per step, the overhead of each
contrastive variant over the baseline step, and peak GPU memory.  Writes JSON and a bar chart to
``results/benchmarks/`` with the device named.

    python benchmarks/bench_train_step.py [--profile smoke] [--families ssagan,style_attngan] [--size 64]
                                          [--batch 8] [--repeats 5] [--device auto] [--pairing duplicate]
                                          [--set train.precision=bf16] [--set train.channels_last=true]
                                          [--set train.compile=true --warmup 3] [--variants baseline,f2r]
    python benchmarks/bench_train_step.py --versus-previous --profile demo --families ssagan,style_attngan,attngan
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import t2i_lib  # noqa: E402
from t2i_lib import config as C  # noqa: E402
from t2i_lib.models.damsm import ImageEncoder, TextEncoder, freeze  # noqa: E402
from t2i_lib.train import gan  # noqa: E402
from t2i_lib.utils.device import resolve_device  # noqa: E402
from t2i_lib.utils.io import write_json  # noqa: E402

VARIANTS = ("baseline", "f2r", "f2f", "both")


def random_batch(cfg, n_images: int, sizes, two_captions: bool, vocab: int = 200, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t = cfg.data.max_words
    batch = {"images": [torch.rand(n_images, 3, s, s, generator=g) * 2 - 1 for s in sizes],
             "class_id": torch.arange(n_images)}
    for sfx in ("", "2") if two_captions else ("",):
        lens = torch.randint(3, t + 1, (n_images,), generator=g)
        caps = torch.randint(1, vocab, (n_images, t), generator=g)
        caps[torch.arange(t)[None] >= lens[:, None]] = 0
        batch["caption" + sfx], batch["cap_len" + sfx] = caps, lens
    return batch


def make_step(family: str, variant: str, profile: str, size: int, batch: int, device, pairing: str,
              extra: dict | None = None):
    """``(step(i), info)``: one real training step of ``family_variant`` on a fixed random batch (frozen random
    DAMSM encoders of the profile's size), and a dict describing it."""
    over = {"data.image_size": size, "train.batch_size": batch, "train.f2f_pairing": pairing, **(extra or {})}
    cfg = C.resolve(f"{family}_{variant}", profile, over)
    fam = gan.get_family(family)
    modules, _ = fam.build(cfg)
    G, D = modules["G"].to(device), modules["D"].to(device)
    opt_g, opt_d = gan.make_optimizers(cfg, G, D)
    if cfg.train.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_fast, D_fast = gan.speed_wrappers(cfg, G, D)
    dm = cfg.damsm
    te = freeze(TextEncoder(200, dm.word_dim, dm.embedding_dim).to(device))
    ie = freeze(ImageEncoder(dm.backbone, dm.embedding_dim, dm.small_width, size).to(device))
    ctx = gan.GanContext(cfg, device, te, ie, G_fast, D_fast, opt_g, opt_d)
    n_img = gan.images_per_loader_batch(cfg)
    b = random_batch(cfg, n_img, fam.image_sizes(cfg), cfg.captions_per_sample == 2)
    if cfg.train.channels_last:
        b["images"] = [x.contiguous(memory_format=torch.channels_last) for x in b["images"]]
    fakes = n_img * cfg.captions_per_sample
    info = {"image_size": size, "batch_size": batch, "real_images": n_img, "fakes_per_step": fakes,
            "pairing": pairing, "flags": extra or {},
            "parameters_G": sum(p.numel() for p in G.parameters()),
            "parameters_D": sum(p.numel() for p in D.parameters())}
    return (lambda i: fam.step(ctx, b, i)), info


def bench(family: str, variant: str, profile: str, size: int, batch: int, repeats: int, device, pairing: str,
          extra: dict | None = None, warmup: int = 1):
    step, info = make_step(family, variant, profile, size, batch, device, pairing, extra)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(repeats + warmup):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step(i)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"family": family, "variant": variant, **info, "median_step_s": med, "repeats_s": times,
            "images_per_s": info["real_images"] / med, "fakes_per_s": info["fakes_per_step"] / med,
            "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


# The demo profile's step before the CPU-sized schedule (64 px, batch 16, widths 8 with the 256-px channel schedule,
# reference mask/MLP widths, per-parameter Adam, single-caption baseline), as overrides of today's config.
PREVIOUS_DEMO = {"data.image_size": 64, "model.ngf": 8, "model.ndf": 8, "model.widths": "reference",
                 "model.mask_hidden": 100, "model.cond_hidden": 256, "train.adam": "default",
                 "train.caption_sets": "auto"}


def versus(families, profile: str, repeats: int, before: dict, pairing: str = "split") -> list[dict]:
    """Each family's baseline step under ``before`` (overrides) and under the profile as it is, timed in turns
    (before, after, before, ...) so that both see the same machine load; medians and their ratio."""
    rows = []
    for fam in families:
        cfg = C.resolve(f"{fam}_baseline", profile)
        b_cfg = C.resolve(f"{fam}_baseline", profile, before)
        b_step, b_info = make_step(fam, "baseline", profile, b_cfg.data.image_size, b_cfg.train.batch_size,
                                   torch.device("cpu"), pairing, before)
        a_step, a_info = make_step(fam, "baseline", profile, cfg.data.image_size, cfg.train.batch_size,
                                   torch.device("cpu"), pairing, {})
        b_step(0), a_step(0)
        tb, ta = [], []
        for i in range(repeats):
            for f, acc in ((b_step, tb), (a_step, ta)):
                t0 = time.perf_counter()
                f(i + 1)
                acc.append(time.perf_counter() - t0)
        mb, ma = statistics.median(tb), statistics.median(ta)
        rows.append({"family": fam, "before": {**b_info, "median_step_s": mb, "repeats_s": tb},
                     "after": {**a_info, "median_step_s": ma, "repeats_s": ta}, "speedup": mb / ma,
                     "images_per_s_before": b_info["real_images"] / mb, "images_per_s_after": a_info["real_images"] / ma})
        print(f"{fam:14s} before {mb * 1000:8.1f} ms/step ({b_info['real_images']} real img)  after "
              f"{ma * 1000:8.1f} ms/step ({a_info['real_images']} real img)  x{mb / ma:.1f}", flush=True)
    return rows


def main_versus(a) -> int:
    before = {**PREVIOUS_DEMO, **C.parse_cli_overrides(a.before)} if a.before else PREVIOUS_DEMO
    torch.manual_seed(0)
    rows = versus(a.families.split(","), a.profile, a.repeats, before)
    out = Path(a.out)
    tag = f"train_step-cpu-{a.profile}-versus-previous"
    rec = {"benchmark": "train_step_versus", "device": "cpu", "device_name": platform.processor() or "cpu",
           "threads": torch.get_num_threads(), "torch": torch.__version__, "lib_version": t2i_lib.__version__,
           "profile": a.profile, "before_overrides": before, "repeats": a.repeats, "rows": rows,
           "note": "baseline arm; before and after timed in turns in one process (same load); random data, random "
                   "frozen DAMSM encoders; the previous demo trained the baseline on one caption per image, "
                   "today's on two (the controlled ablation), so 'after' does more per step"}
    write_json(out / f"{tag}.json", rec)
    from t2i_lib.report import figures

    labels = [f"{r['family'].replace('style_attngan', 'AttnGAN+style')}\n{w}" for r in rows for w in ("before", "after")]
    vals = [r[w]["median_step_s"] * 1000 for r in rows for w in ("before", "after")]
    fig = figures.bar(labels, vals, "ms per training step (median)",
                      f"demo step before/after the CPU schedule ({torch.get_num_threads()} thread(s))",
                      figsize=(7, 3.2), label_size=7, title_size=9)
    figures.save(fig, out / f"{tag}.png")
    print(f"wrote {out / (tag + '.json')}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--families", default="ssagan,style_attngan")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pairing", default="duplicate", choices=["duplicate", "split"])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (use 3+ with train.compile)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="speed flags to measure, e.g. train.precision=bf16 train.channels_last=true train.compile=true")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "results" / "benchmarks"))
    ap.add_argument("--versus-previous", action="store_true",
                    help="time each family's baseline step under the previous demo settings and under --profile, "
                         "in turns, and write their ratio")
    ap.add_argument("--before", action="append", default=[], metavar="KEY=VALUE",
                    help="with --versus-previous: extra overrides of the 'before' step")
    a = ap.parse_args(argv)
    if a.versus_previous:
        return main_versus(a)
    extra = C.parse_cli_overrides(a.overrides)
    device = resolve_device(a.device)
    torch.manual_seed(0)
    rows = []
    for fam in a.families.split(","):
        for var in a.variants.split(","):
            r = bench(fam, var, a.profile, a.size, a.batch, a.repeats, device, a.pairing, extra, a.warmup)
            rows.append(r)
            print(f"{fam:14s} {var:9s} {r['median_step_s'] * 1000:9.1f} ms/step {r['images_per_s']:8.1f} real img/s "
                  f"{r['fakes_per_s']:8.1f} fakes/s (fakes/step {r['fakes_per_step']})", flush=True)
    for r in rows:
        base = next((x for x in rows if x["family"] == r["family"] and x["variant"] == "baseline"), None)
        r["overhead_vs_baseline"] = r["median_step_s"] / base["median_step_s"] - 1 if base else None
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    flags = "".join(f"-{k.split('.')[-1]}-{str(v).lower()}" for k, v in sorted(extra.items()))
    tag = f"train_step-{device.type}-{a.profile}-{a.size}px-b{a.batch}-{a.pairing}{flags}"
    out = Path(a.out)
    rec = {"benchmark": "train_step", "device": str(device), "device_name": dev_name,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "lib_version": t2i_lib.__version__,
           "profile": a.profile, "repeats": a.repeats, "warmup": a.warmup, "flags": extra, "rows": rows,
           "note": "median over repeats after one warm-up step; random data, random frozen DAMSM encoders"}
    write_json(out / f"{tag}.json", rec)
    from t2i_lib.report import figures

    fig = figures.bar([f"{r['family'].replace('style_attngan', 'style')}\n{r['variant']}" for r in rows],
                      [r["median_step_s"] * 1000 for r in rows], "ms per training step (median)",
                      f"training step, {a.profile} widths, {a.size}px, batch {a.batch} ({dev_name})",
                      figsize=(7, 3.2), label_size=7, title_size=9)
    figures.save(fig, out / f"{tag}.png")
    print(f"wrote {out / (tag + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
