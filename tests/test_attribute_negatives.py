"""Attribute negatives (train.attribute_negatives): captions wrong in exactly one attribute for SSA-GAN's
discriminator, the config field that keeps earlier run ids, and the discriminator attribute probe."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from t2i_lib import config as C
from t2i_lib.data.dataset import CaptionDataset
from t2i_lib.data.errors import DataError
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from t2i_lib.data.prepare import ensure_dataset

    cfg = C.resolve("ssagan_baseline", "smoke", {"run.results_dir": str(tmp_path_factory.mktemp("neg")),
                                                 "data.n_images": 400, "data.image_size": 32})
    return ensure_dataset(cfg)


def test_negatives_differ_in_exactly_one_attribute_their_caption_states(shapes_root):
    ds = CaptionDataset(shapes_root, "train", (32,), 2, 18, "subsample", seed=3, attribute_negatives=True)
    names = list(ds.attribute_schema)
    seen = {}
    for i in range(len(ds)):
        j, c, a = ds.attribute_negative(i, np.random.default_rng(i))
        mine, theirs = ds.records[i]["attributes"], ds.records[j]["attributes"]
        if a == "class":  # no one-attribute neighbour in this small split: another shape or colour
            assert ds.records[j]["class_id"] != ds.records[i]["class_id"]
        else:
            assert [n for n in names if mine[n] != theirs[n]] == [a]
            assert a in ds.records[j]["mentions"][c]
        seen[a] = seen.get(a, 0) + 1
    assert set(names) <= set(seen)  # every attribute is drawn
    assert seen.get("class", 0) < 0.2 * len(ds)
    item = ds[7]
    j, c, _ = ds.attribute_negative(7, np.random.default_rng([3, 0, 7, 7919]))
    ids, n = ds.encode_caption(j, c, np.random.default_rng(0))
    assert item["cap_len_neg"] == n and item["caption_neg"].shape == (18,)
    assert torch.equal(ds[7]["caption_neg"], item["caption_neg"])  # seeded by (seed, epoch, index)
    first = [ds[k]["caption_neg"] for k in range(10)]
    ds.set_epoch(1)
    assert sum(not torch.equal(ds[k]["caption_neg"], first[k]) for k in range(10)) >= 5  # new draws each epoch


def test_partner_search_matches_a_brute_force_reference(shapes_root):
    ds = CaptionDataset(shapes_root, "test", (32,), seed=0)
    names = list(ds.attribute_schema)
    A = [ds.records[j]["attributes"] for j in range(len(ds))]
    found = 0
    for i in range(len(ds)):
        assert ds.same_attribute_images(i) == [j for j in range(len(ds)) if j != i and A[j] == A[i]]
        for a in names:
            want = [(j, c) for j in range(len(ds)) if [n for n in names if A[j][n] != A[i][n]] == [a]
                    for c, m in enumerate(ds.records[j]["mentions"]) if a in m]
            assert ds.one_attribute_partners(i, a) == want
            found += len(want)
    assert found > 0  # the small split has some one-attribute partners to compare


def test_negative_draws_are_uniform_over_the_partner_lists(shapes_root):
    """attribute_negative draws without building the partner lists; its draws are exactly those of picking an
    attribute with partners, then a partner from one_attribute_partners' list, with the same generator."""
    ds = CaptionDataset(shapes_root, "train", (32,), 2, 18, "subsample", seed=3, attribute_negatives=True)
    drawn = set()
    for seed in (0, 1):
        new, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        for i in range(len(ds)):
            options = [(a, p) for a in ds.attribute_schema if (p := ds.one_attribute_partners(i, a))]
            if not options:
                continue  # the other-class fallback, covered above
            got = ds.attribute_negative(i, new)
            a, partners = options[int(ref.integers(len(options)))]
            assert got == (*partners[int(ref.integers(len(partners)))], a), i
            drawn.add(got[2])
    assert drawn == set(ds.attribute_schema)


def test_the_other_draws_are_the_same_with_and_without_negatives(shapes_root):
    plain = CaptionDataset(shapes_root, "train", (32,), 2, 18, "subsample", seed=5)
    neg = CaptionDataset(shapes_root, "train", (32,), 2, 18, "subsample", seed=5, attribute_negatives=True)
    for i in (0, 11, 42, len(plain) - 1):
        a, b = plain[i], neg[i]
        assert set(b) - set(a) == {"caption_neg", "cap_len_neg"}
        for k, v in a.items():
            if isinstance(v, list):
                assert all(torch.equal(x, y) for x, y in zip(v, b[k]))
            elif isinstance(v, torch.Tensor):
                assert torch.equal(v, b[k]), k
            else:
                assert v == b[k], k
    plain_n = CaptionDataset(shapes_root, "train", (32,), 2, 18, "subsample", seed=5)
    with pytest.raises(RuntimeError, match="attribute_negatives=True"):
        plain_n.attribute_negative(0, np.random.default_rng(0))


