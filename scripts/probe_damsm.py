"""What DAMSM encoders see of each attribute of a synthetic dataset: retrieval agreement and linear probes on the
real test images (:func:`t2i_lib.metrics.encoder_probe.probe_encoders`), one record per encoder, and a bar chart.

    python scripts/probe_damsm.py RESULTS/runs/damsm_cl-demo-s0-XXXXXXXX [RUN_DIR ...] --out FILE.json

Each RUN_DIR is a DAMSM run folder (its ``best.pt`` is probed; the dataset is the one its config names, made if
missing).  The figure goes beside the JSON (FILE.png).
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
    a = ap.parse_args(argv)
    import torch

    from t2i_lib import __version__
    from t2i_lib.config import from_dict
    from t2i_lib.data.dataset import CaptionDataset
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.metrics.encoder_probe import probe_encoders
    from t2i_lib.train.checkpoint import load
    from t2i_lib.train.damsm import load_encoders
    from t2i_lib.utils.io import write_json

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    records = []
    for run in a.runs:
        path = run / "best.pt"
        if not path.is_file():
            ap.error(f"{run}: no best.pt (is it a finished DAMSM run folder?)")
        ckpt = load(path, expect={"kind": "damsm"})
        cfg = from_dict(ckpt["config"])
        if cfg.data.dataset not in ("caption-shapes", "caption-scenes"):
            ap.error(f"{run}: trained on {cfg.data.dataset}; the probe needs a synthetic dataset with attributes")
        root = ensure_dataset(cfg)
        text, image, meta = load_encoders(path, device)
        test = CaptionDataset(root, "test", (cfg.data.image_size,), 1, cfg.data.max_words, "truncate", cfg.run.seed)
        rec = probe_encoders(text, image, test, device, seed=cfg.eval.eval_seed)
        rec.update({"run_id": cfg.run_id, "config_hash": cfg.hash, "damsm_seed": cfg.damsm.seed,
                    "encoder_epoch": meta.get("epoch"), "dataset": cfg.data.dataset, "split": "test",
                    "validation_r_precision": (ckpt.get("best") or {}).get("r_precision")})
        del ckpt
        records.append(rec)
        print(cfg.run_id, {k: round(v["retrieval_agreement"], 3) for k, v in rec["attributes"].items()})
    write_json(a.out, {"kind": "damsm_attribute_probe", "lib_version": __version__,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "encoders": records})
    draw(a.out, records)
    print(a.out, a.out.with_suffix(".png"))
    return 0


def draw(out: Path, records: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = [("retrieval_agreement", "retrieval_chance", "caption -> image retrieval"),
                ("image_probe", "image_probe_majority", "linear probe, image feature"),
                ("text_probe", "text_probe_majority", "linear probe, sentence embedding")]
    fig, axes = plt.subplots(1, len(records), figsize=(max(7.0, 5.5 * len(records)), 4.0), squeeze=False)
    for ax, rec in zip(axes[0], records):
        names = list(rec["attributes"])
        width = 0.8 / len(measures)
        for k, (key, chance_key, label) in enumerate(measures):
            xs = [i + (k - 1) * width for i in range(len(names))]
            ax.bar(xs, [100 * rec["attributes"][n][key] for n in names], width, label=label)
            ax.scatter(xs, [100 * rec["attributes"][n][chance_key] for n in names], marker="_", s=120,
                       color="black", zorder=3, label="chance" if k == 0 else None)
        ax.set_xticks(range(len(names)), names)
        ax.set_ylim(0, 100)
        ax.set_ylabel("% correct on real test images")
        ax.set_title(f"{rec['run_id']} (seed {rec['damsm_seed']})", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
