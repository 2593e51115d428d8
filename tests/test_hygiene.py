"""Notebook hygiene and project invariants that keep the two-command quickstart honest."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REQUIRED_PARAMS = ("PROFILE", "RESULTS_DIR", "FORCE")


def test_notebooks_exist_and_are_numbered():
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        assert re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", nb.name), nb.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_thin(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    assert cells[0]["cell_type"] == "markdown", "first cell: markdown purpose/inputs/outputs"
    assert cells[1] is tagged[0], "second cell must be the parameters cell"
    params_src = "".join(tagged[0]["source"])
    for name in REQUIRED_PARAMS:
        assert re.search(rf"^{name}\s*:", params_src, re.M), f"parameter {name} missing (typed)"
    for stmt in ast.parse(params_src).body:  # literals only: `NAME: type = literal`
        assert isinstance(stmt, ast.AnnAssign) and stmt.value is not None, ast.unparse(stmt)
        assert stmt.target.id.isupper(), ast.unparse(stmt)
        ast.literal_eval(stmt.value)  # raises if not a literal
    for c in cells:
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        assert not c.get("outputs"), "outputs must be stripped"
        assert c.get("execution_count") is None, "execution counts must be stripped"
        assert not re.search(r"^\s*(def|class)\s", src, re.M), "no def/class in notebooks: move it to t2i_lib"
        assert not re.search(r"^\s*[!%]", src, re.M), "no shell or magic cells"


def test_readme_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"## Quickstart\n(.*?)\n## ", readme, re.S)
    assert m, "README needs a '## Quickstart' section"
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", m.group(1), re.S)
    cmds = [l.strip() for b in blocks for l in b.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert cmds == ["./run_all.sh", "./run_tests.sh"], cmds
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./run_tests.sh" in ci


def test_requirements_pin_everything_exactly():
    lines = [l.split("#")[0].strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [l for l in lines if l]
    assert all(re.match(r"^[A-Za-z0-9_.-]+==[\w.]+$", l) for l in lines), lines
    names = {l.split("==")[0].lower() for l in lines}
    for need in ("torch", "torchvision", "papermill", "nbconvert", "ipykernel", "torch-fidelity", "nltk", "pytest",
                 "matplotlib", "seaborn", "pandas", "tqdm", "jupyterlab"):
        assert need in names, need
    env = (ROOT / "environment.yml").read_text()
    for l in lines:
        assert l in env, f"environment.yml lacks {l}"


def test_no_large_files_tracked():
    import subprocess

    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, out.decode().split("\0")):
        p = ROOT / name
        if p.is_file():
            assert p.stat().st_size < 5 * 1024 * 1024, f"{name} is over 5 MB"
            assert not name.endswith((".pt", ".pth", ".html")), name


def test_each_xdist_worker_gets_its_share_of_the_cores():
    """Workers with torch's default thread count oversubscribe the cores (tests/conftest.py); each gets cores //
    workers threads instead."""
    import os

    import torch

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("not under pytest-xdist")
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    assert torch.get_num_threads() == share and os.environ["OMP_NUM_THREADS"] == str(share)
