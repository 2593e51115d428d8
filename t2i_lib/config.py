"""Configuration: frozen dataclasses, named experiments, profiles as deltas, strict overrides, hashing.

A resolved :class:`Config` is built in three layers, each a nested dict of deltas over the typed defaults::

    Config()  <-  EXPERIMENTS[name]  <-  PROFILES[profile]  <-  overrides (notebook / CLI)

Every key is checked: an unknown key, a value of the wrong type or an incompatible combination raises
:class:`ConfigError` naming the key and the allowed values.  Overrides are nested dicts
(``{"train": {"batch_size": 8}}``) or dotted keys (``{"train.batch_size": 8}``); on the command line
``--set train.batch_size=8`` (values parsed as JSON, else taken as strings).

The resolved config is saved as JSON next to every output (:func:`save_config`); its hash
(:func:`config_hash`, over everything that can change a result) is part of the run id
``<experiment>-<profile>-s<seed>-<hash[:8]>``.
"""

from __future__ import annotations

import copy
import json
import os
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from . import __version__
from .utils.io import canonical_json, read_json, sha256_hex, write_json


class ConfigError(ValueError):
    """An unknown key, a wrong type or an incompatible combination of settings."""


# ------------------------------------------------------------------------------------------------------------
# Typed defaults
# ------------------------------------------------------------------------------------------------------------
DATASETS = ("caption-shapes", "caption-scenes", "cub", "coco", "flowers", "flickr30k")
SYNTHETIC_DATASETS = ("caption-shapes", "caption-scenes")   # generated from a seed (t2i_lib.data.prepare)
FAMILIES = ("ssagan", "style_attngan", "attngan")
VARIANTS = ("baseline", "f2r", "f2f", "both")
PROFILE_NAMES = ("smoke", "demo", "paper")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "caption-shapes"      # caption-shapes | caption-scenes | cub | coco | flowers | flickr30k
    root: str = ""                       # canonical dataset dir; "" = derived (see t2i_lib.data.prepare)
    source_dir: str = ""                 # raw AttnGAN-layout dir for cub/coco; "" = $T2I_DATA_DIR/{birds,coco}
    n_images: int = 2000                 # synthetic (caption-shapes/-scenes) only: images generated (train + test)
    generator_seed: int = 0              # synthetic only: seed of the generator (not the run seed)
    n_captions: int = 10                 # synthetic: captions per image; cub 10 / coco 5 kept at prepare
    test_fraction: float = 0.2           # synthetic only
    image_size: int = 64                 # final training resolution: 64 | 128 | 256 (32: the CPU demo)
    stored_size: int = 0                 # size images are stored at; 0 = image_size (synthetic), 304 (photos)
    max_words: int = 18                  # fixed caption length (reference TEXT.WORDS_NUM)
    long_caption_mode: str = "subsample"  # subsample (reference) | truncate
    random_crop: bool = False            # reference augmentation: resize x76/64, random crop
    random_flip: bool = False            # horizontal flip (photographs only: flips left/right semantics)
    on_bad_image: str = "raise"          # raise | skip (skip-and-count)
    num_workers: int = 0                 # DataLoader workers (does not change results)


@dataclass(frozen=True)
class DamsmConfig:
    backbone: str = "small"              # small (CNN for smoke/demo) | inception (reference Inception-v3)
    inception_weights: str = "random"    # random | fid-helper (offline TF-2015 substitute) | path to a .pth
    embedding_dim: int = 256             # joint text/image space (reference 256)
    word_dim: int = 300                  # word embedding size (reference 300)
    text_dropout: float = 0.5            # dropout on word embeddings (reference 0.5)
    small_width: int = 32                # channels of the small CNN backbone
    gamma1: float = 4.0                  # attention sharpness over regions (pretraining yml 4.0)
    gamma2: float = 5.0                  # aggregation over words
    gamma3: float = 10.0                 # logit scale
    paper_gamma2_factor: bool = False    # True: apply the paper's 1/gamma2 (the reference code omits it)
    contrastive: bool = False            # DAMSM+CL: two captions per image + NT-Xent between sentence embeddings
    contrastive_tau: float = 0.5
    epochs: int = 600
    batch_size: int = 48
    lr: float = 0.002
    lr_decay: float = 0.98               # per epoch, while lr > lr_floor
    lr_floor: float = 0.0002
    grad_clip: float = 0.25              # text-encoder gradient norm clip
    ckpt_every: int = 50                 # epochs
    encoder_path: str = ""               # use an existing DAMSM checkpoint instead of pretraining
    seed: int = 0                        # seed of the pretraining run (one DAMSM shared by all GAN runs)
    val_fraction: float = 0.1            # validation split carved from train (every 1/f-th, by class; seeded):
    #                                      DAMSM checkpoint selection. 0 = select on the test split (old protocol)


