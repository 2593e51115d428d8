"""Learning curves: the library's evaluation at every kept checkpoint of one run, against steps and wall time.

How long a schedule must be is a measurement, not a guess: train one run keeping every checkpoint
(``train.keep_checkpoints=0``; it does not change the run id), then :func:`learning_curve` evaluates each
checkpoint with the profile's protocol (attribute accuracy, R-precision, FID/KID, consistency) and writes
``results/<profile>/learning_curve/<run_id>.json`` (every point with its step, training seconds up to that step,
config hash, seed and library version) and a figure of the conditioning measures and FID against steps, with the
chance levels drawn in.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from .. import __version__, paths
from ..config import Config
from ..utils.io import flatten_dict, read_json, write_json

log = logging.getLogger(__name__)

CURVE_METRICS = ("attribute_accuracy", "r_precision", "fid", "kid_mean", "consistency_gap_damsm",
                 "consistency_gap_inception")


def curve_dir(cfg: Config) -> Path:
    return paths.profile_dir(cfg.profile, cfg.run.results_dir) / "learning_curve"


def training_seconds(stats_path: Path) -> list[tuple[int, float]]:
    """(step, cumulative training seconds) at every logged step of ``stats.jsonl``."""
    out, total = [], 0.0
    if not stats_path.is_file():
        return out
    for line in stats_path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            total += float(rec.get("seconds", 0.0))
            out.append((int(rec["step"]), total))
    return out


def seconds_at(step: int, table: list[tuple[int, float]]) -> float | None:
    """Training seconds up to ``step`` (the last logged step at or before it)."""
    before = [s for k, s in table if k <= step]
    return before[-1] if before else None


def learning_curve(cfg: Config, device, dataset_root: str | Path, force: bool = False,
                   progress: bool | str = "auto") -> dict[str, Any]:
    """Evaluate every kept checkpoint of the finished run of ``cfg``; returns (and writes) the curve record."""
    from ..metrics.evaluate import evaluate_gan
    from ..train.checkpoint import list_checkpoints
    from ..train.gan import run_dir_for

    run_dir = run_dir_for(cfg)
    if not (run_dir / "summary.json").is_file():
        raise FileNotFoundError(f"{run_dir / 'summary.json'} not found: train {cfg.run_id} first (with "
                                "train.keep_checkpoints=0 to keep every checkpoint)")
    ckpts = sorted(list_checkpoints(run_dir / "checkpoints"))
    if len(ckpts) < 2:
        raise ValueError(f"{cfg.run_id} kept {len(ckpts)} checkpoint(s); a learning curve needs several: train it "
                         "with train.keep_checkpoints=0 and train.ckpt_every below train.max_steps")
    secs = training_seconds(run_dir / "stats.jsonl")
    out_dir = curve_dir(cfg) / cfg.run_id
    points = []
    t0 = time.time()
    for step, path in ckpts:
        rec = evaluate_gan(cfg, device, dataset_root, force=force, progress=progress, checkpoint=path,
                           out_path=out_dir / f"metrics_{step:06d}.json")
        m = rec["metrics"]
        points.append({"step": step, "train_seconds": seconds_at(step, secs),
                       **{k: m.get(k) for k in CURVE_METRICS}})
        log.info("learning curve %s step %d: %s", cfg.run_id, step,
                 ", ".join(f"{k}={m.get(k):.4g}" for k in CURVE_METRICS if m.get(k) is not None))
    summary = read_json(run_dir / "summary.json")
    record = {"kind": "learning_curve", "run_id": cfg.run_id, "experiment": cfg.experiment,
              "family": cfg.model.family, "profile": cfg.profile, "seed": cfg.run.seed, "config_hash": cfg.hash,
              "lib_version": __version__, "config": cfg.to_dict(), "points": points,
              "train_wall_seconds": summary.get("wall_seconds"), "eval_seconds": time.time() - t0,
              "chance": chance_levels(rec), "protocol": rec.get("protocol", {}).get("r_precision")}
    path = write_json(curve_dir(cfg) / f"{cfg.run_id}.json", record)
    record["_file"] = str(path)
    return record


def chance_levels(rec: dict) -> dict[str, float | None]:
    """Chance levels of the conditioning measures for a metrics record: R-precision 1 / candidates; attribute
    accuracy of uniform guessing, averaged over the classifier's heads (None without a classifier)."""
    proto = rec.get("protocol", {})
    rp = (proto.get("r_precision") or {}).get("n_candidates")
    heads = (proto.get("attribute_classifier") or {}).get("heads") or {}
    attr = sum(1.0 / k for k in heads.values()) / len(heads) if heads else None
    return {"r_precision": 1.0 / rp if rp else None, "attribute_accuracy": attr}


# Settings that say how a curve was recorded, not what was trained: left out of a curve's label.
_NOT_A_SETTING = ("train.max_steps", "train.epochs", "train.ckpt_every", "train.sample_every", "train.log_every",
                  "train.keep_checkpoints", "run.", "eval.")


def curve_label(rec: dict) -> str:
    """``experiment`` plus the training settings in which the curve's run differs from its profile as it is today
    (e.g. ``attngan_baseline (train.ema_decay=0.99)``), so curves of one experiment under different settings can be
    told apart; the record's own config is the source, so an old curve names what a later profile changed.  That
    config is read back through ``config.from_dict``, so a setting added after the curve was recorded counts at the
    default it was given (the behaviour before it existed), and a profile that later changed it is named here."""
    from .. import config as C

    try:
        today = flatten_dict(C.resolve(rec["experiment"], rec["profile"]).to_dict())
    except Exception:  # noqa: BLE001 - an experiment or profile that no longer exists: no comparison
        return rec["experiment"]
    try:
        then = flatten_dict(C.from_dict(rec.get("config") or {}).to_dict())
    except Exception:  # noqa: BLE001 - a config with keys that no longer exist: read it as recorded
        then = flatten_dict(rec.get("config") or {})
    diff = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(then.items())
            if k in today and today[k] != v and not k.startswith(_NOT_A_SETTING)]
    return rec["experiment"] + (f" ({', '.join(diff)})" if diff else "")


