"""Evaluation throughput: sampling (generator forward, noise per sample index, text encoding, uint8 conversion) per
model family, and FID feature extraction (the FID Inception at 299 px through torch-fidelity), both with batch norms
folded and channels-last (the default, ``eval.inception_fused``) and as shipped, in the same run.

Random weights and random captions of the profile's sizes; one untimed warm-up batch, then the median of
``--repeats`` batches (CUDA synchronised).  Writes JSON and a bar chart to ``results/benchmarks/``.

    python benchmarks/bench_eval.py [--profile smoke] [--families ssagan,style_attngan] [--batch 50]
                                    [--repeats 3] [--device auto] [--no-fid]
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
from t2i_lib.metrics.sampling import sample_noise, to_uint8  # noqa: E402
from t2i_lib.models.damsm import TextEncoder, freeze  # noqa: E402
from t2i_lib.train import gan  # noqa: E402
from t2i_lib.utils.device import resolve_device  # noqa: E402
from t2i_lib.utils.io import write_json  # noqa: E402


def _timed(fn, repeats: int, device) -> list[float]:
    out = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn(i)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            out.append(time.perf_counter() - t0)
    return out


def bench_sampling(family: str, profile: str, batch: int, repeats: int, device) -> dict:
    cfg = C.resolve(f"{family}_baseline", profile)
    fam = gan.get_family(family)
    G = fam.build(cfg)[0]["G"].to(device).eval()
    dm = cfg.damsm
    te = freeze(TextEncoder(200, dm.word_dim, dm.embedding_dim).to(device))
    t = cfg.data.max_words
    g = torch.Generator().manual_seed(0)
    caps = torch.randint(1, 200, (batch, t), generator=g)
    lens = torch.full((batch,), t)

    @torch.no_grad()
    def step(i):
        words, sent = te(caps.to(device), lens.to(device))
        z = sample_noise(range(i * batch, (i + 1) * batch), fam.noise_dim(cfg), cfg.eval.eval_seed).to(device)
        imgs = fam.generate(G, z, sent, words, (caps == 0).to(device))
        to_uint8(imgs.float()).cpu()

    times = _timed(step, repeats, device)
    med = statistics.median(times)
    return {"what": "sampling", "family": family, "image_size": cfg.data.image_size, "batch_size": batch,
            "median_batch_s": med, "repeats_s": times, "images_per_s": batch / med}


def bench_fid_features(batch: int, repeats: int, device, size: int, fused: bool = True) -> dict:
    from t2i_lib.metrics.fidelity import extract_features, resolve_fid_weights

    weights = resolve_fid_weights("auto")["path"]
    n = 4 * batch  # four batches per call, so loading the extractor (once per call) weighs little
    imgs = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    times = _timed(lambda i: extract_features(imgs, weights_path=weights, device=device, batch_size=batch,
                                              fused=fused), repeats, device)
    med = statistics.median(times)
    return {"what": "fid_features", "family": "fused" if fused else "as shipped", "image_size": size,
            "batch_size": batch, "median_batch_s": med / 4, "repeats_s": times, "images_per_s": n / med,
            "note": "FID Inception (resize to 299 inside), pool3 features; 4 batches per call including one "
                    "extractor construction; " + ("batch norms folded, channels-last (eval.inception_fused)"
                                                  if fused else "torch-fidelity's module as shipped")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--families", default="ssagan,style_attngan")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-fid", action="store_true")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "results" / "benchmarks"))
    a = ap.parse_args(argv)
    device = resolve_device(a.device)
    torch.manual_seed(0)
    rows = [bench_sampling(f, a.profile, a.batch, a.repeats, device) for f in a.families.split(",") if f]
    size = C.resolve(f"{a.families.split(',')[0]}_baseline", a.profile).data.image_size
    if not a.no_fid:  # the default (fused) and the module as shipped, in one run: their ratio is the speed-up
        rows += [bench_fid_features(a.batch, a.repeats, device, size, fused) for fused in (True, False)]
    for r in rows:
        print(f"{r['what']:13s} {r['family']:14s} {r['image_size']:4d}px  {r['images_per_s']:9.1f} images/s "
              f"(batch {r['batch_size']}, median {r['median_batch_s'] * 1000:.0f} ms)", flush=True)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    tag = f"eval-{device.type}-{a.profile}-b{a.batch}"
    out = Path(a.out)
    write_json(out / f"{tag}.json", {"benchmark": "eval_throughput", "device": str(device), "device_name": dev_name,
                                     "threads": torch.get_num_threads(), "torch": torch.__version__,
                                     "lib_version": t2i_lib.__version__, "profile": a.profile, "repeats": a.repeats,
                                     "warmup": 1, "rows": rows})
    from t2i_lib.report import figures

    fig = figures.bar([f"{r['what']}\n{r['family'].replace('style_attngan', 'style')}" for r in rows],
                      [r["images_per_s"] for r in rows], "images / s (median)",
                      f"evaluation throughput, {a.profile}, batch {a.batch} ({dev_name})", figsize=(6, 3),
                      title_size=9)
    figures.save(fig, out / f"{tag}.png")
    print(f"wrote {out / (tag + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
