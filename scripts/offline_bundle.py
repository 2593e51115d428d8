#!/usr/bin/env python3
"""Bundle what a GPU machine without internet needs for a profile's study, and unpack it there.

    python scripts/offline_bundle.py pack --profile demo --out .carry        # here: weights + DAMSM + manifest
    python3 scripts/offline_bundle.py unpack --bundle .carry                 # there: restores them, prints flags

``pack`` writes the FID Inception weights rounded to fp16 (about 44 MB instead of 91 MB; upcast to fp32 on
unpacking; below 0.05 % effect on FID, see docs/architecture.md), a copy of the profile's pretrained DAMSM run
(``best.pt``, config, summary, stats) and ``bundle.json`` with the dataset's content fingerprint.  ``unpack`` writes
the fp32 weights file, puts the DAMSM run back under ``results/<profile>/runs/`` and prints the ``--set`` and
``--expect-fingerprint`` arguments for ``scripts/gpu_study.py``.  The dataset itself is regenerated there
(caption-shapes is deterministic; the fingerprint check says whether both copies agree).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FP16_NAME = "fid_inception_fp16.pt"
FC = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}  # pool3-only weights: the classifier is NaN in the source


def pack(profile: str, out: Path, experiment: str, overrides: dict | None = None) -> dict:
    import torch

    from t2i_lib import config as C
    from t2i_lib.data.prepare import ensure_dataset, fingerprint
    from t2i_lib.metrics.fidelity import resolve_fid_weights
    from t2i_lib.train.damsm import encoder_path

    out.mkdir(parents=True, exist_ok=True)
    cfg = C.resolve(experiment, profile, overrides)
    w = resolve_fid_weights(cfg.eval.fid_weights)
    sd = torch.load(w["path"], map_location="cpu", weights_only=True)
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items() if k not in FC}, out / FP16_NAME)
    enc = encoder_path(cfg)
    if not enc.is_file():
        raise SystemExit(f"no pretrained DAMSM at {enc}: run `python -m t2i_lib pretrain-damsm --profile {profile}`")
    run = enc.parent
    dst = out / "damsm" / run.name
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("best.pt", "config.json", "summary.json", "stats.jsonl", "provenance.json"):
        if (run / f).is_file():
            shutil.copy2(run / f, dst / f)
    rec = {"profile": profile, "damsm_run": run.name, "fid_weights_sha256": w["sha256"],
           "dataset_fingerprint": fingerprint(ensure_dataset(cfg, progress=False))}
    (out / "bundle.json").write_text(json.dumps(rec, indent=2) + "\n")
    return rec


def unpack(bundle: Path, fid_out: Path) -> dict:
    import torch

    from t2i_lib import paths

    rec = json.loads((bundle / "bundle.json").read_text())
    sd = torch.load(bundle / FP16_NAME, map_location="cpu", weights_only=True)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    sd.update({k: torch.full(shape, float("nan")) for k, shape in FC.items()})
    fid_out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, fid_out)
    runs = paths.profile_dir(rec["profile"]) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundle / "damsm" / rec["damsm_run"], runs / rec["damsm_run"], dirs_exist_ok=True)
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--profile", default="demo")
    a.add_argument("--experiment", default="ssagan_baseline", help="any experiment of the profile (its DAMSM)")
    a.add_argument("--out", default=".carry")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    b = sub.add_parser("unpack")
    b.add_argument("--bundle", default=".carry")
    b.add_argument("--fid-out", default="/tmp/fid_inception_fp32_from_fp16.pth")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        from t2i_lib.config import parse_cli_overrides

        rec = pack(args.profile, Path(args.out), args.experiment, parse_cli_overrides(args.overrides))
        size = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file()) / 2**20
        print(json.dumps(rec, indent=2))
        print(f"bundle {args.out}: {size:.1f} MiB")
    else:
        rec = unpack(Path(args.bundle), Path(args.fid_out))
        print(f"--set eval.fid_weights={args.fid_out} --expect-fingerprint {rec['dataset_fingerprint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