def figure(records: list[dict], title: str = "learning curves"):
    """Attribute accuracy, R-precision and FID against training steps: one row per model family, one line per
    run, labelled with the settings in which it differs from today's profile (:func:`curve_label`); chance
    dashed."""
    from .figures import _plt

    plt = _plt()
    panels = [("attribute_accuracy", "attribute accuracy (%)", 100), ("r_precision", "R-precision (%)", 100),
              ("fid", "FID (lower is better)", 1)]
    families = sorted({r.get("family") or r["experiment"] for r in records})
    fig, axes = plt.subplots(len(families), len(panels), figsize=(4.4 * len(panels), 3.0 * len(families) + 0.4),
                             squeeze=False)
    for row, fam in zip(axes, families):
        recs = [r for r in records if (r.get("family") or r["experiment"]) == fam]
        labels = [curve_label(r)[len(r["experiment"]):].strip(" ()") or "today's profile" for r in recs]
        for ax, (key, ylabel, scale) in zip(row, panels):
            for rec, lab in zip(recs, labels):
                pts = [p for p in rec["points"] if p.get(key) is not None]
                ax.plot([p["step"] for p in pts], [p[key] * scale for p in pts], marker="o", ms=3, label=lab)
                ch = (rec.get("chance") or {}).get(key)
                if ch is not None:
                    ax.axhline(ch * scale, color="grey", ls="--", lw=0.8)
            ax.set_xlabel("training step")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if key != "fid":
                ax.set_ylim(bottom=0)
        row[0].set_title(recs[0]["experiment"], fontsize=9, loc="left")
        row[-1].legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.02, 0.5), title="settings",
                       title_fontsize=7)
    fig.suptitle(title + " (dashed: chance)", fontsize=10)
    fig.tight_layout()
    return fig


def combined_figure(cfg: Config) -> Path:
    """``learning_curves-s<seed>.png``: every learning curve of ``cfg``'s profile and seed in one figure."""
    from . import figures as F

    recs = []
    for p in sorted(curve_dir(cfg).glob("*.json")):
        rec = read_json(p)
        if rec.get("kind") == "learning_curve" and rec.get("seed") == cfg.run.seed:
            recs.append(rec)
    return F.save(figure(recs, f"learning curves, {cfg.profile} profile, seed {cfg.run.seed}"),
                  curve_dir(cfg) / f"learning_curves-s{cfg.run.seed}.png")



SCREEN_PANELS = (("attribute_accuracy", "attribute accuracy (%)"), ("pixel_colour_accuracy", "colour, pixel judge (%)"),
                 ("pixel_position_accuracy", "position, pixel judge (%)"))
# drawn when the screen's points carry it (caption-shapes): shape is the attribute the pixel judge cannot see
SHAPE_PANEL = ("attribute_accuracy_per.shape", "shape, attribute classifier (%)")


def _point_value(p: dict, key: str):
    """``p[key]``, or for ``a.b`` the nested ``p[a][b]``; None when missing."""
    for part in key.split("."):
        if not isinstance(p, dict):
            return None
        p = p.get(part)
    return p


def screen_figure(screen: dict, title: str = "checkpoint screen", mean: bool = False):
    """A checkpoint screen (``scripts/screen_checkpoints.py``'s JSON) against training steps: attribute accuracy,
    the classifier's shape accuracy (when the points carry it) and the pixel judge's colour and position, one line
    per screened run (its label), chance dashed; with ``mean`` (runs of one setting, e.g. seeds) also their mean
    at the steps every run reached, in black."""
    from .figures import _plt

    runs = [r for r in screen.get("runs", []) if r.get("points")]
    if not runs:
        raise ValueError("the screen has no runs with points")
    plt = _plt()
    panels = SCREEN_PANELS
    if any(_point_value(p, SHAPE_PANEL[0]) is not None for r in runs for p in r["points"]):
        panels = (SCREEN_PANELS[0], SHAPE_PANEL) + SCREEN_PANELS[1:]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    many = mean and len(runs) > 6  # many runs of one setting: thin unlabelled lines, the mean carries the reading
    for ax, (key, ylabel) in zip(axes[0], panels):
        by_step: dict[int, list[float]] = {}
        for r in runs:
            pts = sorted((p["step"], 100 * v) for p in r["points"] if (v := _point_value(p, key)) is not None)
            ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ms=2.5,
                    lw=0.7 if many else 1.2, alpha=0.45 if many else 1.0, label=None if many else r["label"])
            for step, v in pts:
                by_step.setdefault(step, []).append(v)
        common = sorted(s for s, v in by_step.items() if len(v) == len(runs))
        if mean and len(runs) > 1 and common:
            ax.plot(common, [sum(by_step[s]) / len(runs) for s in common], color="black", lw=2, marker="s", ms=4,
                    label=f"mean of {len(runs)} runs")
        if key == "attribute_accuracy":
            ch = [p["attribute_accuracy_chance"] for r in runs for p in r["points"]
                  if p.get("attribute_accuracy_chance") is not None]
            if ch:
                ax.axhline(100 * sum(ch) / len(ch), color="grey", ls="--", lw=0.8, label="chance")
        elif key == SHAPE_PANEL[0]:
            from ..data.synthetic import N_SHAPES

            ax.axhline(100 / N_SHAPES, color="grey", ls="--", lw=0.8, label="chance")
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
