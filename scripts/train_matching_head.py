"""How fast can an SSA-GAN discriminator learn each attribute from captions, with no generator in the way?

Trains a fresh discriminator of the experiment's config on caption matching of real training images only
(:func:`t2i_lib.metrics.discriminator_probe.train_matching_head`) and probes it every N steps with the
discriminator attribute probe; one curve without and, with ``--magp``, one with SSA-GAN's MA-GP.  Writes the JSON
and a figure beside it (FILE.png).

    python scripts/train_matching_head.py --profile demo --steps 5000 --probe-every 500 [--magp] --out FILE.json
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
    ap.add_argument("--experiment", default="ssagan_baseline")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--probe-every", type=int, default=500)
    ap.add_argument("--n-images", type=int, default=600, help="test images probed (default 600)")
    ap.add_argument("--magp", action="store_true", help="also train a head with MA-GP (a second curve)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (the figure goes beside it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    a = ap.parse_args(argv)
    import torch

    from t2i_lib import __version__
    from t2i_lib.config import parse_cli_overrides, resolve
    from t2i_lib.metrics.discriminator_probe import train_matching_head
    from t2i_lib.report import figures
    from t2i_lib.report.gan_report import matching_head_figure
    from t2i_lib.utils.io import write_json

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    cfg = resolve(a.experiment, a.profile, {"run.seed": a.seed, **parse_cli_overrides(a.set)})
    curves = {}
    for magp in ([False, True] if a.magp else [False]):
        label = "with MA-GP" if magp else "no MA-GP"
        curves[label] = train_matching_head(cfg, torch.device(a.device), a.steps, a.probe_every, a.n_images, magp,
                                            progress="auto")
        for r in curves[label]:
            print(label, r["step"], {k: v["own_beats_other"] for k, v in r["attributes"].items()}, flush=True)
    write_json(a.out, {"kind": "discriminator_matching_head", "lib_version": __version__, "run_id": cfg.run_id,
                       "config_hash": cfg.hash, "seed": a.seed, "steps": a.steps,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "curves": curves})
    figures.save(matching_head_figure(curves, f"caption matching alone: {cfg.run_id}"), a.out.with_suffix(".png"))
    print(a.out, a.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
