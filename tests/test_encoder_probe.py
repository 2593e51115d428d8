"""What DAMSM encoders see of each synthetic attribute: retrieval agreement, linear probes, the probe script."""

import json

import numpy as np
import pytest
import torch

from conftest import load_script
from t2i_lib import config as C
from t2i_lib.metrics.encoder_probe import linear_probe, retrieval_agreement, variance_share


def _one_hot(v, n):
    return np.eye(n)[np.asarray(v)]


def test_retrieval_agreement_oracle_blind_and_hand_computed_chance():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 5, 400)
    owner = np.repeat(np.arange(400), 2)
    image = _one_hot(values, 5) + 0.01 * rng.standard_normal((400, 5))
    oracle = _one_hot(values[owner], 5)
    mentioned = np.ones(800, bool)
    agree, chance = retrieval_agreement(oracle, owner, image, values, mentioned)
    assert agree == 1.0 and chance == pytest.approx(sum(np.mean(values == v) ** 2 for v in range(5)))
    blind, _ = retrieval_agreement(rng.standard_normal((800, 5)), owner, image, values, mentioned)
    assert abs(blind - chance) < 0.08  # a text side that ignores the attribute retrieves at chance
    # only captions that state the attribute count; hand-made case: 2 images, values 0 / 1
    agree, chance = retrieval_agreement(np.array([[1.0, 0], [1.0, 0], [0, 1.0]]), [0, 1, 1],
                                        np.array([[1.0, 0], [0, 1.0]]), [0, 1], [True, True, False])
    assert agree == 0.5 and chance == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no caption states"):
        retrieval_agreement(oracle, owner, image, values, np.zeros(800, bool))


def test_linear_probe_separable_versus_noise():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 600)
    acc, major = linear_probe(_one_hot(labels, 4) + 0.1 * rng.standard_normal((600, 4)), labels, seed=0)
    assert acc >= 0.98 and 0.2 < major < 0.4
    acc, major = linear_probe(rng.standard_normal((600, 16)), labels, seed=0)
    assert acc < major + 0.12  # nothing to find: about the majority rate
    with pytest.raises(ValueError, match="at least 8 items"):
        linear_probe(np.zeros((4, 2)), [0, 1, 0, 1])


def test_variance_share_hand_computed_and_invariant():
    # 1-D, classes {0, 2} and {10, 12}: grand mean 6, total SS 36 + 16 + 16 + 36 = 104, between 2 * 25 + 2 * 25 = 100
    x = np.array([[0.0], [2.0], [10.0], [12.0]])
    assert variance_share(x, [0, 0, 1, 1]) == pytest.approx(100 / 104)
    assert variance_share(3 * x - 7, [0, 0, 1, 1]) == pytest.approx(100 / 104)  # scale and shift do not matter
    assert variance_share(x, [0, 1, 0, 1]) == pytest.approx(4 / 104)  # class means 5 and 7
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 3000)
    # one large direction that carries the label beside a small one that does not, and the other way round
    big = np.c_[10 * _one_hot(labels, 3), rng.standard_normal((3000, 3))]
    small = np.c_[0.1 * _one_hot(labels, 3), rng.standard_normal((3000, 3))]
    assert variance_share(big, labels) > 0.95 and variance_share(small, labels) < 0.01
    # ... although a linear probe reads the label from both (retrieval-style measures cannot tell them apart)
    assert linear_probe(small, labels, seed=0)[0] > 0.9
    assert variance_share(rng.standard_normal((3000, 4)), labels) < 0.01
    with pytest.raises(ValueError, match="do not vary"):
        variance_share(np.ones((4, 2)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="N x D"):
        variance_share(np.ones(4), [0, 0, 1, 1])


def test_probe_script_on_a_smoke_damsm(tmp_path):
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.train.damsm import damsm_config_for, pretrain_damsm, run_dir_for

    cfg = damsm_config_for(C.resolve("damsm", "smoke", {"run.results_dir": str(tmp_path / "res"),
                                                        "data.n_images": 120, "damsm.epochs": 3,
                                                        "damsm.batch_size": 8, "damsm.small_width": 8}))
    pretrain_damsm(cfg, torch.device("cpu"), ensure_dataset(cfg), max_batches=2)
    mod = load_script("probe_damsm")
    out = tmp_path / "probe.json"
    assert mod.main([str(run_dir_for(cfg)), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "damsm_attribute_probe" and out.with_suffix(".png").stat().st_size > 5000
    (enc,) = rec["encoders"]
    assert enc["run_id"] == cfg.run_id and enc["config_hash"] == cfg.hash and enc["split"] == "test"
    assert set(enc["attributes"]) == {"shape", "colour", "position", "size"}
    assert enc["n_captions"] > enc["n_images"] > 0
    for a in enc["attributes"].values():
        for k in ("retrieval_agreement", "retrieval_chance", "image_probe", "image_probe_majority", "text_probe",
                  "text_probe_majority", "text_variance_share"):
            assert 0.0 <= a[k] <= 1.0
        assert 0 < a["n_captions_stating"] <= enc["n_captions"]
    with pytest.raises(SystemExit):
        mod.main([str(tmp_path / "nothing"), "--out", str(out)])
    # one record per epoch checkpoint, drawn against the epoch
    from t2i_lib.train.checkpoint import list_checkpoints

    epochs = [e for e, _ in list_checkpoints(run_dir_for(cfg) / "checkpoints")]
    assert epochs
    per = tmp_path / "epochs.json"
    assert mod.main([str(run_dir_for(cfg)), "--every-checkpoint", "--out", str(per)]) == 0
    rec = json.loads(per.read_text())
    assert rec["every_checkpoint"] is True and [e["encoder_epoch"] for e in rec["encoders"]] == epochs
    assert per.with_suffix(".png").stat().st_size > 5000
    assert epochs == [0, 1, 2]
    assert mod.main([str(run_dir_for(cfg)), "--every-checkpoint", "--stride", "2", "--out", str(per)]) == 0
    assert [e["encoder_epoch"] for e in json.loads(per.read_text())["encoders"]] == [1, 2]  # every 2nd and the last
