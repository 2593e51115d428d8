#!/usr/bin/env python3
"""Run a profile's GAN ablation (families x loss variants x seeds) as concurrent processes on one GPU, inside a
wall-clock budget, then evaluate every run.  Made for a lent or rented GPU box with a hard time limit:

    python3 scripts/gpu_study.py --profile demo --seeds 0,1,2 --budget-s 540 --out "$OUT"

On a CPU machine the same script runs the demo study in pieces, two single-threaded runs at a time (each piece
finishes on its own and leaves its metrics files; notebook 06 / ``run_all.sh --only 06`` combines them):

    .venv/bin/python scripts/gpu_study.py --profile demo --device cpu --jobs 2 --max-steps profile --no-check \
        --budget-s 10800 --seeds 0

Small models at 64 px leave a big GPU mostly idle (each step is launch-bound), so the runs go concurrently, one
process each (``--jobs``).  With ``--max-steps auto`` a short probe of all runs at once measures the slowest
run's step time under that load, and the step count is the largest multiple of ``--step-multiple`` that fits
the budget (capped by the profile's own schedule); the same count is used for every run, and it is recorded in
the piece's ``study_run-s<seeds>[-<hash of the experiment list>].json`` (per-run seconds included; the hash only
when the experiments are not the default twelve).  Every finished run is evaluated at once (``python -m t2i_lib
evaluate``), and each run of the piece's last seed leaves its loss curves and sample grids in
``figures/02_<experiment>_*.png``, as notebook 02 does.  With ``--out``, a tarball of the small products (configs,
logs, summaries, sample grids, metrics; no checkpoints, no data) is rewritten after every finished run, so a time
limit loses only unfinished runs.

Everything goes through the CLI (``train-gan`` / ``evaluate``); results land in ``results/<profile>/`` as with
``run_all.sh``; the tables and study report are then built anywhere from the metrics files.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t2i_lib import config as C  # noqa: E402
from t2i_lib import paths  # noqa: E402

FAMILIES = ("ssagan", "style_attngan", "attngan")
VARIANTS = ("baseline", "f2r", "f2f", "both")


def log(msg: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="demo")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--experiments", default=",".join([f"{f}_{v}" for f in FAMILIES for v in VARIANTS]),
                   help="default: the 3 families x 4 variants (plain AttnGAN separates the losses from the style "
                        "blocks)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--jobs", type=int, default=0, help="concurrent runs (0: all of them)")
    p.add_argument("--budget-s", type=float, default=540.0, help="wall-clock seconds this script may take")
    p.add_argument("--max-steps", default="auto",
                   help="'auto' (probe), 'profile' (the profile's own schedule: the same run ids as run_all.sh) or "
                        "a step count for every run")
    p.add_argument("--probe-steps", type=int, default=24)
    p.add_argument("--step-multiple", type=int, default=100)
    p.add_argument("--min-steps", type=int, default=100)
    p.add_argument("--eval-reserve-s", type=float, default=90.0, help="seconds kept for evaluation and packing")
    p.add_argument("--expect-fingerprint", default="",
                   help="content hash of the dataset copy elsewhere (e.g. where the DAMSM was trained); a mismatch "
                        "is recorded and warned about (abort with --strict-fingerprint)")
    p.add_argument("--strict-fingerprint", action="store_true")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config overrides for training and evaluation (e.g. eval.fid_weights=PATH)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the smoke train+evaluate check that runs beside the probe (aborts early on failure)")
    p.add_argument("--mem-per-run-gb", type=float, default=5.0, help="GPU memory budget per concurrent run")
    p.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for the results tarball and log")
    return p.parse_args(argv)


def record_name(seeds: list[int], exps: list[str]) -> str:
    """File name of a piece's record: ``study_run-s<seeds>.json`` for the default 3 x 4 arms, with a short hash of
    the experiment list appended for any other set, so pieces of the same seed with different arms (run one after
    the other, or side by side on two cores) do not overwrite each other's record."""
    import hashlib

    name = f"study_run-s{'_'.join(map(str, seeds))}"
    if list(exps) != [f"{f}_{v}" for f in FAMILIES for v in VARIANTS]:
        name += "-" + hashlib.sha256(",".join(exps).encode()).hexdigest()[:8]
    return name + ".json"


