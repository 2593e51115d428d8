import json

import pytest

from t2i_lib import config as C


@pytest.mark.parametrize("profile", C.PROFILE_NAMES)
def test_every_experiment_resolves_under_every_profile(profile):
    for name in C.EXPERIMENTS:
        cfg = C.resolve(name, profile)
        assert cfg.experiment == name and cfg.profile == profile
        assert len(cfg.hash) == 64 and cfg.run_id.startswith(f"{name}-{profile}-s0-")
        assert C.from_dict(cfg.to_dict()) == cfg  # JSON round trip
        json.dumps(cfg.to_dict())


def test_variants_are_loss_weights_as_data():
    assert C.resolve("ssagan_baseline").train.losses.as_dict() == {"damsm": 0.05, "f2f": 0.0, "f2r": 0.0}
    assert C.resolve("ssagan_f2f").train.losses.f2f == 0.2
    assert C.resolve("ssagan_f2r").train.losses.as_dict() == {"damsm": 0.05, "f2f": 0.0, "f2r": 0.2}
    both = C.resolve("style_attngan_both")
    assert both.train.losses.f2f == 0.2 and both.train.losses.f2r == 0.2 and both.model.family == "style_attngan"
    # every study arm trains on two captions per image; only the reference's single-caption baseline on one
    assert all(C.resolve(f"ssagan_{v}").captions_per_sample == 2 for v in ("baseline", "f2r", "f2f", "both"))
    assert C.resolve("ssagan_baseline1cap").captions_per_sample == 1
    assert C.resolve("ssagan_f2f", overrides={"train.caption_sets": "auto"}).captions_per_sample == 2
    assert C.resolve("ssagan_f2r", overrides={"train.caption_sets": "auto"}).captions_per_sample == 1


def test_study_arms_differ_only_in_the_contrastive_weights():
    """Within a family and profile, the resolved configs of the four arms are equal once the f2f/f2r weights are
    set aside (the experiment name aside)."""
    for fam in ("ssagan", "style_attngan", "attngan"):
        for prof in ("smoke", "demo", "paper"):
            dicts = []
            for v in ("baseline", "f2r", "f2f", "both"):
                d = C.resolve(f"{fam}_{v}", prof).to_dict()
                d.pop("experiment")
                d["train"]["losses"].pop("f2f")
                d["train"]["losses"].pop("f2r")
                dicts.append(d)
            assert all(d == dicts[0] for d in dicts[1:]), (fam, prof)


def test_demo_scale_widths():
    from t2i_lib.models.ssagan import discriminator_channels, generator_channels

    assert generator_channels(256, 1, "relative") == generator_channels(256, 1) == [8, 8, 8, 8, 4, 2, 1]
    assert discriminator_channels(256, 1, "relative") == discriminator_channels(256, 1)
    assert generator_channels(64, 1) == [8, 8, 8, 8, 4] and generator_channels(64, 1, "relative") == [8, 8, 4, 2, 1]
    assert generator_channels(32, 1, "relative") == [8, 4, 2, 1]
    assert discriminator_channels(32, 1, "relative") == [1, 2, 4, 8] and discriminator_channels(64, 1)[0] == 4
    with pytest.raises(C.ConfigError, match="model.widths"):
        C.resolve("ssagan_f2f", "smoke", {"model.widths": "tiny"})


def test_profiles_are_deltas():
    smoke, paper = C.resolve("ssagan_baseline", "smoke"), C.resolve("ssagan_baseline", "paper")
    assert smoke.model.ngf == 8 and smoke.run.deterministic and smoke.data.dataset == "caption-shapes"
    assert paper.model.ngf == 64 and paper.model.ndf == 64 and paper.data.image_size == 256
    assert paper.data.dataset == "cub" and paper.train.batch_size == 24 and paper.train.lr_d == 4e-4
    assert C.resolve("ssagan_baseline_coco", "paper").data.dataset == "coco"
    assert C.resolve("attngan_baseline_coco", "paper").train.losses.damsm == 50.0


