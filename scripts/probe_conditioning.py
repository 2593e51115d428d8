"""What AttnGAN-family generators keep of each synthetic attribute through their conditioning augmentation: per
checkpoint and attribute, the between-class share of the sentence embeddings' variance, the same share in the CA
mean, and the CA mean's between-class variance over the CA noise
(:func:`t2i_lib.metrics.conditioning_probe.probe_ca_checkpoint`), and a bar chart beside the JSON (FILE.png).

    python scripts/probe_conditioning.py CKPT [CKPT ...] [--label TEXT ...] --out FILE.json

A signal-to-noise near 0 is an attribute the first stage cannot tell apart from the CA noise.
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
    ap.add_argument("checkpoints", nargs="+", type=Path,
                    help="AttnGAN or AttnGAN-with-style-blocks checkpoints (runs/<id>/checkpoints/*.pt)")
    ap.add_argument("--label", action="append", default=[], help="one per checkpoint, in order (figure legend)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (the figure goes beside it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    a = ap.parse_args(argv)
    if a.label and len(a.label) != len(a.checkpoints):
        ap.error(f"{len(a.label)} --label for {len(a.checkpoints)} checkpoints: give one per checkpoint or none")
    missing = [str(p) for p in a.checkpoints if not p.is_file()]
    if missing:
        ap.error(f"no such checkpoint: {', '.join(missing)}")
    import torch

    from t2i_lib import __version__
    from t2i_lib.metrics.conditioning_probe import probe_ca_checkpoint
    from t2i_lib.report import figures
    from t2i_lib.report.gan_report import ca_probe_figure
    from t2i_lib.utils.io import write_json

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    records = []
    for i, path in enumerate(a.checkpoints):
        rec = probe_ca_checkpoint(path, torch.device(a.device))
        rec["label"] = a.label[i] if a.label else f"{rec['run_id']} @ {rec['step']}"
        records.append(rec)
        print(rec["label"], {k: round(v["signal_to_noise"], 3) for k, v in rec["attributes"].items()}, flush=True)
    write_json(a.out, {"kind": "ca_attribute_probe", "lib_version": __version__,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "checkpoints": records})
    figures.save(ca_probe_figure(records), a.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
