"""DAMSM pretraining (docs/method.md#damsm-pretraining), optionally with DAMSM+CL (docs/method.md#damsm-cl).

Per epoch (the reference schedule): a fresh Adam(lr, betas=(0.5, 0.999)) over the text encoder and the image
encoder's trainable part (the two projections; the whole small CNN for the ``small`` backbone); after the epoch
lr <- lr_decay * lr while lr > lr_floor; the text encoder's gradient norm is clipped to ``grad_clip``.  Loss per
batch: DAMSM (w0 + w1 + s0 + s1, unweighted) on one caption, or for ``damsm.contrastive`` on each of two different
captions of the same images plus NT-Xent(tau) between the two sentence embeddings.  Batches are not length-sorted
(the text encoder packs with ``enforce_sorted=False``), so both caption sets are already in dataset order.

Validation split.  ``damsm.val_fraction > 0`` (the default, 0.1) carves a validation split out of the training
split (:func:`t2i_lib.data.dataset.validation_indices`: every 1/f-th training image ordered by class and a seeded
shuffle); the encoders train on the rest.  After every epoch: validation loss on that split (one caption per image,
fixed by the seed) and R-precision of its real images (the protocol of :mod:`t2i_lib.metrics.r_precision`),
appended to ``stats.jsonl``.  The test split, which later scores the generators, plays no part in training or
selection; it only reports the chosen encoder's real-image R-precision at the end.  (``val_fraction=0`` restores
the old protocol: validation on the test split.)  Checkpoints every ``ckpt_every`` epochs and at the end; the best
epoch by validation loss is copied to ``best.pt`` (the selection rule is recorded).

Two encoders per profile.  The *training encoder* (``damsm.seed``) is the one GAN training uses (G-loss DAMSM term,
fake-to-fake / fake-to-real features).  The *evaluation encoder* or judge (:func:`judge_config_for`, seed
``eval.judge_seed``, same data and settings) is pretrained the same way and only scores generated images, so
the losses are not judged by the network they optimise.  Resuming restarts from the latest readable checkpoint at an
epoch boundary; because Adam is re-created every epoch and all sampling is seeded by (seed, epoch, index), a
resumed run follows the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any


from .. import __version__, paths
from ..config import Config, resolve
from ..utils.io import file_sha256, write_json

log = logging.getLogger(__name__)

SELECTION_RULE = "lowest validation DAMSM loss (test split, one seeded caption per image)"  # val_fraction = 0


def selection_rule(cfg: Config) -> str:
    """How ``best.pt`` is chosen under ``cfg``."""
    f = cfg.damsm.val_fraction
    if f <= 0:
        return SELECTION_RULE
    return (f"lowest validation DAMSM loss (validation split carved from the training split: fraction {f:g}, "
            f"stratified by class, seeded; one seeded caption per image)")


# ------------------------------------------------------------------------------------------------------------
# Where a DAMSM lives
# ------------------------------------------------------------------------------------------------------------
def damsm_config_for(cfg: Config) -> Config:
    """The DAMSM pretraining config that ``cfg`` (any experiment) uses: its data and damsm sections, the
    profile, and ``damsm.seed`` as run seed (one DAMSM shared by every GAN run of a profile)."""
    name = "damsm_cl" if cfg.damsm.contrastive else "damsm"
    over = {"data": dataclasses.asdict(cfg.data), "damsm": dataclasses.asdict(cfg.damsm),
            "run": {"deterministic": cfg.run.deterministic, "device": cfg.run.device,
                    "progress": cfg.run.progress, "results_dir": cfg.run.results_dir}}
    return resolve(name, cfg.profile, over, seed=cfg.damsm.seed)


def judge_config_for(cfg: Config) -> Config:
    """The DAMSM pretraining config of ``cfg``'s evaluation encoder (the judge): the training encoder's data and
    damsm settings with seed ``eval.judge_seed`` and the kind ``eval.judge_kind`` (same | damsm | damsm_cl)."""
    from ..config import ConfigError

    e = cfg.eval
    contrastive = {"same": cfg.damsm.contrastive, "damsm": False, "damsm_cl": True}[e.judge_kind]
    if e.judge_seed == cfg.damsm.seed:
        raise ConfigError(f"eval.judge_seed={e.judge_seed} equals damsm.seed: the evaluation encoder must be "
                          "trained with its own seed (or give eval.judge_encoder_path)")
    judge = dataclasses.replace(cfg, damsm=dataclasses.replace(cfg.damsm, seed=e.judge_seed, contrastive=contrastive,
                                                               encoder_path=""))
    return damsm_config_for(judge)


def judge_encoder_path(cfg: Config) -> Path | None:
    """The evaluation encoder's checkpoint: ``eval.judge_encoder_path`` if set, else the judge's pretrained best.pt;
    None when ``eval.judge`` is off."""
    if not cfg.eval.judge:
        return None
    if cfg.eval.judge_encoder_path:
        return Path(cfg.eval.judge_encoder_path).expanduser()
    return run_dir_for(judge_config_for(cfg)) / "best.pt"


def ensure_judge(cfg: Config, device, dataset_root: str | Path) -> Path | None:
    """The evaluation encoder of ``cfg``, pretrained first when missing (None when ``eval.judge`` is off)."""
    path = judge_encoder_path(cfg)
    if path is None:
        return None
    return _given_or_pretrained(path, "eval.judge_encoder_path", cfg.eval.judge_encoder_path,
                                judge_config_for(cfg), device, dataset_root)


def _given_or_pretrained(path: Path, key: str, given: str, damsm_cfg: Config, device,
                         dataset_root: str | Path) -> Path:
    """``path`` of an encoder: the file a config key names (it must exist; nothing is trained), or the best.pt of
    ``damsm_cfg``, pretrained first when missing."""
    if given:
        if not path.is_file():
            raise FileNotFoundError(f"{key}={given!r} does not exist")
        return path
    pretrain_damsm(damsm_cfg, device, dataset_root)
    return path


def run_dir_for(cfg: Config) -> Path:
    return paths.profile_dir(cfg.profile, cfg.run.results_dir) / "runs" / cfg.run_id


def encoder_path(cfg: Config) -> Path:
    """The DAMSM checkpoint ``cfg`` uses: ``damsm.encoder_path`` if set, else the profile's pretrained best.pt."""
    if cfg.damsm.encoder_path:
        return Path(cfg.damsm.encoder_path).expanduser()
    return run_dir_for(damsm_config_for(cfg)) / "best.pt"


