import numpy as np
import pytest
import torch

from t2i_lib.metrics import r_precision as R


def _table(n_items, caps_per, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(n_items * caps_per, d, generator=g, dtype=torch.float64)
    offsets = np.arange(0, n_items * caps_per + 1, caps_per)
    return table, offsets


def test_mismatched_candidates_are_other_classes_and_seeded():
    cls = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4] * 5)
    m = R.mismatched_candidates(cls, 20, seed=3)
    assert m.shape == (50, 20)
    for q in range(50):
        assert (cls[m[q]] != cls[q]).all()
        assert len(set(m[q].tolist())) == 20  # without replacement when possible
    assert (R.mismatched_candidates(cls, 20, seed=3) == m).all()
    assert not (R.mismatched_candidates(cls, 20, seed=4) == m).all()
    with pytest.raises(ValueError, match="no item of another class"):
        R.mismatched_candidates([1, 1, 1], 2, seed=0)


def test_perfect_encoder_scores_one_and_random_encoder_scores_chance():
    n, caps, d = 600, 3, 32
    table, offsets = _table(n, caps, d)
    cls = np.arange(n) % 50
    items = np.arange(n)
    capi = np.arange(n) % caps
    perfect = table[offsets[items] + capi]  # image feature == its caption's embedding
    out = R.r_precision(perfect, items, capi, table, offsets, cls, n_candidates=100, n_folds=6, seed=0)
    assert out[R.R_PRECISION] == 1.0 and out[R.R_PRECISION_STD] == 0.0 and out["fold_size"] == 100
    rand = torch.randn(n, d, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    out = R.r_precision(rand, items, capi, table, offsets, cls, n_candidates=100, n_folds=6, seed=0)
    assert 0.0 <= out[R.R_PRECISION] <= 0.04  # chance is 1%
    out10 = R.r_precision(rand, items, capi, table, offsets, cls, n_candidates=10, n_folds=6, seed=0)
    assert 0.05 <= out10[R.R_PRECISION] <= 0.16  # chance is 10%


def test_fold_stats_reference_off_by_one():
    hits = np.zeros(30)
    hits[::3] = 1
    s = R.fold_stats(hits, n_folds=3, seed=0)
    assert s["fold_size"] == 10 and s[R.R_PRECISION] == pytest.approx(1 / 3)
    s2 = R.fold_stats(np.ones(30), n_folds=3, off_by_one=True)
    assert s2["fold_size"] == 9 and s2[R.R_PRECISION] == 1.0
    with pytest.raises(ValueError, match="folds"):
        R.fold_stats(np.ones(5), n_folds=10)


def test_hits_ties_go_to_ground_truth():
    img = torch.tensor([[1.0, 0.0]])
    true = torch.tensor([[1.0, 0.0]])
    mis = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])  # same direction: a tie on cosine
    assert R.hits_from_features(img, true, mis).tolist() == [True]


def test_real_image_r_precision_independent_of_batch_size(tiny_dataset):
    from t2i_lib.data import CaptionDataset
    from t2i_lib.models.damsm import ImageEncoder, TextEncoder

    torch.manual_seed(0)
    ds = CaptionDataset(tiny_dataset, "train", image_sizes=(32,), long_caption_mode="truncate")
    te, ie = TextEncoder(len(ds.vocab), embedding_dim=16), ImageEncoder("small", embedding_dim=16, small_width=8,
                                                                         small_input=32)
    a = R.real_image_r_precision(te, ie, ds, "cpu", n_candidates=3, n_folds=2, batch_size=1, encoder_name="x")
    b = R.real_image_r_precision(te, ie, ds, "cpu", n_candidates=3, n_folds=2, batch_size=4, encoder_name="x")
    assert a == b and a["encoder"] == "x" and a["n_queries"] == 4


def test_text_blind_generator_scores_chance():
    """A generator that ignores its caption gives the same image feature for every query: R-precision ~ chance."""
    n, caps, d = 1000, 2, 16
    table, offsets = _table(n, caps, d, seed=3)
    cls = np.arange(n) % 100
    items, capi = np.arange(n), np.zeros(n, dtype=np.int64)
    blind = torch.ones(n, d, dtype=torch.float64)  # one picture whatever the caption
    out = R.r_precision(blind, items, capi, table, offsets, cls, n_candidates=100, n_folds=10, seed=1)
    assert out[R.R_PRECISION] <= 0.04  # chance 1 %


def test_eval_sample_covers_classes_is_seeded_and_the_same_for_every_arm():
    from types import SimpleNamespace

    from t2i_lib.metrics.sampling import class_interleaved_order, eval_plan

    cls = np.repeat(np.arange(12), 20)  # a test split stored class by class (12 classes x 20 images)
    order = class_interleaved_order(cls, seed=5)
    assert sorted(order.tolist()) == list(range(240))
    assert len(set(cls[order[:12]].tolist())) == 12  # the first 12 samples: one of each class
    assert np.bincount(cls[order[:60]], minlength=12).tolist() == [5] * 12
    assert np.array_equal(order, class_interleaved_order(cls, seed=5))
    assert not np.array_equal(order, class_interleaved_order(cls, seed=6))
    class DS(SimpleNamespace):
        def __len__(self):
            return len(self.records)

    ds = DS(class_ids=cls, records=[{"tokens": [[1], [2], [3]]} for _ in cls])
    items, caps = eval_plan(ds, 300, seed=5)  # more samples than images: a second pass in the same order
    assert np.array_equal(items[:240], order) and np.array_equal(items[240:], order[:60])
    assert caps.min() >= 0 and caps.max() <= 2
    items2, caps2 = eval_plan(ds, 300, seed=5)
    assert np.array_equal(items, items2) and np.array_equal(caps, caps2)
    first_n = np.arange(24) % 240  # the old plan: the first 24 items, 2 classes only
    assert len(set(cls[first_n].tolist())) == 2 and len(set(cls[items[:24]].tolist())) == 12
