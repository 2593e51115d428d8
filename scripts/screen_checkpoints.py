"""Screen GAN checkpoints of synthetic-data runs: attribute accuracy, pixel judge and saturation, no FID.

Each checkpoint is scored by :func:`t2i_lib.metrics.evaluate.screen_checkpoint` on the evaluation's own samples
(``eval.n_samples`` test captions, ``eval.eval_seed``): seconds per checkpoint on a CPU where the full evaluation
takes minutes.  Made for choosing a training setting among several short runs; the chosen setting then gets a full
learning curve (``python -m t2i_lib learning-curve``).  Writes one JSON with a record per checkpoint and a label per
run (the settings it was trained with, as given on the command line), and a figure beside it (FILE.png: accuracy
against step, one line per run).

    python scripts/screen_checkpoints.py --label "DAMSM weight 0.25" RUN_DIR [--label ... RUN_DIR ...] --out FILE
    [--classifier-dir RESULTS_DIR] [--title TEXT] [--mean] [--note TEXT]
    python scripts/screen_checkpoints.py --figure-only FILE.json [--title TEXT] [--mean]   # redraw a screen
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="run folders (every checkpoint under checkpoints/ is screened)")
    ap.add_argument("--label", action="append", default=[], help="one per run, in order: what the run changes")
    ap.add_argument("--out", type=Path, help="JSON file to write (the figure goes beside it, .png)")
    ap.add_argument("--figure-only", type=Path, default=None, metavar="FILE.json",
                    help="only draw the figure of an existing screen (FILE.png)")
    ap.add_argument("--title", default="", help="figure title (default: the JSON file's name)")
    ap.add_argument("--mean", action="store_true", help="also draw the runs' mean (runs of one setting, e.g. seeds)")
    ap.add_argument("--note", default="", help="what a reader must know about these runs (stored in the JSON)")
    ap.add_argument("--classifier-dir", type=Path, default=None,
                    help="results folder holding the attribute classifier (default: each run's own)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_intermixed_args(argv)
    if a.figure_only is not None:
        if a.runs or a.out:
            ap.error("--figure-only takes no run folders and no --out")
        return draw(a.figure_only, a.title, a.mean)
    if not a.runs or a.out is None:
        ap.error("give run folders and --out (or --figure-only FILE.json)")
    if a.label and len(a.label) != len(a.runs):
        ap.error(f"{len(a.label)} --label for {len(a.runs)} runs: give one per run or none")
    import torch

    from t2i_lib.metrics.evaluate import screen_checkpoint
    from t2i_lib.train.checkpoint import list_checkpoints
    from t2i_lib.utils.io import write_json

    torch.set_num_threads(1)
    runs = []
    for i, run in enumerate(a.runs):
        ckpts = list_checkpoints(run / "checkpoints")
        if not ckpts:
            ap.error(f"{run}: no checkpoints under {run / 'checkpoints'}")
        points = []
        for step, path in sorted(ckpts):
            p = screen_checkpoint(path, torch.device(a.device), a.classifier_dir)
            print(f"{run.name} step {step}: attribute {p['attribute_accuracy']:.3f}, pixel colour "
                  f"{p['pixel_colour_accuracy']:.3f}, position {p['pixel_position_accuracy']:.3f}, "
                  f"saturated {p['saturated_fraction']:.3f}", flush=True)
            points.append(p)
        runs.append({"label": a.label[i] if a.label else run.name, "run_id": points[0]["run_id"], "points": points})
    write_json(a.out, {"kind": "checkpoint_screen", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "what": "attribute accuracy, pixel judge and saturated share on the evaluation's samples",
                       **({"note": a.note} if a.note else {}), "runs": runs})
    print(f"wrote {a.out}")
    return draw(a.out, a.title, a.mean)


def draw(screen_json: Path, title: str = "", mean: bool = False) -> int:
    from t2i_lib.report import figures
    from t2i_lib.report.learning_curve import screen_figure
    from t2i_lib.utils.io import read_json

    fig = screen_figure(read_json(screen_json), title or f"checkpoint screen: {screen_json.stem}", mean)
    print(f"wrote {figures.save(fig, screen_json.with_suffix('.png'))}")
    figures._plt().close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