def ensure_encoders(cfg: Config, device, dataset_root: str | Path) -> Path:
    """The DAMSM checkpoint a GAN run of ``cfg`` uses, pretraining the profile's DAMSM first when it is missing.
    With ``damsm.encoder_path`` set, that file is used as given (an error if it does not exist; nothing is
    trained)."""
    return _given_or_pretrained(encoder_path(cfg), "damsm.encoder_path", cfg.damsm.encoder_path,
                                damsm_config_for(cfg), device, dataset_root)


# ------------------------------------------------------------------------------------------------------------
# Building and loading encoders
# ------------------------------------------------------------------------------------------------------------
def build_encoders(cfg: Config, vocab_size: int):
    from ..models.damsm import build_damsm

    dm = cfg.damsm
    return build_damsm(vocab_size, backbone=dm.backbone, embedding_dim=dm.embedding_dim, word_dim=dm.word_dim,
                       small_width=dm.small_width, small_input=cfg.data.image_size,
                       inception_weights=dm.inception_weights, text_dropout=dm.text_dropout)


def load_encoders(path: str | Path, device, vocab_hash: str | None = None, freeze_them: bool = True):
    """(text_encoder, image_encoder, checkpoint-metadata) from a DAMSM checkpoint.

    ``vocab_hash`` (the dataset's) must match the encoder's vocabulary, or a :class:`CheckpointError` says so —
    the readable form of the classic "size mismatch for encoder.weight".
    """
    from ..models.damsm import ImageEncoder, TextEncoder, freeze
    from .checkpoint import CheckpointError, load

    ckpt = load(path, expect={"kind": "damsm"})
    if vocab_hash is not None and ckpt["vocab_hash"] != vocab_hash:
        raise CheckpointError(
            f"DAMSM checkpoint {path} was trained with vocabulary {ckpt['vocab_hash']} "
            f"({len(ckpt['vocab'])} words) but the dataset's vocabulary is {vocab_hash}: use the encoder trained on "
            "this dataset, or prepare the dataset with the encoder's vocabulary (--vocab-from captions.pickle)")
    kw = ckpt["model_kwargs"]
    text = TextEncoder(**kw["text"])
    image = ImageEncoder(**kw["image"])
    text.load_state_dict(ckpt["state"]["text"])
    image.load_state_dict(ckpt["state"]["image"])
    text.to(device)
    image.to(device)
    if freeze_them:
        freeze(text)
        freeze(image)
    meta = {k: ckpt[k] for k in ("epoch", "config_hash", "vocab_hash", "lib_version", "selection", "config", "best")
            if k in ckpt}
    meta["path"] = str(path)
    meta["sha256"] = file_sha256(path)  # which weights: retrains of one config differ (floating-point order)
    return text, image, meta