@dataclass(frozen=True)
class ModelConfig:
    family: str = "ssagan"               # ssagan | style_attngan | attngan
    z_dim: int = 100                     # noise size
    ngf: int = 64                        # generator width
    ndf: int = 64                        # discriminator width
    ca_dim: int = 100                    # conditioning-augmentation code (AttnGAN family)
    w_dim: int = 100                     # style-AttnGAN W size
    mapping_layers: int = 8              # style-AttnGAN mapping network depth
    mapping_lr_mult: float = 0.01        # style-AttnGAN mapping lr multiplier
    r_num: int = 2                       # AttnGAN residual blocks per stage
    style_mixing: float = 0.9            # style-AttnGAN mixing probability
    truncation_psi: float = 1.0          # style-AttnGAN truncation of evaluation samples (1 = none; metrics)
    figure_truncation_psi: float = 1.0   # style-AttnGAN truncation of sample grids and figures (reference eval: 0.4)
    widths: str = "reference"            # SSA-GAN channel schedule: reference (256-px widths) | relative (small images)
    mask_hidden: int = 100               # SSA-GAN mask-predictor hidden channels (reference 100)
    cond_hidden: int = 256               # SSA-GAN SA-BN MLP width (reference 256)
    d_gate_init: float = 0.0             # SSA-GAN: initial value of the discriminator blocks' residual gates
    #                                      (reference 0: D starts affine in its image; docs/method.md)


@dataclass(frozen=True)
class LossWeights:
    damsm: float = 0.05                  # DAMSM term in the G loss (SSA-GAN 0.05; AttnGAN lambda 5 / 50)
    f2f: float = 0.0                     # fake-to-fake NT-Xent weight (paper/T2I_CL 0.2)
    f2r: float = 0.0                     # fake-to-real NT-Xent weight (UNVERIFIED; 0.2 as starting point)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 600
    max_steps: int = 0                   # > 0 stops after this many steps (overrides epochs)
    batch_size: int = 24
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    losses: LossWeights = field(default_factory=LossWeights)
    damsm_gamma1: float = 5.0            # gamma1 of the G-stage DAMSM term (SSA-GAN 5; AttnGAN families 4)
    f2f_tau: float = 0.5
    f2r_tau: float = 0.5
    caption_sets: str = "paired"         # paired: every arm trains on 2 captions per image (controlled ablation) |
    #                                      auto: 2 only when f2f > 0 (the reference's single-caption baseline)
    f2f_pairing: str = "duplicate"       # duplicate (B images x 2 captions, 2B fakes) | split (B/2 x 2 captions)
    pair_noise: str = "independent"      # independent (own z per fake; reference after un-permuting) |
    #                                      per_image (both fakes of an image share z) | per_position (reference rows)
    adam: str = "default"                # default | foreach | fused (same update, fewer kernel launches)
    adam_eps: float = 1e-8               # Adam's epsilon for G and D (PyTorch's default; >> |grad| makes the update
    #                                      linear in the gradient, as the DDP parity test needs)
    magp_weight: float = 2.0             # MA-GP k (SSA-GAN/DF-GAN)
    magp_power: float = 6.0              # MA-GP p
    magp_every: int = 1                  # MA-GP on every k-th step only, weighted k (lazy regularisation, as
    #                                      StyleGAN2's lazy R1); 1 = SSA-GAN's algorithm, every step
    attribute_negatives: bool = False    # SSA-GAN on caption-shapes: D's mismatched pairs also pair each real image
    #                                      with a caption wrong in exactly one attribute (docs/method.md)
    ema: bool = False
    ema_decay: float = 0.999
    ckpt_every: int = 1000               # steps
    keep_checkpoints: int = 3            # newest checkpoints kept on disk (0 = all, e.g. for a learning curve)
    sample_every: int = 500              # steps
    log_every: int = 50                  # steps
    skip_nonfinite: bool = False         # skip-and-count a step with a non-finite loss instead of stopping
    finite_check: str = "step"           # step (one host sync per step, names the step) | log (checked at logging)
    precision: str = "fp32"              # fp32 | bf16 (autocast of the forward passes; fp32 weights and Adam state)
    channels_last: bool = False          # G, D and images in channels-last memory format
    compile: bool = False                # torch.compile G (and D where no MA-GP double backward runs through it)


