"""Command line: ``python -m t2i_lib <command> ...`` (also the ``t2i`` console script).

Commands:
  prepare synthetic --out DIR [--n-images N] [--seed S] [--size PX] [--n-captions K] [--test-fraction F]
  prepare scenes    --out DIR [--n-images N] [--seed S] [--size PX] [--n-captions K] [--test-fraction F]
  prepare cub|coco|flowers  --src DIR --out DIR [--store-size PX] [--skip-bad] [--vocab-from PICKLE|auto]
  prepare karpathy  --json FILE --images DIR --out DIR [--restval train|drop] [--val drop|train|test]
                    [--store-size PX] [--skip-bad] [--vocab-from PICKLE|auto]   Flickr8k/Flickr30k/COCO JSON
  config  EXPERIMENT [--profile P] [--seed S] [--set key=value ...]   print the resolved config as JSON
  summary DIR                                                          statistics of a canonical dataset
  pretrain-damsm [--experiment damsm|damsm_cl] [--profile P] [--seed S] [--device D] [--set key=value ...]
                 [--which both|training|judge] [--force] [--no-resume]
                                                                       DAMSM pretraining (resumes by default): the
                                                                       training encoder and the evaluation encoder
  train-gan EXPERIMENT [--profile P] [--seed S] [--device D] [--set key=value ...] [--force] [--no-resume]
  train-gan EXPERIMENT --config CONFIG.json [--device D] [--force] [--no-resume]
  learning-curve EXPERIMENT [--profile P] [--seed S] [--set key=value ...]   (every checkpoint evaluated)
                                                                       GAN training (pretrains DAMSM if missing);
                                                                       under torchrun on N processes
  evaluate EXPERIMENT [--profile P] [--seed S] [--device D] [--set key=value ...] [--force]
                                                                       FID/KID, R-precision, consistency -> metrics JSON
  tables [--profile P] [--results-dir DIR]                             rebuild results/<profile>/tables/
  plan [--profile paper] [--dataset cub|coco|flowers|flickr30k] [--no-check]
                                                                       validate data, print runs and GPU hours

Bad input and bad settings print one ``error:`` line naming the file/key and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m t2i_lib", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="make a canonical dataset")
    psub = prep.add_subparsers(dest="source", required=True)
    for kind, what in (("synthetic", "caption-shapes (one shape per image)"),
                       ("scenes", "caption-scenes (two or three shapes and a spatial relation per image)")):
        syn = psub.add_parser(kind, help=f"generate the built-in {what} dataset")
        syn.add_argument("--out", required=True, help="output directory (must not exist unless --force)")
        syn.add_argument("--n-images", type=int, default=1000)
        syn.add_argument("--seed", type=int, default=0)
        syn.add_argument("--size", type=int, default=64, help="stored image size in pixels")
        syn.add_argument("--n-captions", type=int, default=10)
        syn.add_argument("--test-fraction", type=float, default=0.2)
        syn.add_argument("--force", action="store_true", help="replace an existing output directory")
        syn.add_argument("--no-progress", action="store_true")
    for kind in ("cub", "coco", "flowers", "karpathy"):
        if kind == "karpathy":
            a = psub.add_parser(kind, help="convert a Karpathy-split JSON (Flickr8k, Flickr30k, COCO) and its images")
            a.add_argument("--json", required=True, help="dataset_flickr30k.json, dataset_flickr8k.json or "
                                                         "dataset_coco.json")
            a.add_argument("--images", required=True, help="the image folder the JSON's file names are in")
            a.add_argument("--restval", default="train", choices=["train", "drop"],
                           help="where the JSON's 'restval' entries go (default: train)")
            a.add_argument("--val", default="drop", choices=["drop", "train", "test"],
                           help="where the JSON's 'val' entries go (default: dropped)")
        else:
            a = psub.add_parser(kind, help=f"convert {kind.upper()} in AttnGAN layout")
            a.add_argument("--src", required=True, help="AttnGAN-layout directory (data/birds, data/coco or "
                                                        "data/flowers)")
        a.add_argument("--out", required=True, help="output directory")
        a.add_argument("--store-size", type=int, default=304, help="shorter side of stored images")
        a.add_argument("--skip-bad", action="store_true", help="skip and count bad images/captions")
        a.add_argument("--vocab-from", default=None,
                       help="AttnGAN captions.pickle whose vocabulary to use ('auto': <src>/captions.pickle)")
        a.add_argument("--force", action="store_true")
        a.add_argument("--no-progress", action="store_true")

    cfg = sub.add_parser("config", help="print a resolved config as JSON")
    cfg.add_argument("experiment")
    cfg.add_argument("--profile", default="smoke")
    cfg.add_argument("--seed", type=int, default=None)
    cfg.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    summ = sub.add_parser("summary", help="statistics of a canonical dataset")
    summ.add_argument("root")

    pre = sub.add_parser("pretrain-damsm", help="pretrain the DAMSM encoders of a profile")
    pre.add_argument("--experiment", default="damsm", help="damsm | damsm_cl | a GAN experiment (its DAMSM)")
    pre.add_argument("--profile", default="smoke")
    pre.add_argument("--seed", type=int, default=None, help="damsm.seed")
    pre.add_argument("--which", default="both", choices=["both", "training", "judge"],
                     help="the training encoder (damsm.seed), the evaluation encoder (eval.judge_seed) or both")
    pre.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's)")
    pre.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    pre.add_argument("--force", action="store_true", help="retrain from scratch")
    pre.add_argument("--no-resume", action="store_true", help="do not resume from the latest checkpoint")

    tg = sub.add_parser("train-gan", help="train one GAN experiment (model family x loss variant)")
    tg.add_argument("experiment")
    tg.add_argument("--profile", default="smoke")
    tg.add_argument("--seed", type=int, default=None)
    tg.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's)")
    tg.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    tg.add_argument("--force", action="store_true", help="retrain from scratch")
    tg.add_argument("--no-resume", action="store_true")
    tg.add_argument("--config", default=None, metavar="CONFIG.json",
                    help="a resolved config (a run's config.json) instead of --profile/--seed/--set")

    ev = sub.add_parser("evaluate", help="evaluate one trained GAN experiment")
    ev.add_argument("experiment")
    ev.add_argument("--profile", default="smoke")
    ev.add_argument("--seed", type=int, default=None)
    ev.add_argument("--device", default=None)
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ev.add_argument("--force", action="store_true")

    lc = sub.add_parser("learning-curve", help="train one run keeping every checkpoint, then evaluate each "
                        "(JSON + figure under learning_curve/)")
    lc.add_argument("experiment")
    lc.add_argument("--profile", default="demo")
    lc.add_argument("--seed", type=int, default=None)
    lc.add_argument("--device", default=None)
    lc.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    lc.add_argument("--force", action="store_true", help="re-evaluate checkpoints evaluated before")

    pl = sub.add_parser("plan", help="validate the data and print the full plan of a profile (no training)")
    pl.add_argument("--profile", default="paper")
    pl.add_argument("--dataset", default="cub", choices=["cub", "coco", "flowers", "flickr30k"])
    pl.add_argument("--no-check", action="store_true", help="skip the data-directory check")

    tb = sub.add_parser("tables", help="rebuild the tables of a profile from its metrics files")
    tb.add_argument("--profile", default="smoke")
    tb.add_argument("--results-dir", default="")
    return p


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .data.errors import DataError
    from .utils.logging import get_logger

    get_logger()
    args = _parser().parse_args(argv)
    t0 = time.time()
    try:
        if args.command == "prepare":
            if args.source in ("synthetic", "scenes"):
                from .data.scenes import prepare_scenes
                from .data.synthetic import prepare_synthetic

                fn = prepare_synthetic if args.source == "synthetic" else prepare_scenes
                out = fn(args.out, n_images=args.n_images, seed=args.seed, size=args.size,
                         n_captions=args.n_captions, test_fraction=args.test_fraction,
                         overwrite=args.force, progress=not args.no_progress)
            elif args.source == "karpathy":
                from .data.karpathy import prepare_karpathy

                out = prepare_karpathy(args.json, args.images, args.out, overwrite=args.force,
                                       store_size=args.store_size, on_bad="skip" if args.skip_bad else "raise",
                                       vocab_from=args.vocab_from, restval=args.restval, val=args.val,
                                       progress=not args.no_progress)
            else:
                from .data import attngan

                fn = {"cub": attngan.prepare_cub, "coco": attngan.prepare_coco,
                      "flowers": attngan.prepare_flowers}[args.source]
                out = fn(args.src, args.out, overwrite=args.force, store_size=args.store_size,
                         on_bad="skip" if args.skip_bad else "raise", vocab_from=args.vocab_from,
                         progress=not args.no_progress)
            from .data.dataset import dataset_summary

            s = dataset_summary(out)
            print(f"wrote {out}: {s['n_images']} images {s['splits']}, {s['n_captions']} captions, "
                  f"vocabulary {s['vocab_size']}, skipped {s['skipped']} ({time.time() - t0:.1f} s)")
        elif args.command == "config":
            from .config import parse_cli_overrides, resolve

            c = resolve(args.experiment, args.profile, parse_cli_overrides(args.overrides), seed=args.seed)
            print(json.dumps({"run_id": c.run_id, "hash": c.hash, "config": c.to_dict()}, indent=2))
        elif args.command == "pretrain-damsm":
            from .config import parse_cli_overrides, resolve
            from .data.prepare import ensure_dataset
            from .train import distributed
            from .train.damsm import damsm_config_for, pretrain_damsm
            from .utils.device import resolve_device

            over = parse_cli_overrides(args.overrides)
            if args.seed is not None:
                over["damsm.seed"] = args.seed
            from .train.damsm import judge_config_for

            full = resolve(args.experiment, args.profile, over)
            cfgs = {"training": damsm_config_for(full)}
            if args.which in ("both", "judge") and full.eval.judge and not full.eval.judge_encoder_path:
                cfgs["judge"] = judge_config_for(full)
            if args.which == "judge":
                cfgs.pop("training")
            if not cfgs:
                raise ConfigError("nothing to pretrain: the judge is off (eval.judge) or given (eval.judge_encoder_path)")
            first = next(iter(cfgs.values()))
            info, ddev = distributed.init(args.device or first.run.device)  # torchrun: join the process group
            device = ddev or resolve_device(args.device or first.run.device)
            done = {role: pretrain_damsm(c, device, ensure_dataset(c), force=args.force, resume=not args.no_resume)
                    for role, c in cfgs.items()}
            distributed.shutdown(info)
            if not info.is_main:
                return 0
            for role, s in done.items():
                rp = s["r_precision_best"]
                print(f"DAMSM ({role} encoder) {s['run_id']}: best epoch {s['best_epoch']}, real-image R-precision "
                      f"{100 * rp['r_precision']:.1f} ± {100 * rp['r_precision_std']:.1f} % "
                      f"({rp['n_candidates']} candidates, {rp['n_queries']} test queries); {s['best_checkpoint']}")
        elif args.command == "train-gan":
            from .config import parse_cli_overrides, resolve
            from .data.prepare import ensure_dataset
            from .train.damsm import ensure_encoders
            from .train import distributed
            from .train.gan import train_gan
            from .utils.device import resolve_device

            if args.config:
                from .config import load_config

                if args.overrides or args.seed is not None:
                    raise ConfigError("train-gan --config takes the whole config from the file; drop --set/--seed")
                cfg = load_config(args.config)
                if cfg.experiment != args.experiment:
                    raise ConfigError(f"{args.config} holds experiment {cfg.experiment!r}, not {args.experiment!r}")
            else:
                cfg = resolve(args.experiment, args.profile, parse_cli_overrides(args.overrides), seed=args.seed)
            info, ddev = distributed.init(args.device or cfg.run.device)  # torchrun: join the process group
            device = ddev or resolve_device(args.device or cfg.run.device)
            root = ensure_dataset(cfg)  # every rank: a second one waits for the first's lock, then reuses it
            ensure_encoders(cfg, device, root)  # a missing DAMSM is pretrained by all ranks together (DDP)
            s = train_gan(cfg, device, root, force=args.force, resume=not args.no_resume)
            distributed.shutdown(info)
            if not info.is_main:
                return 0
            print(f"GAN {s['run_id']}: {s['steps']} steps in {s['wall_seconds']:.0f} s on {s['device']}; "
                  f"samples {s['sample_grid']}")
        elif args.command == "evaluate":
            from .config import parse_cli_overrides, resolve
            from .data.prepare import ensure_dataset
            from .metrics.evaluate import evaluate_gan
            from .utils.device import resolve_device

            cfg = resolve(args.experiment, args.profile, parse_cli_overrides(args.overrides), seed=args.seed)
            r = evaluate_gan(cfg, resolve_device(args.device or cfg.run.device), ensure_dataset(cfg), force=args.force)
            print(json.dumps({"run_id": r["run_id"], "metrics": {k: v for k, v in r["metrics"].items()
                                                                  if k != "is_unavailable_reason"}}, indent=2))
        elif args.command == "learning-curve":
            from .config import parse_cli_overrides, resolve
            from .data.prepare import ensure_dataset
            from .report import figures, learning_curve as lcm
            from .train.damsm import ensure_encoders
            from .train.gan import train_gan
            from .utils.device import resolve_device

            over = {"train.keep_checkpoints": 0, **parse_cli_overrides(args.overrides)}
            cfg = resolve(args.experiment, args.profile, over, seed=args.seed)
            device = resolve_device(args.device or cfg.run.device)
            root = ensure_dataset(cfg)
            ensure_encoders(cfg, device, root)
            train_gan(cfg, device, root)
            rec = lcm.learning_curve(cfg, device, root, force=args.force)
            fig = figures.save(lcm.figure([rec], f"learning curve of {cfg.run_id}"),
                               lcm.curve_dir(cfg) / f"{cfg.run_id}.png")
            both = lcm.combined_figure(cfg)  # every curve of this profile and seed in one figure
            for p in rec["points"]:
                print(json.dumps(p))
            print(f"wrote {rec['_file']}, {fig} and {both}")
        elif args.command == "plan":
            from .plan import format_plan, paper_plan

            print(format_plan(paper_plan(args.profile, args.dataset, check=not args.no_check)))
        elif args.command == "tables":
            from . import paths
            from .report.tables import write_tables

            out = paths.profile_dir(args.profile, args.results_dir or None)
            files = write_tables(out / "metrics", out / "tables")
            print("\n".join(str(p) for p in files.values()))
        elif args.command == "summary":
            from .data.dataset import dataset_summary

            print(json.dumps(dataset_summary(args.root), indent=2))
    except (DataError, ConfigError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
