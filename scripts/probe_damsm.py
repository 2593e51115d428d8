"""What DAMSM encoders see of each attribute of a synthetic dataset: retrieval agreement and linear probes on the
real test images (:func:`t2i_lib.metrics.encoder_probe.probe_encoders`), one record per encoder, and a bar chart.

    python scripts/probe_damsm.py RESULTS/runs/damsm_cl-demo-s0-XXXXXXXX [RUN_DIR ...] --out FILE.json

Each RUN_DIR is a DAMSM run folder (its ``best.pt`` is probed; the dataset is the one its config names, made if
missing).  The figure goes beside the JSON (FILE.png).  ``--every-checkpoint`` probes each epoch's checkpoint
under RUN_DIR/checkpoints instead (what the encoder learns, epoch by epoch) and draws retrieval agreement against
the epoch.
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
    ap.add_argument("runs", nargs="+", type=Path, help="DAMSM run folders (each holds best.pt)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (the figure goes beside it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--every-checkpoint", action="store_true",
                    help="probe every checkpoint of each run (one record per epoch) instead of best.pt")
    ap.add_argument("--stride", type=int, default=1,
                    help="with --every-checkpoint: every N-th checkpoint, and always the last (default 1)")
    a = ap.parse_args(argv)
    if a.stride < 1:
        ap.error(f"--stride must be >= 1, got {a.stride}")
    import torch

    from t2i_lib import __version__
    from t2i_lib.config import load_config
    from t2i_lib.data.dataset import CaptionDataset
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.metrics.encoder_probe import probe_checkpoint
    from t2i_lib.train.checkpoint import list_checkpoints
    from t2i_lib.utils.io import write_json

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    records = []
    for run in a.runs:
        if not (run / "best.pt").is_file() or not (run / "config.json").is_file():
            ap.error(f"{run}: no best.pt and config.json (is it a finished DAMSM run folder?)")
        cfg = load_config(run / "config.json")
        if cfg.data.dataset not in ("caption-shapes", "caption-scenes"):
            ap.error(f"{run}: trained on {cfg.data.dataset}; the probe needs a synthetic dataset with attributes")
        test = CaptionDataset(ensure_dataset(cfg), "test", (cfg.data.image_size,), 1, cfg.data.max_words, "truncate",
                              cfg.run.seed)
        paths = [p for _, p in list_checkpoints(run / "checkpoints")] if a.every_checkpoint else [run / "best.pt"]
        if a.every_checkpoint and a.stride > 1:
            paths = [p for i, p in enumerate(paths) if i % a.stride == a.stride - 1 or i == len(paths) - 1]
        if not paths:
            ap.error(f"{run}: no checkpoints under {run / 'checkpoints'}")
        for path in paths:
            rec = probe_checkpoint(path, test, device)
            records.append(rec)
            print(rec["run_id"], "epoch", rec["encoder_epoch"],
                  {k: round(v["retrieval_agreement"], 3) for k, v in rec["attributes"].items()}, flush=True)
    write_json(a.out, {"kind": "damsm_attribute_probe", "lib_version": __version__,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "every_checkpoint": a.every_checkpoint, "encoders": records})
    draw(a.out, records, a.every_checkpoint)
    print(a.out, a.out.with_suffix(".png"))
    return 0


def draw(out: Path, records: list[dict], by_epoch: bool = False) -> None:
    from t2i_lib.report import figures
    from t2i_lib.report.damsm_report import attribute_probe_epochs_figure, attribute_probe_figure

    fig = attribute_probe_epochs_figure(records) if by_epoch else attribute_probe_figure(records)
    figures.save(fig, out.with_suffix(".png"))


if __name__ == "__main__":
    raise SystemExit(main())
