"""Learning curves: every kept checkpoint of a run evaluated with the profile's protocol, against steps and time."""

import json
import math

import pytest
import torch

from t2i_lib import config as C
from t2i_lib.report import learning_curve as lc
from t2i_lib.train import gan
from conftest import load_script


def test_training_seconds_accumulate_the_logged_intervals(tmp_path):
    p = tmp_path / "stats.jsonl"
    p.write_text("".join(json.dumps({"step": s, "seconds": t}) + "\n" for s, t in ((2, 1.5), (4, 2.0), (6, 0.5))))
    table = lc.training_seconds(p)
    assert table == [(2, 1.5), (4, 3.5), (6, 4.0)]
    assert lc.seconds_at(4, table) == 3.5 and lc.seconds_at(5, table) == 3.5 and lc.seconds_at(1, table) is None


def test_chance_levels_from_the_protocol():
    rec = {"protocol": {"r_precision": {"n_candidates": 10},
                        "attribute_classifier": {"heads": {"shape": 5, "colour": 8, "position": 9, "size": 3}}}}
    ch = lc.chance_levels(rec)
    assert ch["r_precision"] == pytest.approx(0.1)
    assert ch["attribute_accuracy"] == pytest.approx((1 / 5 + 1 / 8 + 1 / 9 + 1 / 3) / 4)


