"""Shared fixtures: results/data/cache roots in a temporary directory, progress bars off, a tiny dataset."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Threads per pytest-xdist worker: the cores shared out among the workers, set before torch is imported (and passed
# on to the notebooks and CLI runs the tests start).  Two workers with torch's default of one thread per core
# oversubscribe the cores, and OpenMP's waiting threads then slow every parallel kernel several-fold: a 36 s DAMSM
# test took 272 s and the smoke run_all.sh 589 s beside one another on 2 cores.
if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker (the controller runs no tests)
    _workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(max(1, (os.cpu_count() or 1) // _workers))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

_TMP = Path(tempfile.mkdtemp(prefix="t2i-tests-"))
# The root shared by the pytest-xdist workers of one session (run_tests.sh runs two): the controller process sets it
# before it starts the workers, which inherit it; without xdist it is this process's own root.
_SHARED = Path(os.environ.setdefault("T2I_TEST_SHARED_ROOT", str(_TMP)))
os.environ["T2I_RESULTS_DIR"] = str(_TMP / "results")
os.environ["T2I_DATA_DIR"] = str(_TMP / "data")
os.environ["T2I_CACHE_DIR"] = str(_TMP / "cache")
os.environ["T2I_PROGRESS"] = "off"
# Everything a test makes goes under _TMP, removed at the end: pytest's tmp_path folders (basetemp, below) and the
# temporary files of this process and its children (torch's elastic launcher makes torchelastic_* folders).
(_TMP / "tmp").mkdir()
os.environ["TMPDIR"] = str(_TMP / "tmp")
tempfile.tempdir = str(_TMP / "tmp")

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str):
    """The module of ``scripts/<name>.py`` (the scripts are not a package), to call its ``main`` in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """pytest's tmp_path folders under the session root (not /tmp/pytest-of-<user>/, which keeps the last three
    sessions), unless --basetemp is given."""
    if not config.option.basetemp:
        config.option.basetemp = str(_TMP / "basetemp")


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's temporary roots (datasets, runs, a converted 91 MB FID weights file, tmp_path folders,
    temporary files) unless T2I_KEEP_TEST_TMP is set, e.g. to inspect a failure."""
    if not os.environ.get("T2I_KEEP_TEST_TMP"):
        import shutil

        shutil.rmtree(_TMP, ignore_errors=True)


def subprocess_env(**extra) -> dict:
    """The environment for run_all.sh and CLI subprocesses: progress bars off, no active virtualenv (run_all.sh
    picks the interpreter itself: the same .venv, or the active env)."""
    env = dict(os.environ, T2I_PROGRESS="off", **extra)
    env.pop("VIRTUAL_ENV", None)
    return env


def smoke_env() -> dict:
    """The environment of the session's smoke ``run_all.sh`` and of the tests that run it again over its results: the
    same on every pytest-xdist worker (run_all.sh's skip keys cover the ``T2I_*`` variables)."""
    roots = _SHARED / "smoke-roots"
    return subprocess_env(T2I_RESULTS_DIR=str(roots / "results"), T2I_DATA_DIR=str(roots / "data"),
                          T2I_CACHE_DIR=str(roots / "cache"))


def pytest_collection_modifyitems(config, items):
    """The smoke run_all.sh test first (its worker starts the 4-5 minute run at once) and the browser check of its
    reports last (by then the run is done), whichever pytest-xdist worker gets them."""
    first = [i for i in items if i.name == "test_run_all_smoke"]
    last = [i for i in items if i.name == "test_smoke_reports_are_clean_in_a_browser"]
    items[:] = first + [i for i in items if i not in first and i not in last] + last


@pytest.fixture(scope="session")
def smoke_results():
    """One ``./run_all.sh`` smoke run per test session, shared by the end-to-end and browser tests even on different
    pytest-xdist workers (a file lock in the session's shared root: the first worker runs it, another waits and
    reads its record): (results folder, its CompletedProcess, wall seconds)."""
    import fcntl
    import json
    import subprocess
    import time

    out, record = _SHARED / "smoke", _SHARED / "smoke-run.json"
    cmd = ["bash", str(PROJECT_ROOT / "run_all.sh"), "--results-dir", str(out)]
    with open(_SHARED / "smoke-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            t0 = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True, env=smoke_env(), cwd=PROJECT_ROOT, timeout=1800)
            record.write_text(json.dumps({"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr,
                                          "seconds": time.time() - t0}))
        rec = json.loads(record.read_text())
    return out, subprocess.CompletedProcess(cmd, rec["returncode"], rec["stdout"], rec["stderr"]), rec["seconds"]


def _tiny_image(seed: int, size: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def write_tiny_dataset(out: Path, captions_per_image=(3, 1, 2, 4, 3, 2), long_caption: bool = True) -> Path:
    """A hand-made canonical dataset: 6 images (4 train, 2 test), varied caption counts, one 25-word caption."""
    from t2i_lib.data.dataset import CanonicalWriter
    from t2i_lib.data.text import tokenize

    w = CanonicalWriter(out, name="tiny", image_format="png")
    words = "red green blue small large circle square top left bottom right".split()
    for i, n in enumerate(captions_per_image):
        caps = []
        for j in range(n):
            raw = f"a {words[(i + j) % len(words)]} {words[(i + 2 * j + 1) % len(words)]} shape number {j}"
            if long_caption and i == 0 and j == 0:
                raw = " ".join(f"w{k}" for k in range(25))
            caps.append((raw, tokenize(raw)))
        w.add(f"img_{i:02d}", "train" if i < 4 else "test", class_id=i % 3, image=_tiny_image(i), captions=caps)
    return w.finish(source={"kind": "tiny-fixture"})


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return write_tiny_dataset(tmp_path / "tiny")
