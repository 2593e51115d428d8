"""Wall time of ``./run_all.sh`` from scratch (fresh results directory), in total and per notebook.

    python benchmarks/bench_run_all.py [--profile smoke] [--keep DIR]

Writes ``results/benchmarks/run_all-<device>-<profile>.{json,png}``.  The per-notebook times are the ones run_all.sh
prints (``[run_all] <notebook>  <N> s``: execution and HTML rendering); ``overhead_s`` is the rest (environment
check and record, keys).  ``--keep DIR`` runs into DIR (new or empty) and keeps the results, e.g. to look
at the reports; otherwise a temporary folder is used and removed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import t2i_lib  # noqa: E402
from t2i_lib.utils.io import write_json  # noqa: E402

LINE = re.compile(r"^\[run_all\] (\S+)\s+(\d+) s$")
DONE = re.compile(r"notebook\(s\) run, \d+ skipped \(unchanged\) in (\d+) s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "results" / "benchmarks"))
    ap.add_argument("--keep", default="", help="results folder to run into and keep (new or empty)")
    a = ap.parse_args(argv)
    if a.keep and Path(a.keep).exists() and any(Path(a.keep).iterdir()):
        ap.error(f"--keep {a.keep}: the folder is not empty (the benchmark runs from scratch)")
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-run-all-"))
    steps: list[dict] = []
    notebooks_s = None
    try:
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["T2I_PROGRESS"] = "off"
        t0 = time.time()
        p = subprocess.Popen(["bash", str(PROJECT_ROOT / "run_all.sh"), "--profile", a.profile, "--results-dir",
                              str(tmp / a.profile)], cwd=PROJECT_ROOT, env=env, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
        for line in p.stderr:
            sys.stderr.write(line)
            m = LINE.match(line.strip())
            if m:
                steps.append({"notebook": m.group(1), "seconds": float(m.group(2))})
            d = DONE.search(line)
            if d:
                notebooks_s = float(d.group(1))
        rc = p.wait()
        total = time.time() - t0
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        print(f"run_all.sh failed (exit {rc})", file=sys.stderr)
        return rc
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rec = {"benchmark": "run_all", "profile": a.profile, "device": "cpu", "device_name": cpu,
           "cpu_count": os.cpu_count(), "lib_version": t2i_lib.__version__, "total_s": total,
           "notebooks_s": notebooks_s,
           "overhead_s": None if notebooks_s is None else total - notebooks_s, "steps": steps, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "load_average_1min_at_end": load,
           "note": "from scratch: dataset, DAMSM, every GAN run, evaluation, tables, HTML; environment already set up. "
                   "run_all.sh runs GAN runs and report notebooks --jobs at a time (2 on a CPU profile), so the "
                   "per-notebook seconds overlap and sum to more than notebooks_s (run_all's own total); "
                   "overhead_s is the rest of the wall time (environment check)"}
    out = Path(a.out)
    write_json(out / f"run_all-cpu-{a.profile}.json", rec)
    from t2i_lib.report import figures

    fig = figures.bar([s["notebook"] for s in steps], [s["seconds"] for s in steps], "seconds",
                      f"run_all.sh --profile {a.profile}: {total:.0f} s on {os.cpu_count()} CPU cores",
                      horizontal=True, figsize=(7, 3.4), label_size=7, title_size=9)
    figures.save(fig, out / f"run_all-cpu-{a.profile}.png")
    print(f"run_all.sh --profile {a.profile}: {total:.0f} s; wrote {out / f'run_all-cpu-{a.profile}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
