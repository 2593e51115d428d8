"""Semantic consistency and attribute accuracy on hand-built generators."""

import numpy as np
import pytest
import torch

from t2i_lib.data import CaptionDataset
from t2i_lib.data.synthetic import prepare_synthetic, render, sample_params
from t2i_lib.metrics import consistency as K


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes") / "ds"
    prepare_synthetic(root, n_images=800, seed=3, size=32, progress=False)
    return root


def _features(images):  # a plain, caption-agnostic feature: the flattened image
    return images.flatten(1)


def test_gap_is_zero_for_text_blind_and_positive_for_caption_copying_generator(shapes):
    test = CaptionDataset(shapes, "test", (32,))
    plan = K.consistency_plan(test, n_images=20, k=3, seed=0)
    assert plan["sib_items"].shape == plan["unrel_items"].shape == (20, 3)
    cls = test.class_ids
    assert all((cls[plan["unrel_items"][g]] != cls[plan["items"][g]]).all() for g in range(20))
    assert all(len(set(row)) == 3 for row in plan["sib_caps"])  # k different captions of the same image

    def blind(items, caps, z):  # ignores the caption: depends on the noise only
        return torch.tanh(z[:, :1, None, None].expand(-1, 3, 8, 8) + torch.linspace(-1, 1, 8))

    sib, unrel = K.generated_groups(blind, plan, z_dim=4, eval_seed=0)
    s = K.consistency_scores(_features(sib.flatten(0, 1)).reshape(20, 3, -1),
                             _features(unrel.flatten(0, 1)).reshape(20, 3, -1))
    assert s["gap"] == pytest.approx(0.0, abs=1e-12)

    def copier(items, caps, z):  # draws exactly what the (item's) caption describes
        imgs = [torch.from_numpy(render(sample_params(3, int(test.records[i]["key"].split("_")[-1])), 16))
                for i in items]
        return torch.stack(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1

    sib, unrel = K.generated_groups(copier, plan, z_dim=4, eval_seed=0)
    s = K.consistency_scores(_features(sib.flatten(0, 1)).reshape(20, 3, -1),
                             _features(unrel.flatten(0, 1)).reshape(20, 3, -1))
    assert s["sibling_sim"] == pytest.approx(1.0, abs=1e-9) and s["gap"] > 0.01


def test_pairwise_group_similarity_hand_computed():
    f = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    want = (0.0 + 2 ** -0.5 + 2 ** -0.5) / 3
    assert K.pairwise_group_similarity(f) == pytest.approx(want)


def test_attribute_classifier_learns_and_scores_stated_attributes_only(shapes):
    torch.manual_seed(0)
    clf, rep = K.train_attribute_classifier(shapes, "cpu", epochs=8, batch_size=32, width=16, progress=False,
                                             input_size=32)
    acc = rep["real_test_accuracy"]
    assert set(acc) == {"shape", "colour", "position", "size"}
    assert acc["colour"] > 0.8 and acc["position"] > 0.8  # chance 1/8 and 1/9
    test = CaptionDataset(shapes, "test", (32,))
    imgs = torch.stack([test[i]["images"][0] for i in range(16)])
    attrs = [test.records[i]["attributes"] for i in range(16)]
    # the real images scored against their own attributes: high; against a shuffled set: low
    ments = [["colour", "position"]] * 16
    good = K.attribute_accuracy(clf, imgs, attrs, ments, "cpu")
    bad = K.attribute_accuracy(clf, imgs, attrs[1:] + attrs[:1], ments, "cpu")
    assert good["n_checks"] == 32 and set(good["per_attribute"]) == {"colour", "position"}
    assert good[K.ATTRIBUTE_ACCURACY] > bad[K.ATTRIBUTE_ACCURACY] + 0.3
    only_shape = K.attribute_accuracy(clf, imgs, attrs, [["shape"]] * 16, "cpu")
    assert set(only_shape["per_attribute"]) == {"shape"} and only_shape["n_checks"] == 16


def test_calibrated_gap_blind_zero_copier_positive_and_unsaturated(shapes):
    test = CaptionDataset(shapes, "test", (32,))
    plan = K.consistency_plan(test, n_images=20, k=3, seed=1)
    offset = torch.full((3 * 16 * 16,), 40.0)  # one direction every image shares, as measured on DAMSM codes

    def feats(x):
        return _features(x) + offset

    def blind(items, caps, z):
        return torch.tanh(z[:, :3, None, None].expand(-1, 3, 16, 16) * torch.linspace(-1, 1, 16))

    def copier(items, caps, z):
        imgs = [torch.from_numpy(render(sample_params(3, int(test.records[i]["key"].split("_")[-1])), 16))
                for i in items]
        return torch.stack(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1 + 0.05 * z[:, :1, None, None]

    out = {}
    for name, gen in (("blind", blind), ("copier", copier)):
        sib, unrel = K.generated_groups(gen, plan, z_dim=4, eval_seed=0)
        out[name] = K.consistency_scores(feats(sib.flatten(0, 1)).reshape(20, 3, -1),
                                         feats(unrel.flatten(0, 1)).reshape(20, 3, -1), center="pooled",
                                         n_boot=500, seed=0)
    assert out["blind"]["gap"] == pytest.approx(0.0, abs=1e-12)
    assert out["blind"]["gap_ci95"] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert out["blind"]["sibling_sim"] > 0.5  # high sibling similarity without any text dependence
    c = out["copier"]
    assert c["gap"] > 0.3 and c["gap_ci95"][0] > 0.2 and c["gap_ci95"][0] <= c["gap"] <= c["gap_ci95"][1]
    assert c["n_groups"] == 20
    assert c["gap"] == pytest.approx(K.relative_gap(c["sibling_sim"], c["unrelated_sim"]))
    assert c["gap_diff"] == pytest.approx(c["sibling_sim"] - c["unrelated_sim"])
    # Uncentred, the shared offset saturates every cosine: the same generator's raw gap is tiny.
    assert c["gap_raw"] < 0.01 and c["gap"] > 30 * c["gap_raw"]


def test_relative_gap_does_not_shrink_when_shared_noise_dominates():
    g, k, d = 30, 3, 16
    gen = torch.Generator().manual_seed(0)
    content = torch.randn(g, d, generator=gen)          # what a picture's captions describe
    other = torch.randn(g, k, d, generator=gen)         # what unrelated captions describe
    for noise_scale in (1.0, 30.0):                     # the group's shared noise, growing
        z = noise_scale * torch.randn(g, 1, d, generator=gen)
        sib = z + content[:, None, :] + 0.1 * torch.randn(g, k, d, generator=gen)
        unrel = z + other
        r = K.consistency_scores(sib, unrel, center="pooled", n_boot=200, seed=1)
        assert 0.85 < r["gap"] <= 1.0 and r["gap_ci95"][0] > 0.7, (noise_scale, r)
        if noise_scale > 1:
            assert r["gap_diff"] < 0.01  # the plain centred difference collapses; the relative gap does not
    assert K.relative_gap(0.5, 0.5) == 0.0 and K.relative_gap(1.0, 0.2) == 1.0 and K.relative_gap(1.0, 1.0) == 0.0
    assert K.relative_gap(1 - 1e-10, 1 - 1e-9) == 0.0  # below float32 resolution: no measurable dependence


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    v = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.0])
    a = K.bootstrap_ci(v, 2000, seed=3)
    assert a == K.bootstrap_ci(v, 2000, seed=3) and a[0] < v.mean() < a[1] and a[1] - a[0] < 0.4
    assert K.bootstrap_ci(v, 0) is None and K.bootstrap_ci(v[:1], 100) is None