def natural_steps(cfg) -> int:
    """The profile's own step count (epochs x steps per epoch, or max_steps)."""
    from t2i_lib.data.dataset import read_manifest
    from t2i_lib.data.prepare import dataset_root
    from t2i_lib.train.gan import images_per_loader_batch

    if cfg.train.max_steps > 0:
        return cfg.train.max_steps
    n_train = read_manifest(dataset_root(cfg))["splits"]["train"]
    return cfg.train.epochs * (n_train // images_per_loader_batch(cfg))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "t2i_lib", *args]


def sets(overrides: list[str]) -> list[str]:
    out = []
    for o in overrides:
        out += ["--set", o]
    return out


def child_env() -> dict:
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "T2I_PROGRESS": "off", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return env


def launch(jobs: list[dict], max_parallel: int, deadline: float, on_done=None, poll_s: float = 1.0) -> None:
    """Run each job's ``cmds`` (a list of argv, in order) as processes, at most ``max_parallel`` jobs at a time;
    jobs still running at ``deadline`` are killed and marked ``timeout``."""
    pending = list(jobs)
    running: list[dict] = []
    while pending or running:
        while pending and len(running) < max_parallel:
            j = pending.pop(0)
            j["t0"], j["stage"] = time.time(), 0
            j["logf"] = open(j["log"], "a")
            j["proc"] = subprocess.Popen(j["cmds"][0], stdout=j["logf"], stderr=subprocess.STDOUT, env=child_env(),
                                         cwd=str(ROOT))
            running.append(j)
        time.sleep(poll_s)
        for j in list(running):
            rc = j["proc"].poll()
            if rc is None:
                if time.time() > deadline:
                    j["proc"].kill()
                    j["proc"].wait()
                    j["status"] = "timeout"
                else:
                    continue
            elif rc != 0:
                j["status"] = f"failed (exit {rc}) in step {j['stage']}"
            elif j["stage"] + 1 < len(j["cmds"]):
                j["stage"] += 1
                j["proc"] = subprocess.Popen(j["cmds"][j["stage"]], stdout=j["logf"], stderr=subprocess.STDOUT,
                                             env=child_env(), cwd=str(ROOT))
                continue
            else:
                j["status"] = "ok"
            j["seconds"] = time.time() - j["t0"]
            j["logf"].close()
            running.remove(j)
            log(f"{j['name']}: {j['status']} after {j['seconds']:.0f} s")
            if on_done:
                on_done(j)
        if pending and time.time() > deadline:
            for j in pending:
                j["status"] = "not started (deadline)"
            pending.clear()


def read_step_seconds(stats_file: Path, skip: int) -> float | None:
    if not stats_file.is_file():
        return None
    rows = [json.loads(line) for line in stats_file.read_text().splitlines() if line.strip()]
    secs = [r["seconds"] for r in rows if r.get("step", 0) > skip and "seconds" in r]
    return statistics.median(secs) if secs else None


def publish_figures(cfg, figures_dir: Path) -> list[str] | str:
    """A finished run's ``02_<experiment>_*.png`` figures (``gan_report.publish_run_figures``), as paths relative to
    the profile's results folder; the error, as text, when they cannot be drawn (a figure never stops a piece)."""
    from t2i_lib.report import gan_report
    from t2i_lib.train.gan import run_dir_for

    try:
        summary = json.loads((run_dir_for(cfg) / "summary.json").read_text())
        made = gan_report.publish_run_figures(summary, figures_dir, cfg.experiment)
    except Exception as e:  # noqa: BLE001 - reported in the piece's record and log
        log(f"figures of {cfg.run_id}: not drawn ({type(e).__name__}: {e})")
        return f"not drawn: {type(e).__name__}: {e}"
    return [os.path.relpath(p, figures_dir.parent) for p in made.values()]


def pack(profile_dir: Path, out: Path, name: str) -> None:
    """Tarball of the small products of ``profile_dir`` (no data, checkpoints or DAMSM weights)."""
    if not out:
        return
    tmp = out / f".{name}.partial"
    with tarfile.open(tmp, "w:gz") as tar:
        for p in sorted(profile_dir.rglob("*")):
            rel = p.relative_to(profile_dir)
            if not p.is_file() or rel.parts[0] == "data" or "checkpoints" in rel.parts or p.suffix == ".pt":
                continue
            tar.add(p, arcname=str(Path(profile_dir.name) / rel))
    tmp.replace(out / name)


def main(argv=None) -> int:
    a = parse_args(argv)
    t_start = time.time()
    deadline = t_start + a.budget_s
    out = Path(a.out) if a.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    exps = [e for e in a.experiments.split(",") if e.strip()]
    over = C.parse_cli_overrides(a.overrides)
    cfg0 = C.resolve(exps[0], a.profile, over)
    prof_dir = paths.profile_dir(a.profile, cfg0.run.results_dir)
    record: dict = {"profile": a.profile, "seeds": seeds, "experiments": exps, "overrides": a.overrides,
                    "budget_s": a.budget_s, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        import torch

        record["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        record["torch"] = torch.__version__
    except Exception as e:  # noqa: BLE001 - informational only
        record["device"] = f"unknown ({e})"
    log(f"device {record['device']}; {len(exps)} experiments x {len(seeds)} seeds")

    # 1. Data (generated here; must match the copy the DAMSM was trained on) and the DAMSM encoders.
    from t2i_lib.data.prepare import ensure_dataset, fingerprint
    from t2i_lib.train.damsm import encoder_path

    root = ensure_dataset(cfg0, progress=False)
    fp = fingerprint(root)
    # relative to the profile's results folder: a committed record names no path of the machine it ran on
    record["dataset"] = {"root": os.path.relpath(root, prof_dir), "fingerprint": fp}
    log(f"dataset {root.name} fingerprint {fp[:16]}")
    if a.expect_fingerprint:
        record["dataset"].update(expected=a.expect_fingerprint, matches=fp == a.expect_fingerprint)
        if fp != a.expect_fingerprint:
            log(f"WARNING: dataset fingerprint {fp} != expected {a.expect_fingerprint}")
            if a.strict_fingerprint:
                return 3
    enc = encoder_path(cfg0)
    if not enc.is_file():
        log(f"no DAMSM at {enc}: pretraining it first")
        subprocess.run(cli("pretrain-damsm", "--profile", a.profile, "--device", a.device, *sets(a.overrides)),
                       check=True, env=child_env(), cwd=str(ROOT))
    # The attribute classifier is shared by every evaluation: train it once, in the background, now.
    clf = subprocess.Popen([sys.executable, "-c", (
        "import sys; from t2i_lib import config as C; from t2i_lib.metrics.evaluate import attribute_classifier;"
        "from t2i_lib.data.prepare import ensure_dataset;"
        f"c = C.resolve({exps[0]!r}, {a.profile!r}, C.parse_cli_overrides({a.overrides!r}));"
        f"attribute_classifier(c, ensure_dataset(c, progress=False), {a.device!r})")],
        env=child_env(), cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = ["--profile", a.profile, "--device", a.device, "--set", "data.num_workers=0", *sets(a.overrides)]
    runs = [(e, s) for s in seeds for e in exps]
    par = a.jobs or len(runs)
    if not a.jobs and a.device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        par = max(1, min(len(runs), int(free / 2**30 / a.mem_per_run_gb)))
    record["parallel"] = par
    log(f"{len(runs)} runs, {par} at a time")
    # A smoke-sized train + evaluate of each family on this device, beside the probe: a code path that fails here
    # fails before the budget is spent on the real runs.
    check = None
    if not a.no_check:
        sc = Path(os.environ.get("TMPDIR", "/tmp")) / f"t2i-check-{os.getpid()}"
        ev_over = [o for o in a.overrides if o.startswith("eval.fid_weights=")]
        chain = " && ".join(" ".join(cli(cmd, f"{fam}_f2f", "--profile", "smoke", "--device", a.device,
                                         "--set", f"run.results_dir={sc}", *sets(ev_over)))
                            for fam in sorted({e.rsplit("_", 1)[0] for e in exps}) for cmd in ("train-gan", "evaluate"))
        check = subprocess.Popen(["bash", "-c", chain], env=child_env(), cwd=str(ROOT),
                                 stdout=open(f"{sc}.log", "w"), stderr=subprocess.STDOUT)

    # 2. Step count: probe all runs at once (scratch results dir) and fit the budget.
    natural = natural_steps(cfg0)
    if a.max_steps == "auto":
        probe_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"t2i-probe-{os.getpid()}"
        probe_over = {"train.max_steps": a.probe_steps, "train.log_every": 1, "run.results_dir": str(probe_dir),
                      "data.root": str(root), "damsm.encoder_path": str(enc), "train.ckpt_every": 100000,
                      "train.sample_every": 100000}
        pjobs = [{"name": f"probe {e} s{s}", "log": str(probe_dir.with_suffix(".log")),
                  "cmds": [cli("train-gan", e, "--seed", str(s), *base,
                               *sets([f"{k}={v}" for k, v in probe_over.items()]))]}
                 for e, s in runs[:par]]
        t_probe = time.time()
        launch(pjobs, par, deadline)
        probe_wall = time.time() - t_probe
        per_run = {}
        for j, (e, s) in zip(pjobs, runs[:par]):
            c = C.resolve(e, a.profile, {**over, **probe_over}, seed=s)
            per_run[f"{e} s{s}"] = read_step_seconds(probe_dir / "runs" / c.run_id / "stats.jsonl",
                                                      skip=a.probe_steps // 3)
        import shutil

        shutil.rmtree(probe_dir, ignore_errors=True)  # the probe's checkpoints are large and worthless
        bad = [k for k, v in per_run.items() if v is None]
        if bad:
            log(f"probe failed for {bad}; see {probe_dir.with_suffix('.log')}")
            print(Path(probe_dir.with_suffix(".log")).read_text()[-4000:])
            return 4
        slowest = max(per_run.values())
        overhead = max(probe_wall - a.probe_steps * slowest, 10.0)  # start-up, data, encoders, final save
        waves = -(-len(runs) // par)  # runs beyond the first `par` start when earlier ones finish
        usable = (deadline - time.time() - a.eval_reserve_s) / waves - overhead
        steps = int(usable / slowest) // a.step_multiple * a.step_multiple
        steps = max(a.min_steps, min(steps, natural))
        record["probe"] = {"steps": a.probe_steps, "parallel": par, "waves": waves, "wall_s": probe_wall,
                           "step_seconds_under_load": per_run, "slowest": slowest, "overhead_s": overhead,
                           "usable_s": usable}
        log(f"probe: slowest step {slowest * 1e3:.0f} ms with {par} runs at once, start-up {overhead:.0f} s; "
            f"{steps} steps per run (profile's own: {natural})")
    elif a.max_steps == "profile":
        steps = natural
    else:
        steps = int(a.max_steps)
    record["steps"] = steps
    record["natural_steps"] = natural
    if a.max_steps == "profile":  # each family keeps its own schedule (the profile's per-family parts)
        record["steps"] = None
        record["steps_per_experiment"] = {e: natural_steps(C.resolve(e, a.profile, over)) for e in exps}
    if check is not None:
        rc = check.wait()
        record["check"] = "ok" if rc == 0 else f"failed (exit {rc})"
        log(f"smoke check on {a.device}: {record['check']}")
        if rc != 0:
            print(Path(f"{sc}.log").read_text()[-6000:])
            return 5
    clf.wait()

    # 3. Train and evaluate every run; pack after each.
    run_over = [*base, *([] if a.max_steps == "profile" else ["--set", f"train.max_steps={steps}"])]
    jobs = [{"name": f"{e} s{s}", "log": str(prof_dir / f"study-{e}-s{s}.log"), "experiment": e, "seed": s,
             "cmds": [cli("train-gan", e, "--seed", str(s), *run_over), cli("evaluate", e, "--seed", str(s), *run_over)]}
            for e, s in runs]
    prof_dir.mkdir(parents=True, exist_ok=True)
    run_settings = {**over, **({} if a.max_steps == "profile" else {"train.max_steps": steps})}

    def done(j):
        if j is not None and j.get("status") == "ok" and j["seed"] == seeds[-1]:
            # the run's loss curves and sample grids, written as notebook 02 writes them: a piece leaves the figures
            # of its own runs, so a study combined from pieces run on different machines still has them
            cfg = C.resolve(j["experiment"], a.profile, run_settings, seed=j["seed"])
            record.setdefault("figures", {})[j["name"]] = publish_figures(cfg, prof_dir / "figures")
        record["runs"] = {x["name"]: {k: x.get(k) for k in ("status", "seconds")} for x in jobs}
        record["wall_s"] = time.time() - t_start
        (prof_dir / record_name(seeds, exps)).write_text(json.dumps(record, indent=2) + "\n")
        pack(prof_dir, out, f"results-{a.profile}.tar.gz")

    t_main = time.time()
    launch(jobs, par, deadline - 15, on_done=done)  # the record and the tarball after every finished run
    record["train_eval_wall_s"] = time.time() - t_main
    # 4. The side-by-side consistency figure (real image, then each variant's images from sibling captions) for
    #    the first seed of each family: it needs the generators, which stay on this machine.  Drawn from all four
    #    of the family's arms (trained by this piece or an earlier one), and only once all four are trained, so a
    #    piece with some of the arms never replaces the figure with a partial one.
    left = deadline - time.time() - 5
    fams = sorted({C.resolve(e, a.profile, over).model.family for e in exps})
    fam_arms = {f: [f"{f}_{v}" for v in VARIANTS] for f in fams}
    step_over = [] if a.max_steps == "profile" else [f"train.max_steps={steps}"]  # the runs' own step counts
    if left > 10:
        code = ("import sys; from t2i_lib import config as C; from t2i_lib.report import consistency_report as R, "
                "figures as F; from t2i_lib.data.prepare import ensure_dataset; from t2i_lib.train.gan import "
                "run_dir_for;\n"
                f"over = C.parse_cli_overrides({[*a.overrides, *step_over]!r})\n"
                f"for fam, arms in {fam_arms!r}.items():\n"
                f"    cs = [C.resolve(e, {a.profile!r}, over, seed={seeds[0]}) for e in arms]\n"
                "    missing = [c.experiment for c in cs if not (run_dir_for(c) / 'summary.json').is_file()]\n"
                "    if missing:\n"
                "        print(f'05_consistency_{fam}.png: not drawn, untrained arms', missing)\n"
                "    else:\n"
                f"        fig = R.side_by_side(cs, ensure_dataset(cs[0], progress=False), {a.device!r})\n"
                f"        print(F.save(fig, {str(prof_dir / 'figures')!r} + f'/05_consistency_{{fam}}.png'))\n")
        try:
            subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=str(ROOT), timeout=left, check=False)
        except subprocess.TimeoutExpired:
            log("consistency figure: out of time")
    done(None)
    ok = sum(j.get("status") == "ok" for j in jobs)
    log(f"{ok}/{len(jobs)} runs trained and evaluated in {time.time() - t_start:.0f} s")
    for j in jobs:
        if j.get("status") != "ok":
            log(f"--- {j['name']}: {j.get('status')}; log tail:")
            print(Path(j["log"]).read_text()[-1500:] if Path(j["log"]).is_file() else "(no log)")
    return 0 if ok == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