def test_overrides_nested_and_dotted_and_seed():
    a = C.resolve("ssagan_f2f", "smoke", {"train.batch_size": 4, "train.losses.f2f": 0.5}, seed=3)
    b = C.resolve("ssagan_f2f", "smoke", {"train": {"batch_size": 4, "losses": {"f2f": 0.5}}}, seed=3)
    assert a == b and a.train.batch_size == 4 and a.train.losses.f2f == 0.5 and a.run.seed == 3
    assert a.hash != C.resolve("ssagan_f2f", "smoke", seed=3).hash
    assert C.resolve("ssagan_f2f", "smoke", {"train.lr_g": 1}).train.lr_g == 1.0  # int accepted for float


def test_hash_is_scoped_to_what_the_run_reads():
    damsm = C.resolve("damsm", "demo")
    # A DAMSM run does not depend on GAN training, model or evaluation settings ...
    for over in ({"train.epochs": 2}, {"model.ngf": 16}, {"eval.n_samples": 10}, {"train.losses.f2f": 0.3}):
        assert C.resolve("damsm", "demo", over).hash == damsm.hash, over
    # ... but on its data, its own settings, its seed and the R-precision protocol it validates with.
    for over in ({"damsm.epochs": 3}, {"data.n_images": 600}, {"eval.r_precision_candidates": 50}):
        assert C.resolve("damsm", "demo", over).hash != damsm.hash, over
    assert C.resolve("damsm", "demo", seed=1).hash != damsm.hash
    gan = C.resolve("ssagan_f2f", "demo")
    assert C.resolve("ssagan_f2f", "demo", {"eval.n_samples": 10, "eval.kid_subset_size": 5}).hash == gan.hash
    assert C.resolve("ssagan_f2f", "demo", {"eval.eval_seed": 7}).hash != gan.hash  # seeds the sample grids
    assert C.resolve("ssagan_f2f", "demo", {"damsm.epochs": 3}).hash != gan.hash   # another DAMSM, another run


def test_hash_ignores_non_semantic_keys_only():
    base = C.resolve("ssagan_f2f", "smoke")
    assert C.resolve("ssagan_f2f", "smoke", {"run.device": "cuda", "data.num_workers": 3}).hash == base.hash
    assert C.resolve("ssagan_f2f", "smoke", {"train.keep_checkpoints": 0, "train.ckpt_every": 1,
                                             "train.sample_every": 1, "run.threads": 1}).hash == base.hash
    assert C.resolve("ssagan_f2f", "smoke", {"train.f2f_tau": 0.1}).hash != base.hash
    assert C.resolve("ssagan_f2f", "smoke", seed=1).hash != base.hash


@pytest.mark.parametrize("kwargs, match", [
    (dict(overrides={"train.bogus": 1}), "unknown config key 'train.bogus'"),
    (dict(overrides={"bogus": {"x": 1}}), "unknown config key 'bogus'"),
    (dict(overrides={"train.batch_size": "8"}), "expected an integer"),
    (dict(overrides={"run.deterministic": 1}), "expected true/false"),
    (dict(overrides={"data.image_size": 96}), "data.image_size=96 is not allowed"),
    (dict(overrides={"data.random_flip": True}), "flipping swaps left/right"),
    (dict(overrides={"train.f2f_pairing": "split", "train.batch_size": 7}), "even train.batch_size"),
    (dict(overrides={"train.losses.f2r": -1.0}), "must be >= 0"),
    (dict(overrides={"run.device": "tpu"}), "run.device"),
    (dict(overrides={"train.losses": 0.2}), "expected a mapping"),
    (dict(overrides={"profile": "demo"}), "cannot be overridden"),
    (dict(experiment="ssgan_f2f"), "unknown experiment"),
    (dict(profile="huge"), "unknown profile"),
    (dict(profile="paper", overrides={"data.dataset": "caption-shapes"}), "profile 'paper' reproduces CUB/COCO"),
])
def test_bad_settings_are_clear_errors(kwargs, match):
    args = {"experiment": "ssagan_f2f", "profile": "smoke", **kwargs}
    with pytest.raises(C.ConfigError, match=match):
        C.resolve(**args)


