"""Wall time of ``./run_all.sh`` from scratch (fresh results directory), in total and per notebook.

    python benchmarks/bench_run_all.py [--profile smoke]

Writes ``results/benchmarks/run_all-<device>-<profile>.{json,png}``.  The per-notebook times come from the moments
run_all.sh announces each notebook (environment set-up and HTML rendering are counted with the notebook before).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import t2i_lib  # noqa: E402
from t2i_lib.utils.io import write_json  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "results" / "benchmarks"))
    a = ap.parse_args(argv)
    marks: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-run-all-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["T2I_PROGRESS"] = "off"
        t0 = time.time()
        p = subprocess.Popen(["bash", str(PROJECT_ROOT / "run_all.sh"), "--profile", a.profile, "--results-dir",
                              str(Path(tmp) / a.profile)], cwd=PROJECT_ROOT, env=env, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
        for line in p.stderr:
            if line.startswith("[run_all] ") and "done in" not in line and "FAILED" not in line:
                marks.append((line.split("] ", 1)[1].strip(), time.time() - t0))
        rc = p.wait()
        total = time.time() - t0
    if rc != 0:
        print(f"run_all.sh failed (exit {rc})", file=sys.stderr)
        return rc
    steps = [{"notebook": name, "start_s": s, "seconds": (marks[i + 1][1] if i + 1 < len(marks) else total) - s}
             for i, (name, s) in enumerate(marks)]
    cpu = platform.processor() or platform.machine()
    rec = {"benchmark": "run_all", "profile": a.profile, "device": "cpu", "device_name": cpu,
           "cpu_count": os.cpu_count(), "lib_version": t2i_lib.__version__, "total_s": total, "steps": steps,
           "note": "from scratch: dataset, DAMSM, every GAN run, evaluation, tables, HTML; environment already set up"}
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
