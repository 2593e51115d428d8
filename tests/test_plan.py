"""The paper-profile dry run: data validation and the plan, without training."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from t2i_lib.data.errors import DataError
from t2i_lib.plan import format_plan, paper_plan

from conftest import subprocess_env
from test_attngan import make_cub

ROOT = Path(__file__).resolve().parent.parent


def test_plan_on_a_fixture_cub_tree(tmp_path, monkeypatch):
    src = make_cub(tmp_path / "data")
    monkeypatch.setenv("T2I_DATA_DIR", str(tmp_path / "data"))
    plan = paper_plan("paper", "cub")
    assert plan["data"]["splits"] == {"train": plan["n_train"], "test": plan["n_test"]} and plan["n_train"] > 0
    runs = plan["runs"]
    assert runs[0]["what"] == "DAMSM pretraining" and runs[-1]["run"] == "evaluation"
    trains = [r for r in runs if r["what"].startswith("train ")]
    assert len(trains) == 8 and {r["what"].split()[1] for r in trains} == {
        f"{f}_{v}_cub" for f in ("ssagan", "style_attngan") for v in ("baseline", "f2r", "f2f", "both")}
    f2f = next(r for r in trains if r["what"] == "train ssagan_f2f_cub")
    assert f2f["fakes_per_step"] == 2 * f2f["images_per_step"] == 48  # duplicate pairing, batch 24
    assert f2f["gpu_hours"] is not None and f2f["epochs"] == 600
    text = format_plan(plan)
    assert "OK" in text and "GPU hours" in text and str(src) in text


def test_plan_with_missing_data_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("T2I_DATA_DIR", str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="CUB data not found .* README"):
        paper_plan("paper", "cub")


@pytest.mark.slow
def test_run_all_paper_dry_run(tmp_path):
    env = dict(os.environ, T2I_DATA_DIR=str(tmp_path / "nothing"))
    env.pop("VIRTUAL_ENV", None)
    r = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "paper", "--dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 3 and "CUB data not found" in r.stderr and "Traceback" not in r.stderr
    make_cub(tmp_path / "data")
    env["T2I_DATA_DIR"] = str(tmp_path / "data")
    r = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "paper", "--dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr  # run_all.sh prints the plan on stderr
    assert "Plan for profile 'paper' on CUB" in out and "train style_attngan_both_cub" in out


def test_measured_throughput_picks_the_matching_plain_benchmark(tmp_path):
    import json

    from t2i_lib.plan import measured_throughput

    def write(name, flags, rows):
        (tmp_path / name).write_text(json.dumps({"device_name": "GPU X", "flags": flags, "rows": rows}))

    row = lambda v, p, ips: {"family": "ssagan", "variant": v, "pairing": p, "images_per_s": ips}  # noqa: E731
    write("train_step-cuda-paper-256px-b24-duplicate.json", {}, [row("baseline", "duplicate", 50.0),
                                                                  row("f2f", "duplicate", 28.0)])
    write("train_step-cuda-paper-256px-b24-split.json", {}, [row("f2f", "split", 24.0)])
    write("train_step-cuda-paper-256px-b24-duplicate-precision-bf16.json", {"train.precision": "bf16"},
          [row("baseline", "duplicate", 999.0)])
    assert measured_throughput("ssagan", "baseline", 256, 24, "split", tmp_path)[0] == 50.0  # pairing irrelevant
    assert measured_throughput("ssagan", "f2f", 256, 24, "split", tmp_path)[0] == 24.0
    ips, src = measured_throughput("ssagan", "f2f", 256, 24, "duplicate", tmp_path)
    assert ips == 28.0 and "GPU X" in src
    assert measured_throughput("ssagan", "baseline", 256, 10, "duplicate", tmp_path)[0] is None  # other batch
    assert measured_throughput("style_attngan", "baseline", 256, 24, "duplicate", tmp_path)[0] is None


def test_encoder_groups_one_per_distinct_damsm_config(monkeypatch):
    from t2i_lib import config as C
    from t2i_lib.plan import encoder_groups
    from t2i_lib.train.damsm import damsm_config_for

    exps = ["ssagan_baseline", "ssagan_f2f", "attngan_baseline", "style_attngan_both"]
    (only,) = encoder_groups("smoke", exps)  # every family on the profile's encoder
    assert only["experiments"] == exps and only["default"] is True
    assert only["families"] == ["ssagan", "attngan", "style_attngan"]
    assert only["run_id"] == damsm_config_for(C.resolve("damsm", "smoke")).run_id
    # a family delta that changes a DAMSM setting gives that family its own encoder, not the default one
    deltas = {**C.PROFILE_FAMILY_DELTAS, "smoke": {"ssagan": {"damsm": {"epochs": 3}}}}
    monkeypatch.setattr(C, "PROFILE_FAMILY_DELTAS", deltas)
    own, shared = encoder_groups("smoke", exps)
    assert own["experiments"] == ["ssagan_baseline", "ssagan_f2f"] and own["families"] == ["ssagan"]
    assert own["default"] is False and own["run_id"] == damsm_config_for(C.resolve("ssagan_f2f", "smoke")).run_id
    assert shared["experiments"] == ["attngan_baseline", "style_attngan_both"] and shared["default"] is True
    assert own["run_id"] != shared["run_id"]
    # a non-semantic override (where results go) changes no run id
    assert encoder_groups("smoke", exps, {"run.results_dir": "/elsewhere"})[0]["run_id"] == own["run_id"]


def test_demo_profile_gives_ssagan_its_own_encoder_pair():
    """The demo trains SSA-GAN on a 20-epoch DAMSM pair (it draws shape with it) and keeps the two AttnGAN families
    on the profile's 10-epoch pair; run_all.sh plans notebook 01 once more for SSA-GAN's pair."""
    from t2i_lib import config as C
    from t2i_lib.plan import encoder_groups

    exps = [f"{f}_{v}" for f in ("ssagan", "style_attngan", "attngan") for v in ("baseline", "f2r", "f2f", "both")]
    own, shared = encoder_groups("demo", exps)
    assert own["families"] == ["ssagan"] and own["default"] is False and own["experiments"] == exps[:4]
    assert shared["families"] == ["style_attngan", "attngan"] and shared["default"] is True
    assert [C.resolve(e, "demo").damsm.epochs for e in ("ssagan_f2f", "attngan_f2f", "style_attngan_f2f")] == [20, 10, 10]
    ssa = C.resolve("ssagan_both", "demo")
    assert ssa.model.d_gate_init == 1.0 and ssa.train.attribute_negatives and ssa.train.max_steps == 4000
    # attribute negatives need caption-shapes' attributes: on another dataset the demo's SSA-GAN trains without them
    assert not C.resolve("ssagan_both_cub", "demo").train.attribute_negatives
    assert not C.resolve("ssagan_both", "demo", {"data.dataset": "caption-scenes"}).train.attribute_negatives
    assert C.resolve("ssagan_both_cub", "demo").model.d_gate_init == 1.0
    assert not C.resolve("ssagan_both", "demo", {"train.attribute_negatives": False}).train.attribute_negatives
    dry = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "demo", "--dry-run"], capture_output=True,
                         text=True, cwd=ROOT, timeout=300, env=subprocess_env())
    assert dry.returncode == 0, dry.stderr
    assert "01_pretrain_damsm-ssagan" in dry.stderr and "-p TAG -ssagan" in dry.stderr


def test_the_committed_demo_study_is_the_demo_profiles():
    """Every GAN metrics file of results/demo/ has the run id that the demo profile gives its experiment and seed
    today: the committed study comes from the profile's schedule, not from an override."""
    from t2i_lib import config as C

    records = [json.loads(f.read_text()) for f in sorted((ROOT / "results" / "demo" / "metrics").glob("*.json"))]
    gan = [r for r in records if r.get("kind") == "gan"]
    assert len(gan) == 36
    for rec in gan:
        assert C.resolve(rec["experiment"], "demo", seed=rec["seed"]).run_id == rec["run_id"], rec["run_id"]