# ------------------------------------------------------------------------------------------------------------
# One batch
# ------------------------------------------------------------------------------------------------------------
def batch_loss(text_enc, image_enc, batch: dict, cfg: Config, device, info=None) -> dict[str, Any]:
    """DAMSM (and DAMSM+CL) loss terms of one batch from a CaptionDataset loader.

    Under torchrun (``info`` of :mod:`.distributed`) the batch is this rank's slice; features are gathered so
    the B x B matching terms see the global batch (the same loss on every rank).  Both caption sets of DAMSM+CL
    go through the text encoder in one call (one DDP forward per step)."""
    import torch

    from ..losses.contrastive import nt_xent
    from ..losses.damsm import damsm_loss
    from .distributed import SINGLE, gather_cat

    info = info or SINGLE
    dm = cfg.damsm
    imgs = batch["images"][-1].to(device)
    region, code = image_enc(imgs)
    region, code = gather_cat(region, info), gather_cat(code, info)
    cls = gather_cat(batch["class_id"].to(device), info)
    keys = [("", "caption", "cap_len")]
    if dm.contrastive and "caption2" in batch:
        keys.append(("2", "caption2", "cap_len2"))
    caps = torch.cat([batch[ck] for _, ck, _ in keys]).to(device)
    lens = torch.cat([batch[lk] for _, _, lk in keys]).to(device)
    words_all, sent_all = text_enc(caps, lens)
    n = imgs.shape[0]
    out: dict[str, Any] = {}
    total = 0.0
    sents = []
    for k, (sfx, _, _) in enumerate(keys):
        words, sent = gather_cat(words_all[k * n:(k + 1) * n], info), gather_cat(sent_all[k * n:(k + 1) * n], info)
        lk = gather_cat(lens[k * n:(k + 1) * n], info)
        terms = damsm_loss(region, code, words, sent, lk, cls, dm.gamma1, dm.gamma2, dm.gamma3,
                           dm.paper_gamma2_factor)
        for key in ("w_loss0", "w_loss1", "s_loss0", "s_loss1"):
            out[key + sfx] = terms[key]
        total = total + terms["total"]
        sents.append(sent)
    if len(sents) == 2:
        out["nt_xent"] = nt_xent(sents[0], sents[1], dm.contrastive_tau)
        total = total + out["nt_xent"]
    out["total"] = total
    return out


def _params(image_enc):
    return [p for p in image_enc.parameters() if p.requires_grad]


