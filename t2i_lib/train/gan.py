"""GAN training: one step function per model family, one loop shared by all (docs/method.md).

Families live in :mod:`t2i_lib.train.families` (one module each: build, generate, D heads, step); what their steps
share is in :mod:`t2i_lib.train.step`.  The loss variant is data: ``cfg.train.losses = {damsm, f2f, f2r}`` weights multiply named terms; the step never
branches on a variant's name (a zero weight switches a term off and skips its computation).

Caption sets and pairing (``train.caption_sets``, ``train.f2f_pairing``):
- ``caption_sets="paired"`` (default): every arm -- baseline, f2r, f2f, both -- trains on the same batches of two
  *different* captions per image, so the four arms differ only in the contrastive weights (the study's
  controlled ablation); ``"auto"``: one caption per image unless f2f is on (the reference's single-caption
  baseline, experiment ``<family>_baseline1cap``);
- ``f2f_pairing="duplicate"`` (reference): B images x two captions -> 2B fakes per step;
- ``f2f_pairing="split"``: B/2 images x two captions -> B fakes per step (the single-caption baseline's cost).
Both caption sets come in dataset order (the text encoder packs unsorted batches), so fake 1 of item i pairs with
fake 2 of item i and with real image i without un-permuting.  Noise (``train.pair_noise``, see
:func:`noise_for_sets`): ``independent`` (default) gives every fake its own z, ``per_image`` gives both captions of
an image the same z, ``per_position`` reproduces the reference's rows (noise row k goes with the k-th caption of
each *length-sorted* set, so the two fakes of one image usually get different z).

Loss terms per step (summed over caption sets k, as the reference sums its adversarial and DAMSM terms):
    D:  hinge(real, fake_k, mismatched) [+ MA-GP on (real, s_k)]             (SSA-GAN)
    G:  adv(fake_k) + w_damsm * DAMSM(fake_k, caption_k)
        + w_f2f * NT-Xent(code(fake_1), code(fake_2), tau_f2f)
        + w_f2r * NT-Xent(code(fake_k), code(real), tau_f2r)     (fake-to-real: each set's fakes vs their reals)
The DAMSM image encoder runs once per step over every image that needs features (fakes of all sets, plus the
real images when f2r is on).  Frozen encoders are in eval mode with ``requires_grad=False``; gradients flow through
them into G.

The loop: epochs or ``max_steps``; noise drawn from a generator seeded by (seed, step), sampling order by
(seed, epoch), so a resumed run continues exactly; EMA of G optional; fixed-noise sample grids every
``sample_every`` steps; ``stats.jsonl`` every ``log_every`` steps; atomic checkpoints every ``ckpt_every`` steps
and at the end; non-finite losses stop training naming the term and step (or are skipped and counted with
``train.skip_nonfinite``).

Under torchrun (``torchrun --nproc_per_node=N -m t2i_lib train-gan EXPERIMENT``) the configured batch is the
global batch: each rank loads its slice of every global batch, draws the noise rows of its slice, normalises
with global-batch statistics (SyncBatchNorm / CrossRankBatchNorm), gathers features for the batch-coupled terms
(mismatched pairs, DAMSM matching, NT-Xent negatives), and DDP averages the gradients of G and of D's heads.
Rank 0 alone writes logs, sample grids, checkpoints and the summary.  See :mod:`t2i_lib.train.distributed`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__, paths
from ..config import Config
from ..utils.grid import GRID_NROW, GRID_PADDING
from ..utils.io import write_json
from .distributed import SINGLE, DistInfo, Heads, check_divisible, current, rank_slices
from .families import FAMILIES  # the registry: one module per family
from .step import (Family, GanContext, accumulate, caption_sets, encoder_terms, generator_update,  # noqa: F401
                   mismatched, noise_for_sets, optimizer_step)  # re-exported: the step API

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN/inf; the message names the term and the step."""


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise NotImplementedError(f"model family {name!r} is not implemented yet (available: {sorted(FAMILIES)})")
    return FAMILIES[name]


def d_heads_for(cfg: Config, D, info: DistInfo = SINGLE, device=None):
    """D as the D step calls it: :class:`~t2i_lib.train.distributed.Heads` of the family (one per scale for the
    AttnGAN family), DDP-wrapped when distributed."""
    from .distributed import wrap

    fam = get_family(cfg.model.family)
    if fam.per_scale:
        return [wrap(Heads(Di, fam.heads), info, device) for Di in D]
    return wrap(Heads(D, fam.heads), info, device)


