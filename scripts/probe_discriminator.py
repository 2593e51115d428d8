"""What SSA-GAN discriminators see of each attribute of a synthetic dataset: on real test images, how often the
conditional head scores an image higher with its own caption than with a caption wrong in exactly one attribute
(:func:`t2i_lib.metrics.discriminator_probe.discriminator_attribute_probe`), one record per checkpoint, and a bar
chart beside the JSON (FILE.png).

    python scripts/probe_discriminator.py CKPT [CKPT ...] [--label TEXT ...] --out FILE.json

50 % is a head blind to the attribute: the generator then gets no gradient towards drawing it.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from t2i_lib.utils.probe_cli import checkpoint_probe_parser, parse_checkpoint_args

    ap = checkpoint_probe_parser(__doc__.splitlines()[0], "SSA-GAN checkpoints")
    ap.add_argument("--n-images", type=int, default=1200, help="test images probed (default 1200)")
    a = parse_checkpoint_args(ap, argv)
    import torch

    from t2i_lib import __version__
    from t2i_lib.metrics.discriminator_probe import probe_gan_checkpoint
    from t2i_lib.report import figures
    from t2i_lib.report.gan_report import discriminator_probe_figure
    from t2i_lib.utils.io import write_json

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    records = []
    for i, path in enumerate(a.checkpoints):
        rec = probe_gan_checkpoint(path, torch.device(a.device), a.n_images)
        rec["label"] = a.label[i] if a.label else f"{rec['run_id']} @ {rec['step']}"
        records.append(rec)
        print(rec["label"], {k: v["own_beats_other"] for k, v in rec["attributes"].items()},
              "control", rec["control"]["own_beats_other"], "gates", [round(g, 3) for g in rec["gates"]])
    write_json(a.out, {"kind": "discriminator_attribute_probe", "lib_version": __version__,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "checkpoints": records})
    figures.save(discriminator_probe_figure(records, [r["label"] for r in records]), a.out.with_suffix(".png"))
    print(a.out, a.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
