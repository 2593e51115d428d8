"""evaluate_many: several runs evaluated in worker processes give the numbers of one process, in the given order."""

import json
import math

import pytest
import torch

from t2i_lib import config as C
from t2i_lib.metrics import evaluate
from t2i_lib.train import gan

EXPS = ["ssagan_baseline", "ssagan_f2r", "ssagan_f2f"]


def test_parallel_evaluation_gives_the_sequential_numbers_and_reuses_finished_metrics(tmp_path):
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.train.damsm import damsm_config_for, judge_config_for, pretrain_damsm

    over = {"run.results_dir": str(tmp_path), "data.n_images": 80, "damsm.epochs": 1, "damsm.batch_size": 8,
            "damsm.small_width": 8, "damsm.embedding_dim": 32, "model.ngf": 4, "model.ndf": 4, "model.z_dim": 8,
            "train.batch_size": 4, "train.max_steps": 2, "train.log_every": 1, "eval.n_samples": 8,
            "eval.batch_size": 8, "eval.kid_subset_size": 4, "eval.consistency_images": 3,
            "eval.attribute_epochs": 1, "eval.feature_extractor": "t2i-tiny"}
    cfgs = [C.resolve(e, "smoke", over) for e in EXPS]
    root = ensure_dataset(cfgs[0])
    for c in (damsm_config_for(cfgs[0]), judge_config_for(cfgs[0])):
        pretrain_damsm(c, torch.device("cpu"), root, max_batches=2)
    for c in cfgs:
        gan.train_gan(c, torch.device("cpu"), root)

    with pytest.raises(ValueError, match="jobs must be >= 1"):
        evaluate.evaluate_many(EXPS, "smoke", over, device="cpu", jobs=0)
    seq = evaluate.evaluate_many(EXPS, "smoke", over, device="cpu", jobs=1)
    assert all(evaluate.is_evaluated(c) for c in cfgs)
    par = evaluate.evaluate_many(EXPS, "smoke", over, device="cpu", force=True, jobs=2)
    assert [r["run_id"] for r in par] == [r["run_id"] for r in seq] == [c.run_id for c in cfgs]
    compared = 0
    for a, b in zip(seq, par):
        for k, v in a["metrics"].items():
            if isinstance(v, float) and math.isfinite(v):
                assert b["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-6), (a["run_id"], k)
                compared += 1
    assert compared >= 3 * 10
    # the training run's time and device travel with the metrics (run folders are not committed)
    for r, c in zip(seq, cfgs):
        summ = json.loads((gan.run_dir_for(c) / "summary.json").read_text())
        assert r["training"] == {k: summ[k] for k in ("wall_seconds", "device", "world_size", "steps", "skipped_steps")}
        assert r["training"]["steps"] == 2 and r["training"]["wall_seconds"] > 0
    # the arms are different models: the comparison above is not of three copies of one number
    assert len({r["metrics"]["fid"] for r in seq}) == 3
    # nothing changed: every metrics file is reused, no worker needed
    mtimes = [evaluate.metrics_path(c).stat().st_mtime_ns for c in cfgs]
    again = evaluate.evaluate_many(EXPS, "smoke", over, device="cpu", jobs=2)
    assert [evaluate.metrics_path(c).stat().st_mtime_ns for c in cfgs] == mtimes
    assert [r["metrics"] for r in again] == [r["metrics"] for r in par]


def test_metrics_text_names_no_absolute_path():
    from t2i_lib import paths

    reason = f"IS unavailable ({paths.cache_root()}/weights/w.pth; see {paths.PROJECT_ROOT}/docs/evaluation.md)"
    out = evaluate.portable_text(reason)
    assert out == "IS unavailable (<cache>/weights/w.pth; see <repo>/docs/evaluation.md)"
    assert evaluate.portable_text(None) is None
