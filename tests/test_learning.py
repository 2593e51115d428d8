"""A short learning test: the real training pipeline teaches a conditioned generator the colour named by its caption.

The data is a tiny synthetic set made here (one centred square per image in one of four fill colours of
caption-shapes, captions that name the colour three ways); the judge is the training-free pixel judge of
``t2i_lib.data.synthetic`` (no network trained on anything), so the test cannot pass by scoring with the encoder
the generator was trained against.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from t2i_lib import config as C
from t2i_lib.data import synthetic as S
from t2i_lib.data.dataset import CanonicalWriter, CaptionDataset
from t2i_lib.data.text import tokenize
from t2i_lib.metrics import sampling
from t2i_lib.train import gan
from t2i_lib.train.damsm import damsm_config_for, encoder_path, load_encoders, pretrain_damsm

COLOURS = ("red", "green", "blue", "yellow")
SIZE = 32


def write_colour_set(out, n_train: int = 80, n_test: int = 16, seed: int = 0):
    """One square (half the image side) of a jittered caption-shapes fill colour on a jittered dark grey ground."""
    rng = np.random.default_rng(seed)
    w = CanonicalWriter(out, name="colours", image_format="png")
    for i in range(n_train + n_test):
        colour = COLOURS[i % len(COLOURS)]
        img = np.full((SIZE, SIZE, 3), 0.28) + rng.uniform(-0.03, 0.03, 3)
        lo, hi = SIZE // 4, 3 * SIZE // 4
        img[lo:hi, lo:hi] = np.clip(np.asarray(S.COLOUR_RGB[colour]) + rng.uniform(-0.04, 0.04, 3), 0, 1)
        caps = [f"a {colour} square", f"a square coloured {colour}", f"the {colour} block in the middle"]
        w.add(f"img_{i:03d}", "train" if i < n_train else "test", class_id=i % len(COLOURS),
              image=(img * 255).round().astype(np.uint8), captions=[(c, tokenize(c)) for c in caps])
    return w.finish(source={"kind": "colour-learning-test"})


@pytest.mark.slow
def test_ssagan_learns_the_captioned_colour_on_a_tiny_set(tmp_path):
    torch.manual_seed(0)
    root = write_colour_set(tmp_path / "colours")
    over = {"run.results_dir": str(tmp_path), "data.image_size": SIZE,
            "damsm.epochs": 30, "damsm.batch_size": 8, "damsm.small_width": 8, "damsm.embedding_dim": 32,
            "model.ngf": 8, "model.ndf": 8, "model.z_dim": 16, "model.widths": "relative",
            "train.batch_size": 16, "train.f2f_pairing": "split", "train.max_steps": 300,
            "train.lr_g": 4e-4, "train.lr_d": 1.6e-3, "train.losses.damsm": 1.0,
            "train.log_every": 50, "train.ckpt_every": 300, "train.sample_every": 300}
    cfg = C.resolve("ssagan_baseline", "smoke", over)
    cpu = torch.device("cpu")
    pretrain_damsm(damsm_config_for(cfg), cpu, root)
    summary = gan.train_gan(cfg, cpu, root)
    G, _ = gan.load_generator(summary["checkpoint"], cpu)
    text_enc, _, _ = load_encoders(encoder_path(cfg), cpu)
    test = CaptionDataset(root, "test", (SIZE,), 1, cfg.data.max_words, "truncate", 0)
    items = np.repeat(np.arange(len(test)), 3)          # every test image with each of its three captions
    caps = np.tile(np.arange(3), len(test))
    fam = gan.get_family("ssagan")
    fakes = torch.cat(list(sampling.generate(G, fam.sampler(cfg), text_enc, test, items, caps, fam.noise_dim(cfg),
                                             cfg.eval.eval_seed, cpu)))
    schema = S.ATTRIBUTE_SCHEMA["colour"]
    truth = np.array([schema.index(COLOURS[test.records[i]["class_id"]]) for i in items])
    # the judge reads the real test images right, so it is fit to judge the fakes
    real = torch.stack([test[i]["images"][0] for i in range(len(test))])
    real_colour, _ = S.judge_colour_position(real, share=0.1)
    assert (real_colour.numpy() == truth[::3]).all()
    colour, _ = S.judge_colour_position(fakes, share=0.1)
    hits = int((colour.numpy() == truth).sum())
    n = len(items)
    # chance is 1/4 (four colours, equally often); P(X >= hits) under chance is astronomically small when it learns
    p_chance = sum(math.comb(n, k) * 0.25**k * 0.75 ** (n - k) for k in range(hits, n + 1))
    assert hits / n >= 0.6, f"colour accuracy {hits}/{n} (chance 1/4)"
    assert p_chance < 1e-6
    # each colour is produced for its own captions, not one colour everywhere
    assert len(set(colour.numpy().tolist())) >= 3