def test_save_config_refuses_other_config(tmp_path):
    cfg = C.resolve("ssagan_f2f", "smoke")
    p = C.save_config(cfg, tmp_path / "run")
    rec = json.loads(p.read_text())
    assert rec["hash"] == cfg.hash and rec["run_id"] == cfg.run_id and rec["lib_version"]
    assert C.load_config(p) == cfg
    C.save_config(cfg, tmp_path / "run")  # same config: fine
    other = C.resolve("ssagan_f2f", "smoke", seed=5)
    with pytest.raises(C.ConfigError, match="different config"):
        C.save_config(other, tmp_path / "run")
    C.save_config(other, tmp_path / "run", force=True)
    assert C.load_config(p) == other


def test_cli_overrides_parse():
    assert C.parse_cli_overrides(["train.batch_size=8", "data.dataset=cub", "run.deterministic=true"]) == {
        "train.batch_size": 8, "data.dataset": "cub", "run.deterministic": True}
    with pytest.raises(C.ConfigError):
        C.parse_cli_overrides(["train.batch_size"])


def test_profile_family_deltas_apply_to_their_family_only_and_yield_to_overrides():
    assert C.resolve("ssagan_f2f", "demo").train.lr_g == 4e-4 and C.resolve("ssagan_both", "demo").train.lr_d == 1.6e-3
    assert C.resolve("ssagan_f2f", "paper").train.lr_g == 1e-4  # the reproduction keeps the reference rates
    # each family gets its own part: AttnGAN its rates x2, EMA 0.99 and 2,000 steps; the style family ndf 4 and
    # 2,500 steps; SSA-GAN 4,000 steps, its discriminator gates at 1 and its own 20-epoch DAMSM
    att, sty, ssa = (C.resolve(f"{f}_f2f", "demo") for f in ("attngan", "style_attngan", "ssagan"))
    assert (att.train.lr_g, att.train.lr_d, att.train.ema_decay, att.train.max_steps) == (4e-4, 4e-4, 0.99, 2000)
    assert (sty.train.lr_g, sty.model.ndf, sty.train.ema_decay, sty.train.max_steps) == (0.002, 4, 0.99, 2500)
    # the style family's DAMSM weight is lowered in the demo only; the contrastive weights are the experiment's
    assert (sty.train.losses.damsm, sty.train.losses.f2f, sty.train.losses.f2r) == (0.25, 0.2, 0.0)
    assert C.resolve("style_attngan_f2f", "paper").train.losses.damsm == 5.0 and att.train.losses.damsm == 5.0
    assert (ssa.model.ndf, ssa.train.max_steps, ssa.train.ema) == (16, 4000, False)
    assert (ssa.model.d_gate_init, ssa.damsm.epochs, att.model.d_gate_init, att.damsm.epochs) == (1.0, 20, 0.0, 10)
    assert C.resolve("ssagan_f2f", "paper").model.d_gate_init == 0.0  # the reproduction keeps the reference's gates
    assert C.resolve("attngan_f2f", "paper").train.ema_decay == 0.999 and C.resolve("attngan_f2f", "smoke").train.lr_g == 2e-4
    # the four arms of a family still share every setting but the contrastive weights
    for fam in ("attngan", "style_attngan", "ssagan"):
        a, b = (C.resolve(f"{fam}_{v}", "demo").to_dict() for v in ("baseline", "both"))
        la, lb = a["train"].pop("losses"), b["train"].pop("losses")
        assert la["damsm"] == lb["damsm"] and (la["f2f"], la["f2r"]) == (0.0, 0.0) and (lb["f2f"], lb["f2r"]) == (0.2, 0.2)
        a.pop("experiment"), b.pop("experiment")
        assert a == b
    assert C.resolve("ssagan_f2f", "demo", {"train.lr_g": 1e-4}).train.lr_g == 1e-4