def test_attribute_chance_is_pooled_over_checks():
    class Fixed(torch.nn.Module):
        def forward(self, x):  # shape: 2 classes, colour: 8 classes; always predicts class 0
            return {"shape": torch.zeros(len(x), 2).index_fill_(1, torch.tensor([0]), 1.0),
                    "colour": torch.zeros(len(x), 8).index_fill_(1, torch.tensor([0]), 1.0)}

    attrs = [{"shape": 0, "colour": 0}, {"shape": 1, "colour": 3}, {"shape": 0, "colour": 5}]
    ments = [["shape", "colour"], ["colour"], ["colour"]]
    r = K.attribute_accuracy(Fixed(), torch.zeros(3, 3, 8, 8), attrs, ments, "cpu")
    assert r["n_checks"] == 4 and r[K.ATTRIBUTE_ACCURACY] == pytest.approx(2 / 4)
    # pooled: (1/2 + 3 x 1/8) / 4 checks, not the plain mean over heads (1/2 + 1/8) / 2
    assert r["chance"] == pytest.approx((0.5 + 3 / 8) / 4)


def test_metrics_paths_are_relative_to_the_results_directory(tmp_path):
    from t2i_lib import paths
    from t2i_lib.metrics import evaluate as E

    assert E._rel(tmp_path / "runs" / "x" / "best.pt", tmp_path) == "runs/x/best.pt"
    assert E._rel("/elsewhere/file.pt", tmp_path) == "/elsewhere/file.pt" and E._rel(None, tmp_path) is None
    inside = E._portable_fidelity({"weights_path": str(paths.PROJECT_ROOT / "cache" / "w.pth"), "weights_sha256": "ab"})
    assert inside == {"weights_path": "cache/w.pth", "weights_sha256": "ab"}
    assert E._portable_fidelity({"weights_path": "/opt/x/w.pth"})["weights_path"] == "w.pth"
    assert E._portable_fidelity(None) is None