def make_optimizers(cfg: Config, G: nn.Module, D: nn.Module) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and for D with the family's betas and learning rates.  ``train.adam`` picks PyTorch's
    implementation: ``default`` (per-parameter loop on CPU), ``foreach`` (one multi-tensor call per operation) or
    ``fused`` (one kernel); the same update up to floating-point rounding (tested), far fewer small operations."""
    t = cfg.train
    betas = get_family(cfg.model.family).betas(cfg)
    impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[t.adam]
    return (torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=betas, eps=t.adam_eps, **impl),
            torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=betas, eps=t.adam_eps, **impl))


def speed_wrappers(cfg: Config, G: nn.Module, D: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The G and D the step calls: ``torch.compile``-d when ``train.compile`` (weights stay shared with the plain
    modules, which checkpoints save).  D is compiled only where no MA-GP double backward runs through it
    (torch.compile does not support double backward); the AttnGAN family's discriminators one by one."""
    if not cfg.train.compile:
        return G, D
    G = torch.compile(G)
    if cfg.model.family == "ssagan" and cfg.train.magp_weight > 0:
        log.info("train.compile: D left eager (MA-GP's double backward is not supported by torch.compile)")
    elif isinstance(D, nn.ModuleList):
        D = nn.ModuleList([torch.compile(Di) for Di in D])
    else:
        D = torch.compile(D)
    return G, D