def test_learning_curve_evaluates_every_kept_checkpoint(tmp_path):
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.train.damsm import damsm_config_for, judge_config_for, pretrain_damsm

    over = {"run.results_dir": str(tmp_path), "data.n_images": 80, "damsm.epochs": 1, "damsm.batch_size": 8,
            "damsm.small_width": 8, "damsm.embedding_dim": 32, "model.ngf": 4, "model.ndf": 4, "model.z_dim": 8,
            "train.batch_size": 4, "train.max_steps": 2, "train.log_every": 1, "train.ckpt_every": 1,
            "train.keep_checkpoints": 0, "eval.n_samples": 8, "eval.batch_size": 8, "eval.kid_subset_size": 4,
            "eval.consistency_images": 3, "eval.attribute_epochs": 1, "eval.feature_extractor": "t2i-tiny"}
    cfg = C.resolve("ssagan_baseline", "smoke", over)
    root = ensure_dataset(cfg)
    for c in (damsm_config_for(cfg), judge_config_for(cfg)):
        pretrain_damsm(c, torch.device("cpu"), root, max_batches=2)
    gan.train_gan(cfg, torch.device("cpu"), root)
    rec = lc.learning_curve(cfg, torch.device("cpu"), root)
    assert [p["step"] for p in rec["points"]] == [1, 2]
    assert all(p["train_seconds"] is not None and p["train_seconds"] > 0 for p in rec["points"])
    assert rec["points"][0]["train_seconds"] < rec["points"][1]["train_seconds"]
    assert all(0 <= p["attribute_accuracy"] <= 1 and math.isfinite(p["fid"]) for p in rec["points"])
    assert rec["config_hash"] == cfg.hash and rec["seed"] == 0 and rec["lib_version"]
    saved = json.loads((lc.curve_dir(cfg) / f"{cfg.run_id}.json").read_text())
    assert saved["points"] == rec["points"]
    # the two checkpoints are different models: their samples score differently
    assert rec["points"][0]["fid"] != rec["points"][1]["fid"]
    assert lc.combined_figure(cfg).stat().st_size > 1000
    # every evaluation on caption-shapes carries the pixel judge beside the classifier, with its chance levels
    full = json.loads((lc.curve_dir(cfg) / cfg.run_id / "metrics_000002.json").read_text())
    pj = full["protocol"]["pixel_judge"]
    assert pj["chance"] == {"colour": pytest.approx(1 / 8), "position": pytest.approx(1 / 9)}
    assert pj["n_checks"]["colour"] == 8  # every caption-shapes caption names the colour (8 evaluated samples)
    for k in ("pixel_colour_accuracy", "pixel_position_accuracy"):
        v = full["metrics"][k]
        assert v is None or 0 <= v <= 1
    assert full["metrics"]["pixel_colour_accuracy"] is not None
    # the quick screen scores the very samples the full evaluation scored: the same accuracies, in seconds
    from t2i_lib.metrics.evaluate import screen_checkpoint
    from t2i_lib.train.checkpoint import list_checkpoints

    ckpts = dict(list_checkpoints(gan.run_dir_for(cfg) / "checkpoints"))
    scr = screen_checkpoint(ckpts[2], torch.device("cpu"))
    for k in ("attribute_accuracy", "pixel_colour_accuracy", "pixel_position_accuracy"):
        assert scr[k] == pytest.approx(full["metrics"][k]), k
    assert scr["attribute_accuracy_per"] == pytest.approx(full["metrics"]["attribute_accuracy_per"])
    assert (scr["step"], scr["config_hash"], scr["n_samples"]) == (2, cfg.hash, 8)
    assert 0 <= scr["saturated_fraction"] <= 1 and -1 <= scr["mean_pixel"] <= 1
    script = load_script("screen_checkpoints")
    out = tmp_path / "screen.json"
    assert script.main([str(gan.run_dir_for(cfg)), "--label", "tiny", "--note", "a tiny run", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert [r["label"] for r in written["runs"]] == ["tiny"] and written["note"] == "a tiny run"
    assert [p["step"] for p in written["runs"][0]["points"]] == [1, 2]
    assert written["runs"][0]["points"][1]["attribute_accuracy"] == pytest.approx(scr["attribute_accuracy"])
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figure beside the JSON
    png.unlink()
    assert script.main(["--figure-only", str(out)]) == 0 and png.is_file()  # redrawn from the JSON alone
    with pytest.raises(SystemExit):  # labels must match the runs one to one
        script.main([str(gan.run_dir_for(cfg)), "--label", "a", "--label", "b", "--out", str(out)])
    with pytest.raises(SystemExit):  # --figure-only draws, it does not screen
        script.main([str(gan.run_dir_for(cfg)), "--figure-only", str(out)])
    # a run that kept one checkpoint has no curve to show
    one = C.resolve("ssagan_baseline", "smoke", {**over, "train.keep_checkpoints": 1, "train.max_steps": 3})
    gan.train_gan(one, torch.device("cpu"), root)
    with pytest.raises(ValueError, match="keep_checkpoints=0"):
        lc.learning_curve(one, torch.device("cpu"), root)


def test_curve_label_names_the_settings_that_differ_from_the_profile():
    base = C.resolve("attngan_baseline", "demo")
    rec = {"experiment": "attngan_baseline", "profile": "demo", "config": base.to_dict()}
    assert lc.curve_label(rec) == "attngan_baseline"
    changed = C.resolve("attngan_baseline", "demo", {"train.ema_decay": 0.999, "train.max_steps": 3000,
                                                      "train.ckpt_every": 1000, "model.ndf": 8})
    rec["config"] = changed.to_dict()
    # how the curve was recorded (steps, checkpoint interval) is not a setting; what was trained is
    assert lc.curve_label(rec) == "attngan_baseline (model.ndf=8, train.ema_decay=0.999)"


def test_curve_label_names_a_setting_added_after_the_curve_was_recorded(monkeypatch):
    """A curve recorded before ``model.d_gate_init`` existed has no such key; once the profile sets it, the label
    names the curve's value, the default (0: the behaviour before the field existed)."""
    rec = {"experiment": "ssagan_baseline", "profile": "demo", "config": C.resolve("ssagan_baseline", "demo").to_dict()}
    del rec["config"]["model"]["d_gate_init"]
    deltas = {**C.PROFILE_FAMILY_DELTAS, "demo": {**C.PROFILE_FAMILY_DELTAS["demo"],
                                                  "ssagan": {**C.PROFILE_FAMILY_DELTAS["demo"]["ssagan"],
                                                             "model": {"d_gate_init": 1.0}}}}
    monkeypatch.setattr(C, "PROFILE_FAMILY_DELTAS", deltas)
    assert lc.curve_label(rec) == "ssagan_baseline (model.d_gate_init=0)"
    rec["config"]["model"]["no_such_key"] = 1  # unreadable by from_dict: compared as recorded
    assert lc.curve_label(rec) == "ssagan_baseline"
    assert lc.curve_label({"experiment": "nope_x", "profile": "demo", "config": {}}) == "nope_x"


def test_screen_figure_draws_each_run_the_mean_and_chance():
    def pts(accs):
        return [{"step": 500 * (i + 1), "attribute_accuracy": a, "attribute_accuracy_chance": 0.185,
                 "pixel_colour_accuracy": a + 0.2, "pixel_position_accuracy": None if i == 0 else a}
                for i, a in enumerate(accs)]

    screen = {"runs": [{"label": "seed 0", "points": pts([0.2, 0.4, 0.5])},
                       {"label": "seed 1", "points": pts([0.2, 0.3])}]}
    assert "mean of 2 runs" not in [ln.get_label() for ln in lc.screen_figure(screen).axes[0].get_lines()]
    fig = lc.screen_figure(screen, "t", mean=True)
    attr, colour, position = fig.axes[:3]
    lines = {ln.get_label(): ln for ln in attr.get_lines()}
    assert list(lines["seed 0"].get_ydata()) == pytest.approx([20, 40, 50])
    # the mean only at steps every run reached (500 and 1000), chance dashed at 18.5 %
    assert list(lines["mean of 2 runs"].get_xdata()) == [500, 1000]
    assert list(lines["mean of 2 runs"].get_ydata()) == pytest.approx([20, 35])
    assert list(lines["chance"].get_ydata()) == pytest.approx([18.5, 18.5])
    assert [ln.get_label() for ln in position.get_lines()][:2] == ["seed 0", "seed 1"]
    assert list(position.get_lines()[0].get_xdata()) == [1000, 1500]  # missing values are left out, not zeroed
    with pytest.raises(ValueError, match="no runs"):
        lc.screen_figure({"runs": []})


def test_screen_figure_labels_many_runs_unless_they_are_seeds_of_one_setting():
    runs = [{"label": f"setting {k}", "points": [{"step": 500, "attribute_accuracy": 0.3,
                                                  "pixel_colour_accuracy": 0.5, "pixel_position_accuracy": 0.5}]}
            for k in range(8)]
    labels = [ln.get_label() for ln in lc.screen_figure({"runs": runs}).axes[0].get_lines()]
    assert labels == [f"setting {k}" for k in range(8)]  # eight settings: each named in the legend
    labels = [ln.get_label() for ln in lc.screen_figure({"runs": runs}, mean=True).axes[0].get_lines()]
    assert "setting 0" not in labels and "mean of 8 runs" in labels  # eight seeds: the mean carries the reading


def test_screen_figure_adds_a_shape_panel_when_points_carry_it():
    points = [{"step": 1000 * (i + 1), "attribute_accuracy": 0.5, "attribute_accuracy_chance": 0.185,
               "attribute_accuracy_per": {"shape": s, "colour": 0.9}, "pixel_colour_accuracy": 0.9,
               "pixel_position_accuracy": 0.9} for i, s in enumerate([0.21, 0.29, 0.27])]
    points[1]["attribute_accuracy_per"].pop("shape")  # a point without the attribute is left out
    fig = lc.screen_figure({"runs": [{"label": "r", "points": points}]})
    assert len(fig.axes) == 4 and "shape" in fig.axes[1].get_ylabel()
    lines = {ln.get_label(): ln for ln in fig.axes[1].get_lines()}
    assert list(lines["r"].get_xdata()) == [1000, 3000]
    assert list(lines["r"].get_ydata()) == pytest.approx([21, 27])
    assert list(lines["chance"].get_ydata()) == pytest.approx([20, 20])