def test_negatives_need_attributes(tiny_dataset):
    with pytest.raises(DataError, match="attributes"):
        CaptionDataset(tiny_dataset, "train", (16,), attribute_negatives=True)


def test_the_field_at_its_default_keeps_every_committed_run_id():
    """Run ids written before train.attribute_negatives existed stay valid: the committed metrics' hashes."""
    files = sorted((ROOT / "results" / "demo" / "metrics").glob("*.json"))
    assert files
    for f in files:
        rec = json.loads(f.read_text())
        cfg = C.from_dict(rec["config"])
        assert cfg.hash == rec["config_hash"], f.name
    base = C.resolve("ssagan_baseline", "smoke")
    on = C.resolve("ssagan_baseline", "smoke", {"train.attribute_negatives": True})
    assert on.hash != base.hash and on.run_id != base.run_id


@pytest.mark.parametrize("over, match", [({"model.family": "attngan"}, "ssagan"),
                                         ({"data.dataset": "caption-scenes"}, "caption-shapes")])
def test_negatives_are_refused_where_they_do_not_apply(over, match):
    with pytest.raises(C.ConfigError, match=match):
        C.resolve("ssagan_baseline", "smoke", {"train.attribute_negatives": True, **over})


def test_negatives_join_the_mismatched_pairs():
    from t2i_lib.models.ssagan import Discriminator
    from t2i_lib.train.families.ssagan import heads

    torch.manual_seed(0)
    D = Discriminator(image_size=32, ndf=4, cond_dim=8, widths="relative").eval()
    x, s, neg = torch.randn(5, 3, 32, 32), torch.randn(5, 8), torch.randn(5, 8)
    (cond,), (mis,) = heads(D, x, [s], True)
    (cond2,), (mis2,) = heads(D, x, [s], True, negatives=neg)
    feat = D(x)
    assert torch.allclose(cond, cond2) and mis.shape == (4,) and mis2.shape == (9,)
    assert torch.allclose(mis2[:4], mis) and torch.allclose(mis2[4:], D.cond_logits(feat, neg))
    assert torch.allclose(mis, D.cond_logits(feat[:-1], s[1:]))  # image i with the caption of image i + 1


class _Oracle(torch.nn.Module):
    """A discriminator that reads shape and colour from its 'image' (a one-hot attribute code) and compares
    them with the 'sentence' (the same code of the attributes the caption states); blind to position and size."""

    def forward(self, x):
        return x

    def cond_logits(self, feat, sent):
        return (feat[:, :13] * sent[:, :13]).sum(1)  # shape (5) + colour (8) codes only


class _FakeData:
    """Records with attributes and mentions; an image is the one-hot code of its attributes, a caption the
    code of the attributes it states (token ids = offsets into that code)."""

    attribute_schema = {"shape": list(range(5)), "colour": list(range(8)), "position": list(range(9)),
                        "size": list(range(3))}
    offsets = {"shape": 0, "colour": 5, "position": 13, "size": 22}
    root, _groups = "fake", None
    # the real partner search over these records
    _attribute_groups = CaptionDataset._attribute_groups
    _others_key = CaptionDataset._others_key
    one_attribute_partners = CaptionDataset.one_attribute_partners
    same_attribute_images = CaptionDataset.same_attribute_images

    def __init__(self, n=300, seed=0):
        rng = np.random.default_rng(seed)
        self.records = []
        for _ in range(n):
            attrs = {a: int(rng.integers(len(v))) for a, v in self.attribute_schema.items()}
            mentions = [["shape", "colour", "position", "size"], ["shape", "colour"]]
            self.records.append({"attributes": attrs, "mentions": mentions, "tokens": [[0], [0]]})

    def __len__(self):
        return len(self.records)

    def _code(self, attrs, names):
        v = torch.zeros(25)
        for a in names:
            v[self.offsets[a] + attrs[a]] = 1
        return v

    def load_and_transform(self, i, epoch):
        return [self._code(self.records[i]["attributes"], self.attribute_schema)]

    def encode_caption(self, i, c):
        rec = self.records[i]
        return self._code(rec["attributes"], rec["mentions"][c]).numpy(), 1