@dataclass(frozen=True)
class EvalConfig:
    n_samples: int = 30000               # generated images for FID/KID/R-precision
    batch_size: int = 50                 # does not change results (noise drawn per sample index)
    eval_seed: int = 1234                # noise seed of sample i = eval_seed + i
    fid_weights: str = "auto"            # auto | path | fid-helper
    kid_subset_size: int = 1000
    r_precision_candidates: int = 100    # 1 true + 99 mismatched captions
    r_precision_folds: int = 10
    r_precision_off_by_one: bool = False  # reference uses 2,999 of each 3,000 fold
    consistency_captions: int = 2        # sibling captions per test image for semantic consistency
    consistency_images: int = 200        # test images (groups) in the semantic-consistency measurement
    feature_extractor: str = "inception-v3-compat"  # FID/KID features (torch-fidelity name; t2i-tiny for tests)
    inception_fused: bool = True         # the FID Inception with batch norms folded, channels-last (same features
    #                                      to ~1e-5, 1.6x faster on CPU); False = torch-fidelity's module as shipped
    attribute_epochs: int = 5            # training epochs of the attribute classifier (caption-shapes)
    save_png: bool = False               # write samples as PNG (else stream to the metrics)
    # The judge: a second DAMSM (the evaluation encoder), pretrained like the training one but with its own seed,
    # scores R-precision and the consistency gap; the training encoder's numbers are kept as the paper's protocol.
    # eval.* is outside a GAN run's hash, so the judge never changes GAN run ids (only the metrics' eval hash).
    judge: bool = True                   # False: no evaluation encoder (the *_judge metrics are None)
    judge_seed: int = 1                  # damsm seed of the judge (must differ from damsm.seed)
    judge_kind: str = "same"             # same (as the training encoder) | damsm | damsm_cl
    judge_encoder_path: str = ""         # use an existing checkpoint as the judge instead of pretraining one
    consistency_bootstrap: int = 1000    # bootstrap resamples (over groups) of the consistency gap's 95 % CI


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    progress: str = "auto"               # auto | off
    threads: int = 0                     # torch intra-op threads; 0 = torch's default (all cores)
    results_dir: str = ""                # "" = results/<profile>


