"""Throughput of the built-in caption-scenes generator.

Times ``generate()`` (in memory, captions included) at 64 and 256 px and ``prepare_scenes()`` (PNG files, records,
vocabulary, manifest) at 64 px: one warm-up run, then the median of ``--repeats`` runs, in this one process (one
core: the generator is plain single-threaded NumPy).  Also reports the per-image cost of the three stages
(parameters, rendering, captions) at 64 px.  Prints a summary and writes ``results/benchmarks/scenes.json`` (or
``--out``) with the machine description.

    python benchmarks/bench_scenes.py [--n 2000] [--repeats 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import t2i_lib  # noqa: E402
from bench_synthetic import cpu_description, summary, timed  # noqa: E402
from t2i_lib.data import scenes as S  # noqa: E402
from t2i_lib.utils.io import write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (median reported)")
    ap.add_argument("--n-captions", type=int, default=10)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "benchmarks" / "scenes.json")
    args = ap.parse_args(argv)
    n = args.n

    results = {}
    for size in (64, 256):
        def run(size=size):
            for _ in S.generate(n, seed=0, size=size, n_captions=args.n_captions):
                pass
        results[f"generate_{size}px"] = summary(f"generate {size}px", n, timed(run, args.repeats))

    with tempfile.TemporaryDirectory(prefix="bench-scenes-") as tmp:
        counter = iter(range(10**6))

        def run_prepare():
            S.prepare_scenes(Path(tmp) / f"ds{next(counter)}", n_images=n, seed=0, size=64,
                             n_captions=args.n_captions, progress=False)
        results["prepare_64px_png"] = summary("prepare_scenes 64px", n, timed(run_prepare, args.repeats))

    params = [S.sample_params(0, i) for i in range(n)]
    stages = {}
    t0 = time.perf_counter()
    for i in range(n):
        S.sample_params(0, i)
    stages["sample_params_us"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for p in params:
        S.render(p, 64)
    stages["render_64px_us"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i, p in enumerate(params):
        S.make_captions(p, 0, i, args.n_captions)
    stages["make_captions_us"] = (time.perf_counter() - t0) / n * 1e6
    print("per image at 64 px: " + ", ".join(f"{k[:-3]} {v:.0f} us" for k, v in stages.items()))

    record = {
        "benchmark": "scenes",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"n_images": n, "repeats": args.repeats, "warmup": 1, "n_captions": args.n_captions,
                     "seed": 0, "generator_version": S.GENERATOR_VERSION},
        "results": results,
        "stages_64px": stages,
        "device": {"kind": "cpu", "cpu": cpu_description(), "logical_cores": os.cpu_count(),
                   "platform": platform.platform(), "load_average_1min": os.getloadavg()[0]},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": __import__("PIL").__version__,
        "lib_version": t2i_lib.__version__,
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