def test_probe_reads_an_oracle_head_right():
    from t2i_lib.metrics.discriminator_probe import discriminator_attribute_probe

    text_encoder = lambda caps, lens: (None, caps.float())  # noqa: E731
    out = discriminator_attribute_probe(_Oracle(), text_encoder, _FakeData(), "cpu", n_images=300, batch_size=64)
    per = {a: r["own_beats_other"] for a, r in out["attributes"].items()}
    assert per["shape"] == 1.0 and per["colour"] == 1.0  # a wrong shape or colour always scores lower
    assert per["position"] == 0.5 and per["size"] == 0.5  # a head blind to them: ties, counted half
    assert out["control"]["own_beats_other"] == 0.5 and out["control"]["n"] > 0
    assert all(r["n"] > 50 for r in out["attributes"].values()) and out["chance"] == 0.5
    r = out["attributes"]["shape"]
    assert r["own_logit"] == 2.0 and r["other_logit"] == 1.0  # both codes match, then only the colour
    with pytest.raises(ValueError, match="at least 2"):
        discriminator_attribute_probe(_Oracle(), text_encoder, _FakeData(n=1), "cpu")


@pytest.fixture(scope="module")
def smoke_gan(tmp_path_factory):
    """A tiny SSA-GAN run (2 steps, attribute negatives on) over a tiny DAMSM: its config and checkpoint."""
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.train import gan
    from t2i_lib.train.damsm import damsm_config_for, pretrain_damsm

    over = {"run.results_dir": str(tmp_path_factory.mktemp("dprobe")), "data.n_images": 120, "damsm.epochs": 1,
            "damsm.batch_size": 8, "damsm.small_width": 8, "damsm.embedding_dim": 32, "model.ngf": 4,
            "model.ndf": 4, "model.z_dim": 8, "train.batch_size": 4, "train.max_steps": 2,
            "train.attribute_negatives": True}
    cfg = C.resolve("ssagan_baseline", "smoke", over)
    root = ensure_dataset(cfg)
    pretrain_damsm(damsm_config_for(cfg), torch.device("cpu"), root, max_batches=2)
    summary = gan.train_gan(cfg, torch.device("cpu"), root)
    return cfg, over, Path(summary["checkpoint"])



def test_probe_script_on_a_smoke_checkpoint(smoke_gan, tmp_path):
    cfg, _, ckpt = smoke_gan
    out = tmp_path / "probe.json"
    assert load_script("probe_discriminator").main([str(ckpt), "--label", "tiny", "--n-images", "40",
                                                "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    (p,) = rec["checkpoints"]
    assert rec["kind"] == "discriminator_attribute_probe" and p["label"] == "tiny"
    assert p["run_id"] == cfg.run_id and p["config_hash"] == cfg.hash and p["step"] == 2
    assert p["n_images"] == 24  # the whole test split of 120 images (fewer than asked for)
    assert len(p["gates"]) == 4 and all(abs(g) < 0.01 for g in p["gates"])  # 64 px: 4 blocks; 2 steps from 0
    assert set(p["attributes"]) == {"shape", "colour", "position", "size"}
    for r in list(p["attributes"].values()) + [p["control"]]:
        assert r["n"] == 0 or 0.0 <= r["own_beats_other"] <= 1.0
    assert out.with_suffix(".png").stat().st_size > 5000
    with pytest.raises(SystemExit):
        load_script("probe_discriminator").main([str(tmp_path / "missing.pt"), "--out", str(out)])


def test_matching_head_script_trains_and_probes(smoke_gan, tmp_path):
    _, over, _ = smoke_gan
    out = tmp_path / "head.json"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in over.items() if k != "train.max_steps"]
    assert load_script("train_matching_head").main(["--profile", "smoke", *sets, "--steps", "3", "--probe-every", "2",
                                                "--n-images", "30", "--magp", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "discriminator_matching_head" and set(rec["curves"]) == {"no MA-GP", "with MA-GP"}
    for recs in rec["curves"].values():
        assert [r["step"] for r in recs] == [2, 3] and all(r["n_images"] == 24 for r in recs)
        assert all(np.isfinite(r["loss"]) and r["seconds"] > 0 for r in recs)
    assert out.with_suffix(".png").stat().st_size > 5000
    from t2i_lib.metrics.discriminator_probe import train_matching_head

    with pytest.raises(ValueError, match="SSA-GAN's on caption-shapes, not 'attngan'"):
        train_matching_head(C.resolve("attngan_baseline", "smoke"), "cpu", 1, 1)
