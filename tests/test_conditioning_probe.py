"""What AttnGAN-family generators keep of each attribute through conditioning augmentation: the signal-to-noise
ratio by hand, the probe against an identity CA network, and the script on a tiny AttnGAN run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from t2i_lib import config as C
from t2i_lib.metrics.conditioning_probe import conditioning_probe, signal_to_noise
from conftest import load_script

def test_signal_to_noise_hand_computed_and_invariant():
    mu = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    labels = [0, 1, 0, 1]
    # centre (1, 0); each item sits 1 from it (squared), so the between-class variance is 1; noise 0.5 + 0.5 = 1
    assert signal_to_noise(mu, np.full((4, 2), 0.5), labels) == pytest.approx(1.0)
    assert signal_to_noise(mu, np.full((4, 2), 2.0), labels) == pytest.approx(0.25)
    # one class of three items at (3, 3), one of one item at (-1, -1): centre (2, 2), between (3 * 2 + 18) / 4 = 6
    mu2 = np.array([[3.0, 3.0], [3.0, 3.0], [3.0, 3.0], [-1.0, -1.0]])
    assert signal_to_noise(mu2, np.ones((4, 2)), [1, 1, 1, 0]) == pytest.approx(6.0 / 2.0)
    # within-class spread is not signal: equal class means give 0
    mu3 = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert signal_to_noise(mu3, np.ones((4, 2)), [0, 0, 1, 1]) == pytest.approx(0.0)
    # scaling the mean by a and the noise variance by a^2 (a scaled CA output) changes nothing; a shift neither
    rng = np.random.default_rng(0)
    m, v, y = rng.normal(size=(50, 6)), rng.uniform(0.1, 2.0, size=(50, 6)), rng.integers(0, 3, 50)
    assert signal_to_noise(3.0 * m + 7.0, 9.0 * v, y) == pytest.approx(signal_to_noise(m, v, y))
    with pytest.raises(ValueError, match="N x D"):
        signal_to_noise(m, v[:10], y)
    with pytest.raises(ValueError, match="non-negative"):
        signal_to_noise(m, np.zeros_like(v), y)


class _IdentityCA(torch.nn.Module):
    """A CA network that passes the sentence on as its mean with unit variance."""

    def encode(self, sent):
        return sent, torch.zeros_like(sent)



def test_probe_and_script_on_a_tiny_attngan(tmp_path):
    from t2i_lib.data.dataset import CaptionDataset
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.metrics.encoder_probe import variance_share
    from t2i_lib.metrics.r_precision import sentence_table
    from t2i_lib.train import gan
    from t2i_lib.train.damsm import damsm_config_for, encoder_path, load_encoders, pretrain_damsm

    over = {"run.results_dir": str(tmp_path / "res"), "data.n_images": 120, "damsm.epochs": 1,
            "damsm.batch_size": 8, "damsm.small_width": 8, "damsm.embedding_dim": 32, "model.ngf": 4,
            "model.ndf": 4, "model.z_dim": 8, "train.batch_size": 4, "train.max_steps": 2}
    cfg = C.resolve("attngan_baseline", "smoke", over)
    root = ensure_dataset(cfg)
    pretrain_damsm(damsm_config_for(cfg), torch.device("cpu"), root, max_batches=2)
    ckpt = Path(gan.train_gan(cfg, torch.device("cpu"), root)["checkpoint"])

    # an identity CA keeps exactly what the encoder offers, and its signal-to-noise is the raw between-class
    # variance over the embedding's dimension (unit noise per dimension)
    test = CaptionDataset(root, "test", (cfg.data.image_size,), 1, cfg.data.max_words, "truncate", cfg.run.seed)
    text, _, _ = load_encoders(encoder_path(cfg), torch.device("cpu"))
    rec = conditioning_probe(_IdentityCA(), text, test, torch.device("cpu"), seed=cfg.eval.eval_seed)
    table, offsets = sentence_table(text, test, torch.device("cpu"), seed=cfg.eval.eval_seed)
    raw = table.numpy().astype(np.float64)
    owner = np.concatenate([[i] * (offsets[i + 1] - offsets[i]) for i in range(len(test.records))])
    stated = np.array(["colour" in m for r in test.records for m in r["mentions"]])
    labels = np.array([r["attributes"]["colour"] for r in test.records])[owner[stated]]
    col = rec["attributes"]["colour"]
    assert col["mu_share"] == pytest.approx(col["sentence_share"]) == pytest.approx(
        variance_share(raw[stated], labels))
    x = raw[stated]
    between = sum((labels == k).sum() * ((x[labels == k].mean(0) - x.mean(0)) ** 2).sum()
                  for k in np.unique(labels)) / len(labels)
    assert col["signal_to_noise"] == pytest.approx(between / raw.shape[1])
    assert rec["mean_noise_variance"] == pytest.approx(1.0)
    assert set(rec["attributes"]) == {"shape", "colour", "position", "size"}

    out = tmp_path / "ca.json"
    assert load_script("probe_conditioning").main([str(ckpt), "--label", "tiny", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    (p,) = data["checkpoints"]
    assert data["kind"] == "ca_attribute_probe" and p["label"] == "tiny" and p["family"] == "attngan"
    assert p["run_id"] == cfg.run_id and p["config_hash"] == cfg.hash and p["step"] == 2
    for a in p["attributes"].values():
        assert 0.0 <= a["sentence_share"] <= 1.0 and 0.0 <= a["mu_share"] <= 1.0 and a["signal_to_noise"] >= 0.0
    assert p["mean_noise_variance"] > 0.0
    assert out.with_suffix(".png").stat().st_size > 5000
    with pytest.raises(SystemExit):
        load_script("probe_conditioning").main([str(tmp_path / "missing.pt"), "--out", str(out)])
