"""What can an SSA-GAN discriminator's image features carry, and do its residual gates open?

Trains fresh discriminators of the experiment's config (blocks only) with a linear read-out per attribute of a
``caption-shapes`` image on their 4 x 4 features, once per value of ``model.d_gate_init`` given, and records the
read-out's test accuracy and the gates every N steps
(:func:`t2i_lib.metrics.discriminator_probe.train_backbone_readout`).  Writes the JSON and a figure beside it
(FILE.png).

    python scripts/train_backbone_readout.py --profile demo --steps 2000 --probe-every 250 --gate-inits 0,1 \\
        --out FILE.json
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
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--probe-every", type=int, default=250)
    ap.add_argument("--n-images", type=int, default=600, help="test images read (default 600)")
    ap.add_argument("--gate-inits", default="0,1", help="comma-separated model.d_gate_init values, one curve each")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (the figure goes beside it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    a = ap.parse_args(argv)
    try:
        gates = [float(v) for v in a.gate_inits.split(",") if v.strip()]
    except ValueError:
        ap.error(f"--gate-inits must be comma-separated numbers, got {a.gate_inits!r}")
    if not gates:
        ap.error("--gate-inits names no value")
    import torch

    from t2i_lib import __version__
    from t2i_lib.config import parse_cli_overrides, resolve
    from t2i_lib.metrics.discriminator_probe import train_backbone_readout
    from t2i_lib.report import figures
    from t2i_lib.report.gan_report import backbone_readout_figure
    from t2i_lib.utils.io import write_json

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    over = {"run.seed": a.seed, **parse_cli_overrides(a.set)}
    curves, configs = {}, {}
    for g in gates:
        cfg = resolve(a.experiment, a.profile, {**over, "model.d_gate_init": g})
        label = f"gates start at {g:g}"
        curves[label] = train_backbone_readout(cfg, torch.device(a.device), a.steps, a.probe_every, a.n_images,
                                               progress="auto")
        configs[label] = {"config_hash": cfg.hash, "config": cfg.to_dict()}
        for r in curves[label]:
            print(label, r["step"], {k: round(v, 3) for k, v in r["accuracy"].items()},
                  "gates", [round(v, 2) for v in r["gates"]], flush=True)
    write_json(a.out, {"kind": "discriminator_backbone_readout", "lib_version": __version__, "seed": a.seed,
                       "steps": a.steps, "experiment": a.experiment, "profile": a.profile,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "configs": configs,
                       "curves": curves})
    figures.save(backbone_readout_figure(curves, f"what the discriminator's features carry: {a.experiment}, "
                                                 f"{a.profile}, seed {a.seed}"), a.out.with_suffix(".png"))
    print(a.out, a.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