# ------------------------------------------------------------------------------------------------------------
# Sampling order
# ------------------------------------------------------------------------------------------------------------
class EpochSampler(torch.utils.data.Sampler):
    """A permutation of range(n) seeded by (seed, epoch), starting at ``start`` (for an exact mid-epoch resume).

    Distributed (``info`` with W ranks, ``batch_size`` the global batch): the same permutation on every rank, cut
    into global batches from ``start``; this rank yields slice ``rank`` of W of each (the last partial batch
    dropped).  With one process the order is the plain permutation."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, batch_size: int | None = None,
                 info: DistInfo = SINGLE):
        check_divisible(batch_size, info)
        self.n, self.seed, self.epoch, self.start, self.info = n, seed, epoch, start, info
        self.batch_size = batch_size

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 17]).permutation(self.n)[self.start:].tolist()
        return iter(order if not self.info.enabled else rank_slices(order, self.batch_size, self.info))

    def __len__(self):
        if not self.info.enabled:
            return self.n - self.start
        return (self.n - self.start) // self.batch_size * (self.batch_size // self.info.world_size)


# ------------------------------------------------------------------------------------------------------------
# The shared loop
# ------------------------------------------------------------------------------------------------------------
def run_dir_for(cfg: Config) -> Path:
    return paths.profile_dir(cfg.profile, cfg.run.results_dir) / "runs" / cfg.run_id


def images_per_loader_batch(cfg: Config) -> int:
    """Real images per (global) batch: B, or B/2 when two caption sets are drawn in ``split`` pairing.  It depends
    on the caption sets, never on the loss weights, so the arms of a study load the same batches."""
    t = cfg.train
    if cfg.captions_per_sample == 2 and t.f2f_pairing == "split":
        return t.batch_size // 2
    return t.batch_size


def sample_grid(G, generate, text_enc, fixed: dict, device, path: Path, nrow: int = GRID_NROW) -> Path:
    """Images from the fixed captions and fixed noise, saved as one PNG grid (G in eval mode)."""
    import torchvision

    from ..utils.io import atomic_write_bytes

    was = G.training
    G.eval()
    with torch.no_grad():
        words, sent = text_enc(fixed["caption"].to(device), fixed["cap_len"].to(device))
        imgs = generate(G, fixed["z"].to(device), sent, words, None)
    G.train(was)
    grid = torchvision.utils.make_grid(imgs.float().cpu().clamp(-1, 1), nrow=nrow, normalize=True,
                                       value_range=(-1, 1), padding=GRID_PADDING)
    from PIL import Image
    import io

    arr = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def fixed_samples(test_ds, n: int, z_dim: int, seed: int) -> dict:
    """The first ``n`` test items with caption 0 (truncated) and noise seeded by ``seed``: the sample grid."""
    from ..data.text import fixed_length

    n = min(n, len(test_ds))
    caps, lens, texts = [], [], []
    for i in range(n):
        rec = test_ds.records[i]
        ids, k = fixed_length(rec["tokens"][0], test_ds.max_words, "truncate")
        caps.append(torch.from_numpy(ids))
        lens.append(k)
        texts.append(rec["captions"][0])
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
    return {"caption": torch.stack(caps), "cap_len": torch.tensor(lens), "z": z, "texts": texts}


def train_gan(cfg: Config, device, dataset_root: str | Path, force: bool = False, resume: bool = True,
              progress: bool | str = "auto") -> dict[str, Any]:
    """Train the GAN of ``cfg`` on ``dataset_root``; returns (and writes) ``summary.json``.

    Needs the profile's DAMSM (``t2i_lib.train.damsm.encoder_path(cfg)``).  A finished run with the same config
    is reused unless ``force``; an interrupted one resumes from its latest checkpoint when ``resume``.  A second
    process asking for the same run waits for the first (:func:`~t2i_lib.utils.io.dir_lock`), then reuses it.
    Under torchrun (an initialised process group, :func:`t2i_lib.train.distributed.init`) every rank calls this;
    see the module docstring for the semantics.
    """
    import contextlib

    from ..utils.io import dir_lock

    info = current()
    with dir_lock(run_dir_for(cfg)) if info.is_main else contextlib.nullcontext():
        return _train_gan(cfg, device, dataset_root, force, resume, progress, info)


def train_gan_processes(cfg: Config, nproc: int, device: str = "auto", force: bool = False,
                        resume: bool = True) -> dict[str, Any]:
    """Train ``cfg`` on ``nproc`` processes of this machine through PyTorch's elastic launcher (what ``torchrun``
    runs; the route from a notebook): ``python -m t2i_lib train-gan --config`` in each process, global-batch
    semantics as in the module docstring.  The dataset and DAMSM must exist (``ensure_dataset``,
    ``ensure_encoders``).  Returns the summary rank 0 wrote."""
    import tempfile

    from ..utils.io import read_json
    from .distributed import launch

    with tempfile.TemporaryDirectory(prefix="t2i-launch-") as tmp:
        path = write_json(Path(tmp) / "config.json", {"config": cfg.to_dict()})
        args = ["train-gan", cfg.experiment, "--config", str(path), "--device", str(device)]
        args += (["--force"] if force else []) + ([] if resume else ["--no-resume"])
        launch(args, nproc)
    return read_json(run_dir_for(cfg) / "summary.json")


def _train_gan(cfg: Config, device, dataset_root: str | Path, force: bool, resume: bool,
               progress: bool | str, info: DistInfo = SINGLE) -> dict[str, Any]:
    from ..data.dataset import CaptionDataset
    from ..utils.logging import progress as bar
    from . import checkpoint as ck
    from .damsm import encoder_path, load_encoders
    from .run import progress_flag, start_run
    from .distributed import barrier, broadcast, mean_over_ranks, sync_batchnorm, wrap
    from .ema import make_ema, update_ema
    from ..config import ConfigError
    from ..utils.seed import seed_everything

    fam = get_family(cfg.model.family)
    t, d = cfg.train, cfg.data
    run_dir = run_dir_for(cfg)
    summary_path = run_dir / "summary.json"
    if info.enabled and t.compile:
        raise ConfigError("train.compile is not supported under torchrun yet (compiled DDP modules are untested "
                          "here); train without it or in one process")
    reused = broadcast(start_run(cfg, run_dir, force, "GAN") if info.is_main else None, info)
    if reused is not None:
        return reused
    barrier(info)  # rank 0 has (re)created the run directory
    if not info.is_main:
        seed_everything(cfg.run.seed + info.rank)  # own draws of stochastic layers (CA, noise injection) per rank
    main = info.is_main
    prog = progress_flag(cfg, progress) if main else False

    n_caps = cfg.captions_per_sample
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    sizes = fam.image_sizes(cfg)
    train_ds = CaptionDataset(dataset_root, "train", sizes, n_caps, d.max_words, d.long_caption_mode, cfg.run.seed,
                              d.random_crop, d.random_flip, d.on_bad_image,
                              attribute_negatives=t.attribute_negatives)
    test_ds = CaptionDataset(dataset_root, "test", sizes, 1, d.max_words, "truncate", cfg.run.seed)
    enc_path = encoder_path(cfg)
    text_enc, image_enc, enc_meta = load_encoders(enc_path, device, vocab_hash=train_ds.vocab.hash)

    modules, model_kwargs = fam.build(cfg)
    G, D = (sync_batchnorm(modules[k], info, device).to(device) for k in ("G", "D"))
    if t.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    G_ema = make_ema(G) if t.ema else None
    G_fast, D_fast = speed_wrappers(cfg, G, D)
    ctx = GanContext(cfg, device, text_enc, image_enc, wrap(G_fast, info, device), D_fast, opt_g, opt_d, G_ema,
                     info=info, d_heads=d_heads_for(cfg, D_fast, info, device))

    bs = images_per_loader_batch(cfg)  # global batch
    if len(train_ds) < bs:
        raise ValueError(f"train.batch_size needs {bs} images per batch but the train split has {len(train_ds)}")
    if bs % info.world_size:
        raise ConfigError(f"{bs} images per global batch cannot be split over {info.world_size} processes; "
                          f"choose train.batch_size so that it is a multiple of {info.world_size}")
    steps_per_epoch = len(train_ds) // bs
    total_steps = t.max_steps if t.max_steps > 0 else t.epochs * steps_per_epoch
    ckpt_dir = run_dir / "checkpoints"
    step, skipped = 0, 0
    latest = ck.load_latest(ckpt_dir, expect={"kind": "gan", "config_hash": cfg.hash}) if resume else None
    if latest is not None:
        G.load_state_dict(latest["state"]["G"])
        D.load_state_dict(latest["state"]["D"])
        if latest.get("optim") is not None:
            opt_g.load_state_dict(latest["optim"]["G"])
            opt_d.load_state_dict(latest["optim"]["D"])
        elif latest["step"] < total_steps:  # only the final checkpoint is saved without optimizer state
            raise ck.CheckpointError(f"checkpoint of {cfg.run_id} at step {latest['step']} has no optimizer state "
                                     f"but the run has {total_steps} steps: it cannot be resumed")
        if G_ema is not None:
            G_ema.load_state_dict(latest["state"]["G_ema"])
        ck.set_rng_state(latest["rng"])
        step, skipped = latest["step"], latest.get("skipped_steps", 0)
        log.info("resuming %s from step %d", cfg.run_id, step)
    stats_path = run_dir / "stats.jsonl"
    if main and step == 0 and stats_path.exists():
        stats_path.unlink()
    elif main and stats_path.exists():  # drop records written after the checkpoint we resume from
        keep = [l for l in stats_path.read_text().splitlines() if l and json.loads(l)["step"] <= step]
        stats_path.write_text("".join(k + "\n" for k in keep))
    fixed = fixed_samples(test_ds, 16, fam.noise_dim(cfg), cfg.eval.eval_seed)
    if main:
        write_json(run_dir / "samples" / "captions.json", fixed["texts"])

    def payload(final: bool = False):
        """The checkpoint; the final one of a run carries no optimizer state (Adam's two moments are twice the
        weights, and a finished run is reused, never resumed: the step count is part of its hash)."""
        state = {"G": G.state_dict(), "D": D.state_dict()}
        if G_ema is not None:
            state["G_ema"] = G_ema.state_dict()
        return {"kind": "gan", "family": cfg.model.family, "config": cfg.to_dict(), "config_hash": cfg.hash,
                "model_kwargs": model_kwargs, "state": state,
                "optim": None if final else {"G": opt_g.state_dict(), "D": opt_d.state_dict()},
                "rng": ck.rng_state(),
                "vocab_hash": train_ds.vocab.hash, "damsm": enc_meta, "skipped_steps": skipped}

    sums: dict[str, torch.Tensor] = {}
    n_in_tick, t_tick, t0 = 0, time.time(), time.time()
    pbar = bar(range(step, total_steps), enabled=prog, desc=cfg.run_id, initial=step, total=total_steps)
    it = iter(pbar) if not isinstance(pbar, range) else iter(pbar)
    loader_iter, cur_epoch = None, -1
    G.train()
    D.train()
    while step < total_steps:
        epoch, pos = divmod(step, steps_per_epoch)
        if epoch != cur_epoch:
            train_ds.set_epoch(epoch)
            sampler = EpochSampler(len(train_ds), cfg.run.seed, epoch, start=pos * bs, batch_size=bs, info=info)
            loader = torch.utils.data.DataLoader(train_ds, batch_size=bs // info.world_size, sampler=sampler,
                                                 drop_last=True,
                                                 num_workers=d.num_workers, pin_memory=device.type == "cuda")
            loader_iter, cur_epoch = iter(loader), epoch
        batch = next(loader_iter)
        if t.channels_last:
            batch["images"] = [x.contiguous(memory_format=torch.channels_last) for x in batch["images"]]
        terms = mean_over_ranks(fam.step(ctx, batch, step), info)  # every rank sees the same logged values
        if t.finite_check == "log":  # no host sync here: the sums are checked when they are logged
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n_in_tick += 1
        elif not bool(torch.isfinite(torch.stack([v.detach().float().sum() for v in terms.values()])).all()):
            bad = [k for k, v in terms.items() if not torch.isfinite(v).all()]  # one host sync per step
            msg = f"non-finite loss {', '.join(bad)} at step {step} of {cfg.run_id}"
            if not t.skip_nonfinite:
                raise NonFiniteLossError(msg + " (last good checkpoint kept; set train.skip_nonfinite to skip)")
            skipped += 1
            log.warning("%s: skipped (%d so far)", msg, skipped)
        else:
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n_in_tick += 1
        if G_ema is not None:
            update_ema(G_ema, G, t.ema_decay)
        step += 1
        next(it, None)
        if step % t.log_every == 0 or step == total_steps:
            rec = {"step": step, "epoch": epoch, "seconds": time.time() - t_tick, "skipped_steps": skipped,
                   **{k: float(v) / max(n_in_tick, 1) for k, v in sums.items()}}
            bad = [k for k in sums if not math.isfinite(rec[k])]
            if bad:  # finite_check "log": the interval's steps are named, not the step
                raise NonFiniteLossError(f"non-finite loss {', '.join(bad)} between steps {step - n_in_tick + 1} "
                                         f"and {step} of {cfg.run_id} (last good checkpoint kept; "
                                         "train.finite_check='step' names the step)")
            if main:
                with open(stats_path, "a") as fh:
                    fh.write(json.dumps(rec, sort_keys=True) + "\n")
            sums, n_in_tick, t_tick = {}, 0, time.time()
            if hasattr(pbar, "set_postfix"):
                pbar.set_postfix(d=f"{rec.get('d_total', 0):.3f}", g=f"{rec.get('g_total', 0):.3f}")
        if main and (step % t.sample_every == 0 or step == total_steps):
            sample_grid(G_ema if G_ema is not None else G, fam.sampler(cfg, figures=True), text_enc, fixed, device,
                        run_dir / "samples" / f"fakes_{step:06d}.png")
        if main and (step % t.ckpt_every == 0 or step == total_steps):
            ck.save(ckpt_dir, step, payload(final=step == total_steps), keep_last=t.keep_checkpoints)
    if hasattr(pbar, "close"):
        pbar.close()
    barrier(info)
    if not main:
        return broadcast(None, info)

    history = [json.loads(l) for l in stats_path.read_text().splitlines() if l] if stats_path.exists() else []
    final_grid = run_dir / "samples" / f"fakes_{total_steps:06d}.png"
    summary = {"run_id": cfg.run_id, "config_hash": cfg.hash, "lib_version": __version__, "seed": cfg.run.seed,
               "family": cfg.model.family, "losses": t.losses.as_dict(), "f2f_pairing": t.f2f_pairing,
               "pair_noise": t.pair_noise, "caption_sets": t.caption_sets, "adam": t.adam,
               "figure_truncation_psi": cfg.model.figure_truncation_psi, "steps": total_steps, "steps_per_epoch": steps_per_epoch,
               "images_per_step": bs * n_caps, "skipped_steps": skipped, "damsm": enc_meta,
               "dataset": str(dataset_root), "device": str(device), "wall_seconds": time.time() - t0,
               "final": history[-1] if history else {}, "checkpoint": str(ckpt_dir / f"ckpt_{total_steps:06d}.pt"),
               "sample_grid": str(final_grid), "stats": str(stats_path), "summary_file": str(summary_path),
               "world_size": info.world_size}
    write_json(summary_path, summary)
    return broadcast(summary, info)


def load_generator(path: str | Path, device, use_ema: bool = True) -> tuple[nn.Module, dict]:
    """The generator (EMA weights when present and ``use_ema``) of a GAN checkpoint, in eval mode."""
    from . import checkpoint as ck

    c = ck.load(path, expect={"kind": "gan"})
    fam = get_family(c["family"])
    from ..config import from_dict

    cfg = from_dict(c["config"])
    modules, _ = fam.build(cfg)
    G = modules["G"]
    key = "G_ema" if use_ema and "G_ema" in c["state"] else "G"
    G.load_state_dict(c["state"][key])
    G.to(device).eval()
    return G, {"config": cfg, "weights": key, "step": c["step"], "family": c["family"]}
