"""End-to-end: the CLI, notebook 00 through papermill, and run_all.sh itself (smoke profile)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import smoke_env

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra):
    env = dict(os.environ, T2I_PROGRESS="off", **extra)
    env.pop("VIRTUAL_ENV", None)  # run_all.sh picks the interpreter itself (the same .venv, or the active env)
    return env


def test_cli_prepare_synthetic_and_errors(tmp_path):
    out = tmp_path / "shapes"
    r = subprocess.run([sys.executable, "-m", "t2i_lib", "prepare", "synthetic", "--out", str(out),
                        "--n-images", "30", "--seed", "2", "--size", "32", "--no-progress"],
                       capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "30 images" in r.stdout
    from t2i_lib.data import CaptionDataset

    ds = CaptionDataset(out, "train", image_sizes=(32,))
    assert ds[0]["images"][0].shape == (3, 32, 32)
    again = subprocess.run([sys.executable, "-m", "t2i_lib", "prepare", "synthetic", "--out", str(out),
                            "--n-images", "30", "--no-progress"], capture_output=True, text=True, env=_env())
    assert again.returncode == 2 and again.stderr.startswith("error:") and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    bad = subprocess.run([sys.executable, "-m", "t2i_lib", "config", "ssagan_f2f", "--set", "train.nope=1"],
                         capture_output=True, text=True, env=_env())
    assert bad.returncode == 2 and "unknown config key 'train.nope'" in bad.stderr
    summ = subprocess.run([sys.executable, "-m", "t2i_lib", "summary", str(out)], capture_output=True, text=True)
    assert json.loads(summ.stdout)["n_images"] == 30


@pytest.mark.slow
def test_notebook_00_papermill_smoke(tmp_path):
    import papermill as pm

    out = tmp_path / "results"
    pm.execute_notebook(str(ROOT / "notebooks" / "00_prepare_data.ipynb"), str(tmp_path / "00.ipynb"),
                        parameters={"PROFILE": "smoke", "RESULTS_DIR": str(out), "OVERRIDES": {"data.n_images": 40}},
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)
    rec = json.loads((out / "data_summary.json").read_text())
    assert rec["summary"]["n_images"] == 40 and rec["summary"]["name"] == "caption-shapes"
    assert 0 < rec["diversity"]["sibling_jaccard"] < 1
    for name in ("00_samples.png", "00_caption_lengths.png", "00_wording_diversity.png"):
        assert (out / "figures" / name).stat().st_size > 5000
    nb = json.loads((tmp_path / "00.ipynb").read_text())
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb["cells"] for o in c.get("outputs", []))


@pytest.mark.slow
def test_run_all_smoke(smoke_results):
    out, r, seconds = smoke_results
    assert r.returncode == 0, r.stderr[-3000:]
    # one line per notebook with its time, and no kernel or nbconvert notices
    lines = [l for l in r.stderr.splitlines() if l.startswith("[run_all] 0")]
    assert len(lines) == 15 and all(re.search(r" \d+ s$", l) for l in lines), r.stderr[-3000:]
    assert "without encryption" not in r.stderr and "Alternative text" not in r.stderr
    html = out / "reports" / "00_prepare_data.html"
    assert html.stat().st_size > 50_000
    text = html.read_text()
    assert "data:image/png;base64" in text and "Traceback" not in text
    assert str(out) not in text and str(ROOT) not in text  # paths written relative
    assert (out / "executed" / "00_prepare_data.ipynb").is_file()
    assert (out / "env" / "pip-freeze.txt").read_text().count("==") > 20
    assert "git_commit:" in (out / "env" / "run.txt").read_text()
    assert json.loads((out / "data_summary.json").read_text())["summary"]["n_images"] == 240
    # 01: DAMSM pretraining products
    assert (out / "reports" / "01_pretrain_damsm.html").stat().st_size > 50_000
    metrics = sorted((out / "metrics").glob("damsm-smoke-*.json"))
    assert [p.name.split("-")[2] for p in metrics] == ["s0", "s1"]  # the training encoder and the judge (seed 1)
    for p in metrics:
        m = json.loads(p.read_text())
        assert 0.0 <= m["r_precision"] <= 1.0 and m["protocol"]["n_candidates"] == 10
    for fig in ("01_damsm_curves.png", "01_word_attention.png"):
        assert (out / "figures" / fig).stat().st_size > 5000
    # 02: one GAN run per model family x loss variant
    for fam in ("ssagan", "style_attngan"):
        for variant in ("baseline", "f2r", "f2f", "both"):
            assert (out / "reports" / f"02_train_gan-{fam}_{variant}.html").stat().st_size > 50_000
            assert (out / "figures" / f"02_{fam}_{variant}_samples.png").is_file()
        summaries = [json.loads(p.read_text()) for p in (out / "runs").glob(f"{fam}_*/summary.json")]
        assert sorted(s["losses"]["f2f"] > 0 for s in summaries) == [False, False, True, True]
    # 03-05: evaluation, tables, semantic consistency
    gan_metrics = [json.loads(p.read_text()) for p in (out / "metrics").glob("*attngan_*.json")] + \
        [json.loads(p.read_text()) for p in (out / "metrics").glob("ssagan_*.json")]
    assert sorted(m["variant"] for m in gan_metrics) == ["baseline", "baseline", "both", "both", "f2f", "f2f",
                                                         "f2r", "f2r"]
    for m in gan_metrics:
        assert m["metrics"]["fid"] > 0 and m["metrics"]["is_mean"] is None and m["metrics"]["is_unavailable_reason"]
        assert 0 <= m["metrics"]["r_precision"] <= 1 and m["protocol"]["n_samples"] == 48
    table = (out / "tables" / "measured.md").read_text()
    assert all(f"| {m} | {v} |" in table for v in ("baseline", "f2r", "f2f", "both")
               for m in ("SSA-GAN", "AttnGAN + style blocks"))
    assert (out / "tables" / "published_cub.md").is_file() and (out / "figures" / "04_metrics.png").is_file()
    for fam in ("ssagan", "style_attngan"):
        assert (out / "figures" / f"05_side_by_side_{fam}.png").stat().st_size > 10_000
    study = (out / "study.md").read_text()
    assert "## Claim (a)" in study and "Limits of this testbed" in study and "inconclusive" in study  # one seed
    for nb in ("03_evaluate", "04_paper_tables", "05_semantic_consistency", "06_study", "07_human_eval"):
        assert (out / "reports" / f"{nb}.html").stat().st_size > 50_000
    # 07: the blinded study page, its screenshots (when a browser is installed) and simulated raters analysed
    he = out / "human_eval"
    assert (he / "study" / "index.html").is_file() and (he / "study_key.json").is_file()
    assert json.loads((he / "results.json").read_text())["source"] == "simulated"
    from t2i_lib.utils import browser

    if browser.skip_reason() is None:
        assert all(0 < (he / f"screenshot_{v}.png").stat().st_size < 200_000 for v in ("desktop", "phone"))
    # A second run with nothing changed skips every notebook (by key), in seconds, and touches nothing.
    report_time = html.stat().st_mtime_ns
    t0 = time.time()
    again = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--results-dir", str(out)],
                           capture_output=True, text=True, env=smoke_env(), cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("skipped: unchanged") == 15 and "0 notebook(s) run, 15 skipped" in again.stderr
    assert time.time() - t0 < 60 and html.stat().st_mtime_ns == report_time
    plan = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--results-dir", str(out), "--dry-run"],
                          capture_output=True, text=True, env=smoke_env(), cwd=ROOT, timeout=600)
    assert plan.returncode == 0 and plan.stderr.count("up to date (would skip)") == 15, plan.stderr[-2000:]
    # --rerun executes again and reuses every run and metrics file; a stale metrics file of an older config of the
    # same experiment and seed (e.g. from before an upgrade) is not mixed into the tables and the study.
    stale = json.loads(next((out / "metrics").glob("ssagan_f2f-*.json")).read_text())
    stale.update(run_id="ssagan_f2f-smoke-s0-01d01d00", config_hash="0" * 64)
    (out / "metrics" / "ssagan_f2f-smoke-s0-01d01d00.json").write_text(json.dumps(stale))
    try:
        again = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--results-dir", str(out), "--only", "04",
                                "--rerun"], capture_output=True, text=True, env=smoke_env(), cwd=ROOT, timeout=1200)
    finally:
        (out / "metrics" / "ssagan_f2f-smoke-s0-01d01d00.json").unlink()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 notebook(s) run, 0 skipped" in again.stderr
    assert (out / "tables" / "measured.md").read_text() == table
    # no executed notebook written back into notebooks/
    nb = json.loads((ROOT / "notebooks" / "00_prepare_data.ipynb").read_text())
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")