# ------------------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------------------
def pretrain_damsm(cfg: Config, device, dataset_root: str | Path, force: bool = False, resume: bool = True,
                   progress: bool | str = "auto", max_batches: int = 0) -> dict[str, Any]:
    """Pretrain DAMSM encoders for ``cfg`` (a ``damsm``/``damsm_cl`` config) on ``dataset_root``.

    Returns the summary (also written to ``run_dir/summary.json``).  A finished run with the same config is reused
    unless ``force``; an interrupted one resumes from its latest checkpoint when ``resume``.  A second process
    asking for the same run waits for the first (:func:`~t2i_lib.utils.io.dir_lock`), then reuses it.
    ``max_batches > 0`` limits batches per epoch (tests).
    """
    import contextlib

    from ..utils.io import dir_lock
    from .distributed import current

    if cfg.experiment not in ("damsm", "damsm_cl"):
        cfg = damsm_config_for(cfg)
    info = current()  # under torchrun: rank 0 writes, every rank trains its slice of each global batch
    with dir_lock(run_dir_for(cfg)) if info.is_main else contextlib.nullcontext():
        return _pretrain_damsm(cfg, device, dataset_root, force, resume, progress, max_batches, info)


def _pretrain_damsm(cfg: Config, device, dataset_root: str | Path, force: bool, resume: bool,
                    progress: bool | str, max_batches: int, info) -> dict[str, Any]:
    import torch

    from ..data.dataset import CaptionDataset, make_loader
    from ..metrics.r_precision import real_image_r_precision
    from ..utils.logging import progress as bar
    from ..utils.seed import seed_everything
    from . import checkpoint as ck
    from .distributed import ShardSampler, barrier, broadcast, wrap
    from .run import progress_flag, start_run

    dm, d = cfg.damsm, cfg.data
    run_dir = run_dir_for(cfg)
    summary_path = run_dir / "summary.json"
    reused = broadcast(start_run(cfg, run_dir, force, "DAMSM") if info.is_main else None, info)
    if reused is not None:
        return reused
    if not info.is_main:
        seed_everything(cfg.run.seed + info.rank)  # own dropout masks per rank
    prog = progress_flag(cfg, progress) if info.is_main else False
    n_caps = 2 if dm.contrastive else 1
    vf = dm.val_fraction
    train_ds = CaptionDataset(dataset_root, "train", (d.image_size,), n_caps, d.max_words, d.long_caption_mode,
                              cfg.run.seed, d.random_crop, d.random_flip, d.on_bad_image, val_fraction=vf)
    test_ds = CaptionDataset(dataset_root, "test", (d.image_size,), 1, d.max_words, "truncate", cfg.run.seed,
                             on_bad_image=d.on_bad_image)
    val_ds = test_ds if vf <= 0 else CaptionDataset(dataset_root, "val", (d.image_size,), 1, d.max_words, "truncate",
                                                    cfg.run.seed, on_bad_image=d.on_bad_image, val_fraction=vf)
    rule = selection_rule(cfg)
    if len(train_ds) < dm.batch_size:
        raise ValueError(f"damsm.batch_size={dm.batch_size} exceeds the {len(train_ds)} training images")
    vocab = train_ds.vocab
    text_enc, image_enc, model_kwargs = build_encoders(cfg, len(vocab))
    text_enc.to(device)
    image_enc.to(device)
    local_bs = ShardSampler(len(train_ds), dm.batch_size, 0, info).local  # checks divisibility

    ckpt_dir = run_dir / "checkpoints"
    history: list[dict] = []
    start_epoch, lr = 0, dm.lr
    best = {"epoch": -1, "val_loss": math.inf}
    latest = ck.load_latest(ckpt_dir, expect={"kind": "damsm", "config_hash": cfg.hash}) if resume else None
    if latest is not None:
        text_enc.load_state_dict(latest["state"]["text"])
        image_enc.load_state_dict(latest["state"]["image"])
        ck.set_rng_state(latest["rng"])
        start_epoch, lr, history, best = latest["epoch"] + 1, latest["lr"], latest["history"], latest["best"]
        log.info("resuming DAMSM from epoch %d (%s)", latest["epoch"], ckpt_dir)
    stats_path = run_dir / "stats.jsonl"
    if info.is_main:
        stats_path.write_text("".join(_jsonl(h) for h in history))
    text_ddp, image_ddp = wrap(text_enc, info, device), wrap(image_enc, info, device)

    def payload(epoch):
        return {"kind": "damsm", "epoch": epoch, "config": cfg.to_dict(), "config_hash": cfg.hash,
                "model_kwargs": {"text": model_kwargs["text"], "image": model_kwargs["image"]},
                "inception_weights": model_kwargs["inception_weights"],
                "state": {"text": text_enc.state_dict(), "image": image_enc.state_dict()},
                "vocab": list(vocab.idx_to_word), "vocab_hash": vocab.hash, "lr": lr, "history": history,
                "best": best, "selection": rule, "rng": ck.rng_state()}

    t_start = time.time()
    for epoch in range(start_epoch, dm.epochs):
        t0 = time.time()
        train_ds.set_epoch(epoch)
        sampler = ShardSampler(len(train_ds), dm.batch_size, cfg.run.seed * 100003 + epoch, info)
        loader = make_loader(train_ds, local_bs, shuffle=False, seed=cfg.run.seed * 100003 + epoch,
                             num_workers=d.num_workers, drop_last=True, pin_memory=device.type == "cuda",
                             sampler=sampler)
        opt = torch.optim.Adam(list(text_enc.parameters()) + _params(image_enc), lr=lr, betas=(0.5, 0.999))
        text_enc.train()
        image_enc.train()
        sums: dict[str, float] = {}
        n = 0
        for b, batch in enumerate(bar(loader, enabled=prog, desc=f"DAMSM epoch {epoch}", leave=False)):
            if max_batches and b >= max_batches:
                break
            terms = batch_loss(text_ddp, image_ddp, batch, cfg, device, info)
            if not torch.isfinite(terms["total"]):
                raise FloatingPointError(f"DAMSM loss is not finite at epoch {epoch}, batch {b}: "
                                         f"{ {k: float(v) for k, v in terms.items()} }")
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(text_enc.parameters(), dm.grad_clip)
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n += 1
        train_terms = {f"train_{k}": v / max(n, 1) for k, v in sums.items()}  # global-batch losses, all ranks
        lr_next = lr * dm.lr_decay if lr > dm.lr_floor else lr
        if not info.is_main:  # validation, selection and checkpoints: rank 0
            lr = lr_next
            barrier(info)
            continue
        val = evaluate(text_enc, image_enc, val_ds, cfg, device)
        rp = real_image_r_precision(text_enc, image_enc, val_ds, device, cfg.eval.r_precision_candidates,
                                    min(cfg.eval.r_precision_folds, len(val_ds)), seed=cfg.eval.eval_seed,
                                    encoder_name=f"{cfg.run_id}@epoch{epoch}")
        rec = {"epoch": epoch, "lr": lr, "batches": n, "seconds": time.time() - t0, **train_terms, **val,
               "r_precision": rp["r_precision"], "r_precision_std": rp["r_precision_std"]}
        history.append(rec)
        with open(stats_path, "a") as fh:
            fh.write(_jsonl(rec))
        log.info("DAMSM epoch %d: train %.3f  val %.3f  R-precision %.3f  (%.1fs)", epoch,
                 rec.get("train_total", float("nan")), val["val_total"], rp["r_precision"], rec["seconds"])
        lr = lr_next
        improved = val["val_total"] < best["val_loss"]
        if improved:
            best = {"epoch": epoch, "val_loss": val["val_total"], "r_precision": rp["r_precision"]}
        last = epoch == dm.epochs - 1
        if improved or last or (epoch + 1) % dm.ckpt_every == 0:
            path = ck.save(ckpt_dir, epoch, payload(epoch))
            if improved:
                ck.protect(ckpt_dir, path.name)
                shutil.copyfile(path, run_dir / ".best.pt.tmp")
                (run_dir / ".best.pt.tmp").replace(run_dir / "best.pt")
        barrier(info)

    if not info.is_main:
        return broadcast(None, info)

    final_rp = real_image_r_precision(text_enc, image_enc, test_ds, device, cfg.eval.r_precision_candidates,
                                      min(cfg.eval.r_precision_folds, len(test_ds)), seed=cfg.eval.eval_seed,
                                      encoder_name=f"{cfg.run_id}@final")
    best_text, best_image, meta = load_encoders(run_dir / "best.pt", device, freeze_them=False)
    results_root = paths.profile_dir(cfg.profile, cfg.run.results_dir)
    best_rp = real_image_r_precision(best_text, best_image, test_ds, device, cfg.eval.r_precision_candidates,
                                     min(cfg.eval.r_precision_folds, len(test_ds)), seed=cfg.eval.eval_seed,
                                     encoder_name=f"{cfg.run_id}@best(epoch {best['epoch']})")
    summary = {"run_id": cfg.run_id, "config_hash": cfg.hash, "lib_version": __version__, "seed": cfg.run.seed,
               "dataset": str(dataset_root), "vocab_hash": vocab.hash, "vocab_size": len(vocab),
               "backbone": dm.backbone, "inception_weights": dm.inception_weights, "contrastive": dm.contrastive,
               "epochs": dm.epochs, "best_epoch": best["epoch"], "selection": rule,
               "validation": {"split": val_ds.split, "fraction": vf, "n_images": len(val_ds),
                              "n_train_images": len(train_ds)},
               "best_checkpoint": str(run_dir / "best.pt"), "r_precision_final": final_rp,
               "r_precision_best": best_rp, "history": history, "wall_seconds": time.time() - t_start,
               "device": str(device)}
    protocol = {"queries": "real test images, one seeded caption each", "n_candidates":
                cfg.eval.r_precision_candidates, "n_folds": best_rp["n_folds"], "fold_size": best_rp["fold_size"],
                "seed": cfg.eval.eval_seed, "split": "test", "image_size": d.image_size}
    metrics = {"run_id": cfg.run_id, "kind": "damsm", "config_hash": cfg.hash, "lib_version": __version__,
               "seed": cfg.run.seed, "profile": cfg.profile, "dataset": d.dataset, "contrastive": dm.contrastive,
               "encoder": (run_dir / "best.pt").relative_to(results_root).as_posix(), "selection": rule,
               "best_epoch": best["epoch"], "r_precision": best_rp["r_precision"],
               "r_precision_std": best_rp["r_precision_std"], "protocol": protocol, "config": cfg.to_dict(),
               # where and how it trained: retrains of one config can differ (floating-point order of the device,
               # thread count and process count), so the record says which it was
               "device": str(device), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "world_size": info.world_size, "wall_seconds": summary["wall_seconds"]}
    metrics_path = results_root / "metrics" / f"{cfg.run_id}.json"
    write_json(metrics_path, metrics)
    summary["metrics_file"] = str(metrics_path)
    summary["world_size"] = info.world_size
    write_json(summary_path, summary)
    broadcast(summary, info)
    return summary


def evaluate(text_enc, image_enc, dataset, cfg: Config, device, batch_size: int = 64) -> dict[str, float]:
    """Mean DAMSM loss terms over ``dataset`` (eval mode, no gradients; batches in dataset order)."""
    import torch

    from ..data.dataset import make_loader

    was = (text_enc.training, image_enc.training)
    text_enc.eval()
    image_enc.eval()
    sums: dict[str, float] = {}
    n = 0
    bs = max(2, min(batch_size, len(dataset)))
    with torch.no_grad():
        for batch in make_loader(dataset, bs, shuffle=False, seed=0):
            if batch["caption"].shape[0] < 2:
                continue
            terms = batch_loss(text_enc, image_enc, batch, cfg, device)
            w = batch["caption"].shape[0]
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * w
            n += w
    text_enc.train(was[0])
    image_enc.train(was[1])
    return {f"val_{k}": v / max(n, 1) for k, v in sums.items()}


def _jsonl(rec: dict) -> str:
    import json

    return json.dumps(rec, sort_keys=True) + "\n"
