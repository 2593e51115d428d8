"""Reliability end to end: SIGKILL mid-run and resume, atomic writes under a full disk, determinism."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from t2i_lib.train import checkpoint as ck
from t2i_lib.utils import io as tio

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "data.n_images=80", "--set", "damsm.batch_size=8", "--set", "damsm.small_width=8",
        "--set", "damsm.embedding_dim=32", "--set", "model.ngf=4", "--set", "model.ndf=4", "--set", "model.z_dim=8",
        "--set", "train.batch_size=4"]


def _env(results):
    return dict(os.environ, T2I_RESULTS_DIR=str(results), T2I_PROGRESS="off", PYTHONUNBUFFERED="1")


def _cli(args, results, **kw):
    return subprocess.run([sys.executable, "-m", "t2i_lib", *args], env=_env(results), cwd=ROOT,
                          capture_output=True, text=True, timeout=900, **kw)


def _kill_when(args, results, path_glob, timeout=600):
    """Start the CLI, SIGKILL it as soon as a file matching ``path_glob`` exists under ``results``."""
    p = subprocess.Popen([sys.executable, "-m", "t2i_lib", *args], env=_env(results), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if list(Path(results).glob(path_glob)):
                p.send_signal(signal.SIGKILL)
                p.wait(30)
                return True
            if p.poll() is not None:
                return False  # finished before we could kill it
            time.sleep(0.05)
    finally:
        if p.poll() is None:
            p.kill()
    return False


def _states(ckpt_path):
    return ck.load(ckpt_path)["state"]


@pytest.mark.slow
def test_gan_killed_mid_run_resumes_to_the_same_weights_and_log(tmp_path):
    args = ["train-gan", "ssagan_both", "--profile", "smoke", *TINY, "--set", "train.max_steps=10",
            "--set", "train.ckpt_every=2", "--set", "train.log_every=1"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    r = _cli(args, ref)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _kill_when(args, killed, "smoke/runs/ssagan_both-*/checkpoints/ckpt_000004.pt"), "run ended too early"
    assert not list(killed.glob("smoke/runs/ssagan_both-*/summary.json"))
    r = _cli(args, killed)  # resumes by default
    assert r.returncode == 0, r.stderr[-2000:]
    ref_run = next(ref.glob("smoke/runs/ssagan_both-*"))
    kil_run = next(killed.glob("smoke/runs/ssagan_both-*"))
    assert ref_run.name == kil_run.name
    a, b = _states(ref_run / "checkpoints/ckpt_000010.pt"), _states(kil_run / "checkpoints/ckpt_000010.pt")
    for part in ("G", "D"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)  # bitwise
    la = [json.loads(l) for l in (ref_run / "stats.jsonl").read_text().splitlines()]
    lb = [json.loads(l) for l in (kil_run / "stats.jsonl").read_text().splitlines()]
    drop = ("seconds",)
    assert [{k: v for k, v in x.items() if k not in drop} for x in la] == \
        [{k: v for k, v in x.items() if k not in drop} for x in lb]


@pytest.mark.slow
def test_damsm_killed_mid_run_resumes_to_the_same_weights(tmp_path):
    args = ["pretrain-damsm", "--profile", "smoke", *TINY, "--set", "damsm.epochs=4", "--set", "damsm.ckpt_every=1"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert _cli(args, ref).returncode == 0
    assert _kill_when(args, killed, "smoke/runs/damsm-*/checkpoints/ckpt_000001.pt")
    r = _cli(args, killed)
    assert r.returncode == 0, r.stderr[-2000:]
    ra, rb = next(ref.glob("smoke/runs/damsm-*")), next(killed.glob("smoke/runs/damsm-*"))
    a, b = _states(ra / "checkpoints/ckpt_000003.pt"), _states(rb / "checkpoints/ckpt_000003.pt")
    for part in ("text", "image"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    ha = json.loads((ra / "summary.json").read_text())["history"]
    hb = json.loads((rb / "summary.json").read_text())["history"]
    assert [h["val_total"] for h in ha] == [h["val_total"] for h in hb]


def test_full_disk_during_checkpoint_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    d = tmp_path / "ckpts"
    ck.save(d, 1, {"kind": "gan", "note": "good"})
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tio.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left"):
        ck.save(d, 2, {"kind": "gan", "note": "never written"})
    monkeypatch.undo()
    assert not (d / "ckpt_000002.pt").exists() and not list(d.glob(".*.tmp"))  # no partial file left
    assert json.loads((d / "latest.json").read_text())["step"] == 1
    assert ck.load_latest(d)["note"] == "good"


def test_two_runs_with_same_seed_are_bitwise_identical(tmp_path):
    from t2i_lib import config as C
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.train import gan
    from t2i_lib.train.damsm import damsm_config_for, pretrain_damsm

    weights = []
    for name in ("a", "b"):
        over = {"run.results_dir": str(tmp_path / name), "data.n_images": 60, "damsm.epochs": 1,
                "damsm.batch_size": 8, "damsm.small_width": 8, "damsm.embedding_dim": 32, "model.ngf": 4,
                "model.ndf": 4, "model.z_dim": 8, "train.batch_size": 4, "train.max_steps": 3}
        cfg = C.resolve("ssagan_f2f", "smoke", over)
        root = ensure_dataset(cfg)
        d = pretrain_damsm(damsm_config_for(cfg), torch.device("cpu"), root, max_batches=2)
        s = gan.train_gan(cfg, torch.device("cpu"), root)
        weights.append((ck.load(d["best_checkpoint"])["state"], ck.load(s["checkpoint"])["state"],
                        (Path(root) / "records.jsonl").read_bytes()))
    (da, ga, ra), (db, gb, rb) = weights
    assert ra == rb  # same synthetic data
    for x, y in ((da["text"], db["text"]), (da["image"], db["image"]), (ga["G"], gb["G"]), (ga["D"], gb["D"])):
        for k in x:
            assert torch.equal(x[k], y[k]), k


def test_run_records_what_is_needed_to_repeat_it(tmp_path):
    from t2i_lib import config as C

    cfg = C.resolve("ssagan_f2f", "smoke", seed=7)
    rec = json.loads(C.save_config(cfg, tmp_path / "run").read_text())
    assert rec["config"]["run"]["seed"] == 7 and rec["lib_version"] and rec["hash"] == cfg.hash
    env = rec["environment"]
    assert env["torch"] and env["numpy"] and env["python"] and len(env["git_commit"] or "x" * 40) == 40
