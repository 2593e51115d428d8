"""scripts/gpu_study.py and scripts/offline_bundle.py end to end on CPU at smoke size (the GPU box's tools)."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


def study_script():
    return load_script("gpu_study")


def test_record_names_keep_pieces_of_one_seed_apart():
    g = study_script()
    every = [f"{f}_{v}" for f in g.FAMILIES for v in g.VARIANTS]
    assert g.record_name([0, 1, 2], every) == "study_run-s0_1_2.json"  # the whole study: the plain name
    a, b = g.record_name([2], every[:4]), g.record_name([2], every[4:])
    assert a != b and a.startswith("study_run-s2-") and a.endswith(".json") and len(a) == len("study_run-s2-") + 13
    assert g.record_name([2], every[:4]) == a  # stable: a rerun of the same piece updates its own record


def _piece(tmp_path, experiments: str):
    env = {**os.environ, "T2I_RESULTS_DIR": str(tmp_path / "results"), "T2I_PROGRESS": "off"}
    r = subprocess.run([sys.executable, "scripts/gpu_study.py", "--profile", "smoke", "--device", "cpu",
                        "--seeds", "0", "--experiments", experiments, "--max-steps", "2", "--no-check",
                        "--budget-s", "500", "--out", str(tmp_path / "out"),
                        # the runner is under test, not the metrics: a tiny feature extractor and one DAMSM epoch
                        "--set", "eval.feature_extractor=t2i-tiny", "--set", "damsm.epochs=1"],
                       cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_study_runner_trains_evaluates_and_packs(tmp_path):
    out = tmp_path / "out"
    r = _piece(tmp_path, "ssagan_f2r")
    figure = tmp_path / "results" / "smoke" / "figures" / "05_consistency_ssagan.png"
    # one arm of four: the family's side-by-side figure waits for the others (never a partial figure)
    assert not figure.exists() and "not drawn, untrained arms" in r.stdout
    assert "ssagan_baseline" in r.stdout.split("not drawn, untrained arms")[1].splitlines()[0]
    name = study_script().record_name([0], ["ssagan_f2r"])
    assert name.startswith("study_run-s0-") and name != study_script().record_name([0], ["ssagan_f2f"])
    rec = json.loads((tmp_path / "results" / "smoke" / name).read_text())
    assert rec["dataset"]["root"].startswith("data/") and not os.path.isabs(rec["dataset"]["root"])
    assert rec["steps"] == 2 and rec["runs"] == {"ssagan_f2r s0": {"status": "ok", "seconds": rec["runs"]
                                                                   ["ssagan_f2r s0"]["seconds"]}}
    with tarfile.open(out / "results-smoke.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.startswith("smoke/metrics/ssagan_f2r-smoke-s0-") for n in names), names
    assert any(n.endswith("/stats.jsonl") for n in names) and f"smoke/{name}" in names
    assert not any("checkpoints" in n or n.endswith(".pt") or "/data/" in n for n in names), names
    # the run's own figures, as notebook 02 writes them, named in the record (paths relative to the results folder)
    figs = ["figures/02_ssagan_f2r_losses.png", "figures/02_ssagan_f2r_samples.png",
            "figures/02_ssagan_f2r_samples_captioned.png"]
    assert rec["figures"] == {"ssagan_f2r s0": figs}
    assert all((tmp_path / "results" / "smoke" / f).stat().st_size > 1000 for f in figs)
    metrics = json.loads(next((tmp_path / "results" / "smoke" / "metrics").glob("ssagan_f2r-*.json")).read_text())
    assert metrics["config"]["train"]["max_steps"] == 2 and metrics["metrics"]["fid"] > 0
    # a second piece with the other three arms: now the figure of all four is drawn, where the generators are
    _piece(tmp_path, "ssagan_baseline,ssagan_f2f,ssagan_both")
    assert figure.stat().st_size > 1000


def test_offline_bundle_round_trip(tmp_path):
    """pack (fp16 FID weights, the DAMSM run, the dataset fingerprint) then unpack into another results tree."""
    import torch

    from t2i_lib import config as C
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.metrics.fidelity import resolve_fid_weights
    from t2i_lib.train.damsm import damsm_config_for, pretrain_damsm

    env_a = {**os.environ, "T2I_RESULTS_DIR": str(tmp_path / "a")}
    over = {"run.results_dir": str(tmp_path / "a" / "smoke"), "damsm.epochs": 1}
    cfg = C.resolve("ssagan_baseline", "smoke", over)
    pretrain_damsm(damsm_config_for(cfg), torch.device("cpu"), ensure_dataset(cfg, progress=False), max_batches=1)
    r = subprocess.run([sys.executable, "scripts/offline_bundle.py", "pack", "--profile", "smoke", "--out",
                        str(tmp_path / "bundle"), "--set", "damsm.epochs=1"], cwd=ROOT, env=env_a,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "bundle" / "fid_inception_fp16.pt").stat().st_size < 50e6
    env_b = {**os.environ, "T2I_RESULTS_DIR": str(tmp_path / "b")}
    fid = tmp_path / "fid.pth"
    r = subprocess.run([sys.executable, "scripts/offline_bundle.py", "unpack", "--bundle", str(tmp_path / "bundle"),
                        "--fid-out", str(fid)], cwd=ROOT, env=env_b, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1].startswith(f"--set eval.fid_weights={fid} --expect-fingerprint ")
    rec = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert (tmp_path / "b" / "smoke" / "runs" / rec["damsm_run"] / "best.pt").is_file()
    a = torch.load(resolve_fid_weights("auto")["path"], weights_only=True)
    b = torch.load(fid, weights_only=True)
    assert set(a) == set(b)
    diff = max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point() and torch.isfinite(a[k]).all())
    assert 0 < diff < 1e-2  # fp16 rounding of weights of magnitude < 10
