"""Two processes asking for the same run or dataset: the second waits for the first and reuses its work."""
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from t2i_lib import config as C
from t2i_lib.train import damsm as D
from t2i_lib.utils.io import dir_lock

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from t2i_lib.utils.io import dir_lock
    with dir_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_second_process_waits_for_the_lock(tmp_path):
    run = tmp_path / "runs" / "x-smoke-s0-deadbeef"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run), "3"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    t0 = time.time()
    q = subprocess.run([sys.executable, "-c", HOLD, str(run), "0"], capture_output=True, text=True, timeout=60)
    waited = time.time() - t0
    p.wait(timeout=30)
    assert q.returncode == 0 and "locked" in q.stdout
    assert waited > 1.5, f"the second process did not wait ({waited:.2f} s)"
    assert (tmp_path / "runs" / ".x-smoke-s0-deadbeef.lock").is_file()


def test_lock_is_reentrant_and_released(tmp_path):
    run = tmp_path / "runs" / "y"
    with dir_lock(run):
        with dir_lock(run):  # would deadlock if not re-entrant
            pass
    # released: another process gets it at once
    t0 = time.time()
    q = subprocess.run([sys.executable, "-c", HOLD, str(run), "0"], capture_output=True, text=True, timeout=60)
    assert q.returncode == 0 and "locked" in q.stdout and time.time() - t0 < 30


def test_explicit_encoder_path_is_used_as_given(tmp_path):
    cfg = C.resolve("ssagan_baseline", "smoke", {"damsm.encoder_path": str(tmp_path / "missing.pt"),
                                                 "run.results_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="damsm.encoder_path"):
        D.ensure_encoders(cfg, "cpu", tmp_path)
    assert not (tmp_path / "runs").exists()  # nothing was pretrained
    f = tmp_path / "enc.pt"
    f.write_bytes(b"x")
    cfg = C.resolve("ssagan_baseline", "smoke", {"damsm.encoder_path": str(f), "run.results_dir": str(tmp_path)})
    assert D.ensure_encoders(cfg, "cpu", tmp_path) == Path(f)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_concurrent_pretraining_of_one_damsm_trains_it_once(tmp_path):
    cmd = [sys.executable, "-m", "t2i_lib", "pretrain-damsm", "--profile", "smoke", "--set",
           f"run.results_dir={tmp_path}", "--set", "damsm.epochs=1"]
    env = {**__import__("os").environ, "T2I_PROGRESS": "off"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    logs = "\n".join(outs)
    # pretrain-damsm makes two encoders (the training encoder and the judge): each is trained by one process
    # and reused by the other
    runs = sorted(d for d in (tmp_path / "runs").iterdir() if d.is_dir())
    assert len(runs) == 2 and all((d / "best.pt").is_file() for d in runs), runs
    assert logs.count("DAMSM epoch 0") == 2, logs
    for d in runs:
        assert logs.count(f"reusing DAMSM run {d}") == 1, (d.name, logs)