@dataclass(frozen=True)
class Config:
    experiment: str = "ssagan_baseline"
    profile: str = "smoke"
    data: DataConfig = field(default_factory=DataConfig)
    damsm: DamsmConfig = field(default_factory=DamsmConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hash(self) -> str:
        return config_hash(self)

    @property
    def run_id(self) -> str:
        return f"{self.experiment}-{self.profile}-s{self.run.seed}-{self.hash[:8]}"

    @property
    def captions_per_sample(self) -> int:
        """Two captions per image in every arm (``train.caption_sets="paired"``) or when fake-to-fake is on."""
        return 2 if self.train.caption_sets == "paired" or self.train.losses.f2f > 0 else 1


# ------------------------------------------------------------------------------------------------------------
# Experiments and profiles (deltas)
# ------------------------------------------------------------------------------------------------------------
_VARIANT_LOSSES = {"baseline": {}, "f2r": {"f2r": 0.2}, "f2f": {"f2f": 0.2}, "both": {"f2f": 0.2, "f2r": 0.2}}
# The four study arms train on the same two-caption batches (train.caption_sets="paired"), so they differ only in
# the contrastive weights.  "baseline1cap" is the reference's baseline (one caption per image, as the published
# baselines were trained), kept as its own named arm for reproducing published numbers.
_VARIANT_EXTRA = {"baseline1cap": {"train": {"caption_sets": "auto"}}}
VARIANT_LOSSES = {**_VARIANT_LOSSES, "baseline1cap": {}}
_FAMILY_DELTAS: dict[str, dict] = {
    # SSA-GAN (docs/method.md#training-schedules): hinge + MA-GP, Adam 1e-4/4e-4 (0, 0.9), batch 24, DAMSM 0.05, no EMA.
    "ssagan": {"model": {"family": "ssagan", "ngf": 64, "ndf": 64},
               "train": {"batch_size": 24, "lr_g": 1e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.9,
                         "losses": {"damsm": 0.05}, "ema": False}},
    # Style-AttnGAN (docs/method.md#attngan-with-style-blocks): GF/DF 32, lr 0.002 (0.5, 0.999), batch 10, lambda 5 (CUB), EMA 0.999.
    "style_attngan": {"model": {"family": "style_attngan", "ngf": 32, "ndf": 32, "r_num": 2},
                      "train": {"batch_size": 10, "lr_g": 0.002, "lr_d": 0.002, "beta1": 0.5, "beta2": 0.999,
                                "losses": {"damsm": 5.0}, "ema": True, "ema_decay": 0.999, "damsm_gamma1": 4.0}},
    # AttnGAN (docs/method.md#attngan): GF/DF 32/64, lr 2e-4 (0.5, 0.999), batch 20, lambda 5 (CUB), EMA 0.999.
    "attngan": {"model": {"family": "attngan", "ngf": 32, "ndf": 64, "r_num": 2},
                "train": {"batch_size": 20, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999,
                          "losses": {"damsm": 5.0}, "ema": True, "ema_decay": 0.999, "damsm_gamma1": 4.0}},
}


def _build_experiments() -> dict[str, dict]:
    exps: dict[str, dict] = {"damsm": {}, "damsm_cl": {"damsm": {"contrastive": True}}}
    for fam, fdelta in _FAMILY_DELTAS.items():
        for var, losses in VARIANT_LOSSES.items():
            d = _merge(_merge(fdelta, {"train": {"losses": losses}}), _VARIANT_EXTRA.get(var, {}))
            exps[f"{fam}_{var}"] = d
            exps[f"{fam}_{var}_cub"] = _merge(d, {"data": {"dataset": "cub"}})
            coco = {"data": {"dataset": "coco", "n_captions": 5}, "train": {"epochs": 120}}  # docs/method.md#training-schedules
            if fam != "ssagan":  # AttnGAN lineage on COCO: lambda 50 (docs/method.md#damsm-in-gan-training)
                coco["train"]["losses"] = {"damsm": 50.0}
            exps[f"{fam}_{var}_coco"] = _merge(d, coco)
            # Oxford-102 flowers: no published setting for these families; same as CUB (single object, 10 captions).
            exps[f"{fam}_{var}_flowers"] = _merge(d, {"data": {"dataset": "flowers"}})
            # Flickr30k (Karpathy split): no published setting for these families; same as COCO (natural scenes,
            # 5 captions per image).
            exps[f"{fam}_{var}_flickr30k"] = _merge(d, _merge(coco, {"data": {"dataset": "flickr30k"}}))
    return exps


PROFILES: dict[str, dict] = {
    # Offline, CPU, minutes: the real pipeline at toy size, deterministic.
    "smoke": {
        "data": {"dataset": "caption-shapes", "n_images": 240, "image_size": 64},
        "damsm": {"backbone": "small", "small_width": 16, "epochs": 2, "batch_size": 16, "ckpt_every": 1},
        "model": {"ngf": 8, "ndf": 8, "z_dim": 32, "w_dim": 32, "ca_dim": 32, "mapping_layers": 2, "r_num": 1},
        "train": {"epochs": 1, "max_steps": 6, "batch_size": 8, "ckpt_every": 3, "sample_every": 3,
                  "log_every": 1, "keep_checkpoints": 1},
        "eval": {"n_samples": 48, "batch_size": 24, "kid_subset_size": 24, "r_precision_candidates": 10,
                 "r_precision_folds": 2, "consistency_images": 8, "attribute_epochs": 2},
        "run": {"deterministic": True, "device": "cpu"},
    },
    # Synthetic and sized for 2 CPU cores: 32 px, the same blocks and losses with a demo-scale channel schedule
    # (model.widths="relative": channels shrink with the image instead of keeping the 256-px network's), one
    # thread per run so that two runs share the two cores, and a step count chosen from the learning curves in
    # results/demo/learning_curve/ (benchmarks/profile_train_step.py shows where the step's time goes).  The four
    # arms of a family train on the same two-caption batches (8 images x 2 captions) and the same noise.
    "demo": {
        "data": {"dataset": "caption-shapes", "n_images": 12000, "image_size": 32},
        "damsm": {"backbone": "small", "small_width": 32, "epochs": 10, "batch_size": 48, "ckpt_every": 5,
                  "contrastive": True},
        "model": {"ngf": 16, "ndf": 16, "z_dim": 64, "w_dim": 64, "ca_dim": 64, "mapping_layers": 4, "r_num": 1,
                  "widths": "relative", "mask_hidden": 32, "cond_hidden": 64},
        "train": {"epochs": 1, "max_steps": 3000, "batch_size": 16, "f2f_pairing": "split", "adam": "foreach",
                  "ckpt_every": 500, "sample_every": 500, "log_every": 25},
        "eval": {"n_samples": 400, "batch_size": 100, "kid_subset_size": 200, "consistency_images": 60},
        "run": {"threads": 1},
    },
    # The reproduction: real CUB/COCO, 256 px, paper widths and schedules, GPU(s).
    "paper": {
        "data": {"dataset": "cub", "image_size": 256, "stored_size": 304, "random_crop": True,
                 "random_flip": True, "num_workers": 4},
        "damsm": {"backbone": "inception", "inception_weights": "fid-helper", "contrastive": True},
        "train": {"ckpt_every": 5000, "sample_every": 2000, "log_every": 100},
        "eval": {"n_samples": 30000},
    },
}

# Per-family parts of a profile (applied after the profile, before overrides).  The CPU demo trains thousands, not
# hundreds of thousands, of steps; each choice below is read off the learning curves in results/demo/learning_curve/
# (the figure's legend names every curve's settings):
# - SSA-GAN: its residual gates start at 0 and Adam moves a parameter by about the learning rate per step, so at
#   the reference 1e-4 / 4e-4 its text-conditioned branches barely open within the demo's schedule; both rates x4
#   (same ratio).  48 % attribute accuracy at 1,000 steps, 69 % at 3,000 (the curve).  The screen of all 12
#   SSA-GAN study runs of the earlier 3,000-step schedule (learning_curve/screen-ssagan-steps.json) shows the
#   plateau: mean 65.1 % at 2,000 steps (lowest run 60.5 %), 66.6 % at 2,500, 67.1 % at 3,000, and the samples
#   are round blobs of the right colour at the right place: the discriminator cannot see shape.  Its residual gates
#   start at 0 (the reference) and stay near 0, which leaves its image side affine; the demo starts them at 1
#   (model.d_gate_init), adds for every real image a caption wrong in exactly one attribute to the mismatched
#   pairs (train.attribute_negatives), trains 4,000 steps, and gives SSA-GAN its own DAMSM pair trained 20 epochs
#   (damsm.epochs; ckpt_every 1 keeps each epoch for the per-epoch probe).  A 10-epoch DAMSM has not yet separated
#   shapes; one trained 30 epochs has let position fade from its sentence embeddings (docs/evaluation.md,
#   diagnostics/damsm-position/).  The curve of this schedule (learning_curve/ssagan_baseline-demo-s0-16cf3013.json,
#   the study's seed-0 baseline run): attribute accuracy 58.2 % at 2,000 steps, 70.7 % at 3,000, 74.9 % at 3,500,
#   75.8 % at 4,000; R-precision 76 / 84 / 88 / 81 %, FID 130 / 100 / 106 / 93.  4,000 steps; 1,210 s
#   of training on one core.  ndf stays 16: a discriminator of ndf 8 makes the step 1.4x faster but halves the
#   shape accuracy at 4,000 steps (28-36 % against 56-64 %; learning_curve/screen-ssagan-ndf8.json).  The two
#   AttnGAN families keep the profile's 10-epoch encoder: with the 20-epoch one their conditioning augmentation
#   drops position and the style family falls below 40 % attribute accuracy (diagnostics/attngan-ca/).
# - AttnGAN: the reference's EMA of G (0.999) averages over about the last 1,000 steps, so after a few thousand
#   steps the evaluated generator still carries the untrained one; 0.99 (about the last 100 steps) and both rates
#   x2: 37 % at 1,000 steps and 45 % at 2,000, where the reference's settings gave 24 % at 1,000 and 37 % at 3,000.
#   2,000 steps.
# - AttnGAN with style blocks: its discriminator keeps 8 ndf channels at every resolution up to 32 px, so at 32 px
#   its whole stack runs at the width the reference uses below 32 x 32; the demo quarters ndf for it (ndf 4: the
#   step is 1.5x faster and FID is lower) and uses the same EMA of 0.99.  With the reference's DAMSM weight (5) its
#   attribute accuracy stays near chance with every other setting tried (19-23 % against 18.5 %): the DAMSM term
#   outweighs the adversarial one, the discriminator wins within 300 steps and the generator draws saturated blobs
#   on black backgrounds (71-82 % of pixels beyond +-0.98; an output without tanh removes the saturation but not
#   the failure).  Without the DAMSM term the game stays balanced and position is learned (54 % by the pixel judge)
#   but colour is not (14.5 %).  DAMSM weight 0.25 keeps both: 25 % attribute accuracy at 1,000 steps, 33 % at
#   1,500 and 41.5 % at 2,000, with 3 pixels in 1,000 beyond +-0.98 (learning_curve/screen-style_attngan-s0.json
#   and the curve beside it).  Seeds 0 and 1 trained on to 3,000 steps (learning_curve/screen-style_attngan-
#   steps.json): 41.5 / 37.8 % at 2,000, 46.8 / 40.6 % at 2,500, 50.6 / 46.6 % at 3,000, still rising.  2,500
#   steps: 3,000 would not fit the study's 3 hours on two cores.  Seed 0's full curve to 3,000 steps (attribute
#   accuracy, R-precision, FID at every 500): learning_curve/style_attngan_baseline-demo-s0-937f0fab.json.
# Parts of a family delta that apply on one dataset only (after PROFILE_FAMILY_DELTAS, before the overrides): the
# demo's attribute negatives need caption-shapes' per-image attributes, so the demo's SSA-GAN on another dataset
# (``ssagan_f2f_cub``, ``--set data.dataset=caption-scenes``) trains without them.
PROFILE_FAMILY_DATASET_DELTAS: dict[str, dict[tuple[str, str], dict]] = {
    "demo": {("ssagan", "caption-shapes"): {"train": {"attribute_negatives": True}}},
}
PROFILE_FAMILY_DELTAS: dict[str, dict[str, dict]] = {
    "demo": {"ssagan": {"damsm": {"epochs": 20, "ckpt_every": 1}, "model": {"d_gate_init": 1.0},
                        "train": {"lr_g": 4e-4, "lr_d": 1.6e-3, "max_steps": 4000}},
             "attngan": {"train": {"lr_g": 4e-4, "lr_d": 4e-4, "ema_decay": 0.99, "max_steps": 2000}},
             "style_attngan": {"model": {"ndf": 4},
                               "train": {"ema_decay": 0.99, "max_steps": 2500, "losses": {"damsm": 0.25}}}},
}



# ------------------------------------------------------------------------------------------------------------
# Resolution
# ------------------------------------------------------------------------------------------------------------
def _merge(base: dict, delta: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in delta.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _undot(overrides: dict) -> dict:
    """{'train.batch_size': 8, 'data': {...}} -> nested dict."""
    out: dict = {}
    for k, v in overrides.items():
        if not isinstance(k, str) or not k:
            raise ConfigError(f"override keys must be non-empty strings, got {k!r}")
        parts = k.split(".")
        cur = out
        for p in parts[:-1]:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {k!r} conflicts with a value given for {p!r}")
            cur = nxt
        leaf = parts[-1]
        if isinstance(v, dict):
            v = _undot(v)
            if isinstance(cur.get(leaf), dict):
                v = _merge(cur[leaf], v)
        cur[leaf] = v
    return out


def _coerce(value: Any, typ: Any, key: str) -> Any:
    if is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {typ.__name__} fields, got {value!r}")
        return _apply(typ(), value, key)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {typ!r}")  # pragma: no cover


def _apply(obj: Any, delta: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in fields(obj)]
    changes = {}
    for k, v in delta.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in names:
            raise ConfigError(f"unknown config key {key!r}; allowed keys here: {', '.join(names)}")
        typ = hints[k]
        if is_dataclass(typ):
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: expected a mapping of {typ.__name__} fields, got {v!r}")
            changes[k] = _apply(getattr(obj, k), v, key)
        else:
            changes[k] = _coerce(v, typ, key)
    return replace(obj, **changes)


def _check_choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def validate(cfg: Config) -> Config:
    """Raise :class:`ConfigError` for out-of-range values and incompatible combinations."""
    d, t, m, e, r, dm = cfg.data, cfg.train, cfg.model, cfg.eval, cfg.run, cfg.damsm
    _check_choice("profile", cfg.profile, PROFILE_NAMES)
    _check_choice("data.dataset", d.dataset, DATASETS)
    _check_choice("data.image_size", d.image_size, (32, 64, 128, 256))
    _check_choice("data.long_caption_mode", d.long_caption_mode, ("subsample", "truncate"))
    _check_choice("data.on_bad_image", d.on_bad_image, ("raise", "skip"))
    _check_choice("model.family", m.family, FAMILIES)
    _check_choice("damsm.backbone", dm.backbone, ("small", "inception"))
    _check_choice("train.f2f_pairing", t.f2f_pairing, ("duplicate", "split"))
    _check_choice("train.pair_noise", t.pair_noise, ("independent", "per_image", "per_position"))
    _check_choice("train.caption_sets", t.caption_sets, ("paired", "auto"))
    _check_choice("train.adam", t.adam, ("default", "foreach", "fused"))
    _check_choice("model.widths", m.widths, ("reference", "relative"))
    if r.threads < 0:
        raise ConfigError(f"run.threads must be >= 0 (0 = torch's default), got {r.threads}")
    for k, v in {"model.mask_hidden": m.mask_hidden, "model.cond_hidden": m.cond_hidden}.items():
        if v < 1:
            raise ConfigError(f"{k} must be >= 1, got {v}")
    _check_choice("train.finite_check", t.finite_check, ("step", "log"))
    _check_choice("train.precision", t.precision, ("fp32", "bf16"))
    _check_choice("eval.judge_kind", e.judge_kind, ("same", "damsm", "damsm_cl"))
    if not 0 <= dm.val_fraction < 1:
        raise ConfigError(f"damsm.val_fraction must be in [0, 1), got {dm.val_fraction}")
    if t.skip_nonfinite and t.finite_check != "step":
        raise ConfigError("train.skip_nonfinite=True needs train.finite_check='step' (a bad step can only be "
                          "skipped when each step is checked)")
    _check_choice("run.progress", r.progress, ("auto", "off"))
    if not (r.device in ("auto", "cpu", "cuda") or (r.device.startswith("cuda:") and r.device[5:].isdigit())):
        raise ConfigError(f"run.device={r.device!r} is not allowed; use auto, cpu, cuda or cuda:N")
    positive = {"data.max_words": d.max_words, "data.n_images": d.n_images, "data.n_captions": d.n_captions,
                "train.batch_size": t.batch_size, "train.epochs": t.epochs, "damsm.batch_size": dm.batch_size,
                "damsm.epochs": dm.epochs, "eval.n_samples": e.n_samples, "eval.batch_size": e.batch_size,
                "model.ngf": m.ngf, "model.ndf": m.ndf, "model.z_dim": m.z_dim, "damsm.embedding_dim":
                dm.embedding_dim, "eval.r_precision_candidates": e.r_precision_candidates,
                "eval.r_precision_folds": e.r_precision_folds, "model.mapping_layers": m.mapping_layers,
                "train.magp_every": t.magp_every}
    for k, v in positive.items():
        if v < 1:
            raise ConfigError(f"{k} must be >= 1, got {v}")
    for k, v in {"data.num_workers": d.num_workers, "train.max_steps": t.max_steps,
                 "train.keep_checkpoints": t.keep_checkpoints,
                 "data.stored_size": d.stored_size}.items():
        if v < 0:
            raise ConfigError(f"{k} must be >= 0, got {v}")
    for name, w in t.losses.as_dict().items():
        if w < 0:
            raise ConfigError(f"train.losses.{name} must be >= 0, got {w}")
    for k, v in {"train.f2f_tau": t.f2f_tau, "train.f2r_tau": t.f2r_tau, "train.adam_eps": t.adam_eps,
                 "damsm.contrastive_tau": dm.contrastive_tau}.items():
        if v <= 0:
            raise ConfigError(f"{k} must be > 0, got {v}")
    if not 0 <= d.test_fraction < 1:
        raise ConfigError(f"data.test_fraction must be in [0, 1), got {d.test_fraction}")
    if not 0 < t.ema_decay < 1:
        raise ConfigError(f"train.ema_decay must be in (0, 1), got {t.ema_decay}")
    for k, v in {"model.truncation_psi": m.truncation_psi, "model.figure_truncation_psi": m.figure_truncation_psi}.items():
        if not 0 <= v <= 1:
            raise ConfigError(f"{k} must be in [0, 1], got {v}")
    # Incompatible combinations.
    if cfg.profile == "paper" and d.dataset in SYNTHETIC_DATASETS:
        raise ConfigError("profile 'paper' reproduces CUB/COCO: set data.dataset to 'cub' or 'coco' "
                          f"(use profiles smoke/demo for the synthetic dataset {d.dataset!r})")
    if d.dataset in SYNTHETIC_DATASETS and d.random_flip:
        raise ConfigError(f"data.random_flip=True with data.dataset={d.dataset!r}: flipping swaps left/right, so "
                          "images would contradict their captions' positions and relations; keep random_flip=False")
    if cfg.captions_per_sample == 2 and t.f2f_pairing == "split" and t.batch_size % 2:
        raise ConfigError(f"train.f2f_pairing='split' needs an even train.batch_size (B/2 images x 2 captions), "
                          f"got {t.batch_size}")
    if t.batch_size < 2 and (t.losses.f2f > 0 or t.losses.f2r > 0):
        raise ConfigError("contrastive losses need train.batch_size >= 2 (negatives come from the batch)")
    if d.stored_size and d.stored_size < d.image_size:
        raise ConfigError(f"data.stored_size={d.stored_size} is smaller than data.image_size={d.image_size}")
    if m.family in ("attngan", "style_attngan") and m.ngf % 2:
        raise ConfigError(f"model.ngf must be even for {m.family} (GLU halves channels), got {m.ngf}")
    if e.r_precision_candidates < 2:
        raise ConfigError("eval.r_precision_candidates must be >= 2 (1 true + mismatched)")
    if t.attribute_negatives and (m.family != "ssagan" or d.dataset != "caption-shapes"):
        raise ConfigError("train.attribute_negatives=True is implemented for model.family='ssagan' on "
                          f"data.dataset='caption-shapes' (it needs per-image attributes), got {m.family!r} on "
                          f"{d.dataset!r}")
    if m.d_gate_init != 0.0 and m.family != "ssagan":
        raise ConfigError(f"model.d_gate_init is SSA-GAN's discriminator gate, not {m.family!r}'s; leave it at 0")
    return cfg


def resolve(experiment: str = "ssagan_baseline", profile: str = "smoke", overrides: dict | None = None,
            seed: int | None = None) -> Config:
    """The experiment's config under ``profile`` with ``overrides``; ``seed`` sets ``run.seed``."""
    if experiment not in EXPERIMENTS:
        close = [n for n in EXPERIMENTS if n.split("_")[0] == experiment.split("_")[0]][:12]
        raise ConfigError(f"unknown experiment {experiment!r}; e.g. {', '.join(close or list(EXPERIMENTS)[:12])} "
                          f"(all: t2i_lib.config.EXPERIMENTS)")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    overrides = _undot(dict(overrides or {}))
    for k in ("experiment", "profile"):
        if k in overrides:
            raise ConfigError(f"{k!r} cannot be overridden; pass it as an argument")
    prof = PROFILES[profile]
    fam = EXPERIMENTS[experiment].get("model", {}).get("family")
    fam_delta = PROFILE_FAMILY_DELTAS.get(profile, {}).get(fam, {})
    # The experiment's dataset wins over the profile's default dataset (e.g. *_coco under paper); an override wins
    # over both.
    exp_ds = EXPERIMENTS[experiment].get("data", {}).get("dataset")
    dataset = (overrides.get("data", {}).get("dataset") or exp_ds or prof.get("data", {}).get("dataset")
               or DataConfig().dataset)
    ds_delta = PROFILE_FAMILY_DATASET_DELTAS.get(profile, {}).get((fam, dataset), {})
    delta = _merge(_merge(_merge(_merge(EXPERIMENTS[experiment], prof), fam_delta), ds_delta), overrides)
    delta.setdefault("data", {})["dataset"] = dataset
    if seed is not None:
        delta = _merge(delta, {"run": {"seed": int(seed)}})
    cfg = _apply(Config(experiment=experiment, profile=profile), delta)
    return validate(cfg)


EXPERIMENTS: dict[str, dict] = _build_experiments()


def run_ids(experiments, profile: str, seeds=(0,), overrides: dict | None = None) -> list[str]:
    """The run ids of ``experiments`` x ``seeds`` under ``profile`` (what a notebook's tables should read)."""
    return [resolve(e, profile, overrides, seed=s).run_id for s in seeds for e in experiments]


def from_dict(d: dict) -> Config:
    """Rebuild a Config from :meth:`Config.to_dict` output (e.g. a checkpoint's or config.json's), strictly."""
    d = copy.deepcopy(d)
    exp, prof = d.pop("experiment", "ssagan_baseline"), d.pop("profile", "smoke")
    return validate(_apply(Config(experiment=exp, profile=prof), d))


# Keys that cannot change a result: left out of the hash so e.g. moving to a GPU keeps the run id.
# How often a run saves checkpoints and sample grids does not change its weights (sampling uses fixed noise and no
# global RNG; resuming is exact, tested), so a learning curve's run (every checkpoint kept) is the study's run.
NON_SEMANTIC_KEYS = ("run.device", "run.progress", "run.results_dir", "run.threads", "data.num_workers",
                     "eval.batch_size", "train.keep_checkpoints", "train.ckpt_every", "train.sample_every")
# What a run's product depends on, per kind of run.  A DAMSM run reads data/damsm/run and the R-precision protocol
# it validates with; a GAN run reads everything but the evaluation protocol (metrics carry their own eval hash),
# except the seed of its fixed-noise sample grids.  So changing e.g. demo's GAN epochs keeps the pretrained DAMSM,
# and changing eval.n_samples re-evaluates without retraining.
# Fields added after runs were committed: hashed only when they differ from the value given here (the behaviour
# before they existed), so every earlier run keeps its id.
HASHED_WHEN_SET = {"train.attribute_negatives": False, "model.d_gate_init": 0.0, "train.adam_eps": 1e-8,
                   "train.magp_every": 1}
DAMSM_EVAL_KEYS = ("r_precision_candidates", "r_precision_folds", "eval_seed")
GAN_EVAL_KEYS = ("eval_seed",)


def config_hash(cfg: Config) -> str:
    d = cfg.to_dict()
    for key in NON_SEMANTIC_KEYS:
        sect, name = key.split(".")
        d[sect].pop(name, None)
    for key, old in HASHED_WHEN_SET.items():
        sect, name = key.split(".")
        if d[sect].get(name) == old:
            d[sect].pop(name, None)
    if cfg.experiment in ("damsm", "damsm_cl"):
        d = {"experiment": d["experiment"], "profile": d["profile"], "data": d["data"], "damsm": d["damsm"],
             "run": d["run"], "eval": {k: d["eval"][k] for k in DAMSM_EVAL_KEYS}}
    else:
        d["eval"] = {k: d["eval"][k] for k in GAN_EVAL_KEYS}
    return sha256_hex(canonical_json(d))


def save_config(cfg: Config, run_dir: str | os.PathLike, force: bool = False) -> Path:
    """Write ``run_dir/config.json``; refuse to overwrite a *different* config's directory unless ``force``."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if path.exists() and not force:
        old = read_json(path)
        if old.get("hash") != cfg.hash:
            raise ConfigError(f"{run_dir} holds a run of a different config (hash {old.get('hash', '?')[:8]} vs "
                              f"{cfg.hash[:8]}); pass force=True (--force) to overwrite it")
    from .utils.env import environment

    write_json(path, {"run_id": cfg.run_id, "hash": cfg.hash, "lib_version": __version__, "config": cfg.to_dict(),
                      "environment": environment()})
    return path


def load_config(path: str | os.PathLike) -> Config:
    rec = read_json(path)
    return from_dict(rec["config"] if "config" in rec else rec)


def parse_cli_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.batch_size=8", "data.dataset=cub"]`` -> {"train.batch_size": 8, "data.dataset": "cub"}."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def describe(cfg: Config) -> str:
    """A short multi-line summary for notebooks and logs."""
    d = cfg.data
    return (f"run_id       {cfg.run_id}\n"
            f"dataset      {d.dataset} ({d.image_size}px, max_words={d.max_words}, {d.long_caption_mode})\n"
            f"model        {cfg.model.family} (ngf={cfg.model.ngf}, ndf={cfg.model.ndf})\n"
            f"losses       {cfg.train.losses.as_dict()}\n"
            f"train        batch={cfg.train.batch_size} epochs={cfg.train.epochs} max_steps={cfg.train.max_steps}\n"
            f"run          seed={cfg.run.seed} device={cfg.run.device} deterministic={cfg.run.deterministic}")
