"""What AttnGAN-family generators keep of each synthetic attribute through their conditioning augmentation: per
checkpoint and attribute, the between-class share of the sentence embeddings' variance, the same share in the CA
mean, and the CA mean's between-class variance over the CA noise
(:func:`t2i_lib.metrics.conditioning_probe.probe_ca_checkpoint`), and a bar chart beside the JSON (FILE.png).

    python scripts/probe_conditioning.py CKPT [CKPT ...] [--label TEXT ...] --out FILE.json

A signal-to-noise near 0 is an attribute the first stage cannot tell apart from the CA noise.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from t2i_lib.utils.probe_cli import checkpoint_probe_parser, parse_checkpoint_args

    a = parse_checkpoint_args(checkpoint_probe_parser(__doc__.splitlines()[0],
                                                      "AttnGAN or AttnGAN-with-style-blocks checkpoints"), argv)
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
