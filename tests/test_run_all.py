"""run_all.sh as a command-line tool: bad arguments, the dry-run plan, the Lab entry point (fast; no notebook runs).

The smoke run itself, the skip of unchanged notebooks and --rerun are in test_end_to_end.py (slow)."""

import subprocess

import pytest

from conftest import PROJECT_ROOT as ROOT
from conftest import subprocess_env


def _run_all(*args, cwd=ROOT, timeout=300):
    return subprocess.run(["bash", str(ROOT / "run_all.sh"), *args], capture_output=True, text=True,
                          env=subprocess_env(), cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--only", "99"], "--only '99' matches no notebook"),
    (["--only", "03,zz"], "--only 'zz' matches no notebook"),
    (["--profile"], "option --profile needs a value"),
    (["--profile", "--dry-run"], "option --profile needs a value"),
    (["--results-dir"], "option --results-dir needs a value"),
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--profile=nope"], "unknown profile 'nope'"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--seeds", "a,b"], "--seeds must look like"),
    (["--nproc", "0"], "--nproc must be a positive integer"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
    (["--jobs"], "option --jobs needs a value"),
    (["--experiments", "a,,b"], "--experiments must look like"),
    (["--frobnicate"], "unknown argument '--frobnicate'"),
    (["extra"], "unknown argument 'extra'"),
])
def test_bad_arguments_give_usage_and_touch_nothing(tmp_path, args, message):
    out = tmp_path / "results"
    r = _run_all(*args, "--results-dir", str(out)) if "--results-dir" not in args else _run_all(*args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "usage: ./run_all.sh" in r.stderr
    assert "Traceback" not in r.stderr and "unbound variable" not in r.stderr
    assert not out.exists()


def test_help_lists_every_option():
    r = _run_all("--help")
    assert r.returncode == 0
    for opt in ("--profile", "--results-dir", "--only", "--seeds", "--experiments", "--nproc", "--jobs", "--dataset",
                "--dry-run", "--rerun", "--force", "--lab"):
        assert opt in r.stdout


def test_unknown_experiment_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "results"
    r = _run_all("--experiments", "ssagan_baseline,ssagan_nope", "--results-dir", str(out))
    assert r.returncode == 2 and "unknown experiment(s) for --experiments: ssagan_nope" in r.stderr
    assert not out.exists()


def test_dry_run_prints_the_whole_plan(tmp_path):
    out = tmp_path / "results"
    r = _run_all("--dry-run", "--results-dir", str(out), "--seeds", "0,1")
    assert r.returncode == 0, r.stderr
    would = [l for l in r.stderr.splitlines() if "would run" in l and "notebook(s)" not in l]
    assert len(would) == 2 + 8 * 2 + 5  # 00 and 01, 8 experiments x 2 seeds of 02, 03 to 07
    assert "02_train_gan-ssagan_f2f-s1" in r.stderr and "nothing missing" in r.stderr
    assert not out.exists()
    only = _run_all("--dry-run", "--results-dir", str(out), "--only", "04,06")
    assert [l.split()[1] for l in only.stderr.splitlines() if "would run" in l] == ["04_paper_tables", "06_study",
                                                                                  "2"]


def test_dry_run_of_the_paper_profile_lists_what_is_missing(tmp_path):
    out = tmp_path / "results"
    r = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "paper", "--dry-run", "--results-dir",
                        str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=subprocess_env(T2I_DATA_DIR=str(tmp_path / "no-data")))
    assert r.returncode == 3, r.stderr
    assert "02_train_gan-style_attngan_both" in r.stderr  # the whole notebook plan ...
    assert "GPU h" in r.stderr and "estimated total where known" in r.stderr  # ... the runs and GPU hours ...
    missing = r.stderr.split("[run_all] missing:")[1]
    assert "CUB data not found" in missing and str(tmp_path / "no-data") in missing  # ... and what is missing
    assert not out.exists()


def test_lab_script_starts_jupyterlab_as_root_safe():
    """Static: starting a server is left to the README's command (it runs until stopped)."""
    text = (ROOT / "scripts" / "lab.sh").read_text()
    assert '[[ "$(id -u)" == 0 ]] && ARGS+=(--allow-root)' in text
    assert 'PY="$(bash "$ROOT/scripts/setup_env.sh")"' in text and '"$PY" -m jupyter lab' in text
    assert 'exec bash "$ROOT/scripts/lab.sh" "$@"' in (ROOT / "run_all.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "lab.sh")]).returncode == 0
