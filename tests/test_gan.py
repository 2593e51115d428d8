"""The shared GAN trainer with SSA-GAN: loss variants as data, pairing, gradients, artefacts, resume."""

import dataclasses
import json
import math

import pytest
import torch

from t2i_lib import config as C
from t2i_lib.train import checkpoint as ck
from t2i_lib.train import gan
from t2i_lib.train.families import ssagan as ssagan_family


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny synthetic dataset and a tiny DAMSM (one short epoch), shared by the tests of this module."""
    from t2i_lib.data.prepare import ensure_dataset
    from t2i_lib.train.damsm import damsm_config_for, pretrain_damsm

    res = tmp_path_factory.mktemp("gan")
    base = {"run.results_dir": str(res), "data.n_images": 80, "damsm.epochs": 1, "damsm.batch_size": 8,
            "damsm.small_width": 8, "damsm.embedding_dim": 32, "model.ngf": 4, "model.ndf": 4, "model.z_dim": 8,
            "train.batch_size": 4, "train.max_steps": 2, "train.log_every": 1, "train.sample_every": 2,
            "train.ckpt_every": 2}
    cfg = C.resolve("ssagan_baseline", "smoke", base)
    root = ensure_dataset(cfg)
    pretrain_damsm(damsm_config_for(cfg), torch.device("cpu"), root, max_batches=2)
    return base, root


def _cfg(setup, exp="ssagan_baseline", **over):
    base, _ = setup
    return C.resolve(exp, "smoke", {**base, **over})


@pytest.mark.parametrize("variant", ["baseline", "f2r", "f2f", "both", "baseline1cap"])
def test_each_variant_trains_and_writes_artefacts(setup, variant):
    cfg = _cfg(setup, f"ssagan_{variant}")
    s = gan.train_gan(cfg, torch.device("cpu"), setup[1])
    run = gan.run_dir_for(cfg)
    stats = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats] == [1, 2]
    want = {"baseline": set(), "f2r": {"g_f2r"}, "f2f": {"g_f2f"}, "both": {"g_f2f", "g_f2r"},
            "baseline1cap": set()}[variant]
    got = {k for k in stats[-1] if k in ("g_f2f", "g_f2r")}
    assert got == want
    assert all(math.isfinite(v) for r in stats for k, v in r.items() if isinstance(v, float))
    assert (run / "samples" / "fakes_000002.png").stat().st_size > 500
    assert (run / "checkpoints" / "ckpt_000002.pt").is_file() and (run / "summary.json").is_file()
    # every study arm trains on B images x 2 captions (duplicate pairing: 2B fakes); the reference's single-caption
    # baseline on B images x 1 caption
    assert s["images_per_step"] == (4 if variant == "baseline1cap" else 8)
    c = ck.load(s["checkpoint"], expect={"kind": "gan", "family": "ssagan", "config_hash": cfg.hash})
    assert set(c["state"]) == {"G", "D"} and c["optim"] is None  # a finished run's checkpoint: weights only
    G, meta = gan.load_generator(s["checkpoint"], "cpu")
    assert meta["weights"] == "G" and not G.training


def test_split_pairing_generates_batch_size_fakes_paired_by_image(setup, monkeypatch):
    cfg = _cfg(setup, "ssagan_f2f", **{"train.f2f_pairing": "split", "train.max_steps": 1})
    assert gan.images_per_loader_batch(cfg) == 2
    seen = []
    real_terms = gan.encoder_terms

    def spy(ctx, fakes, real, sets_emb, class_ids):
        seen.append(([f.shape[0] for f in fakes], real.shape[0], [s[1].shape[0] for s in sets_emb]))
        return real_terms(ctx, fakes, real, sets_emb, class_ids)

    monkeypatch.setattr(ssagan_family, "encoder_terms", spy)
    s = gan.train_gan(cfg, torch.device("cpu"), setup[1], force=True)
    assert seen == [([2, 2], 2, [2, 2])]  # B/2 images x 2 captions = B fakes, pair k of set 1 <-> k of set 2
    assert s["images_per_step"] == 4


def test_noise_independent_by_default_per_image_and_reference_per_position():
    lens1, lens2 = torch.tensor([3, 9, 5]), torch.tensor([9, 3, 5])
    sets = [(None, lens1), (None, lens2)]
    cfg = C.resolve("ssagan_f2f", "smoke")
    assert cfg.train.pair_noise == "independent"
    i1, i2 = gan.noise_for_sets(cfg, 3, 4, step=0, sets=sets, device="cpu")
    assert not torch.isclose(i1, i2).any()  # every fake its own z
    cfg_img = C.resolve("ssagan_f2f", "smoke", {"train.pair_noise": "per_image"})
    z1, z2 = gan.noise_for_sets(cfg_img, 3, 4, step=0, sets=sets, device="cpu")
    assert torch.equal(z1, z2)  # per image: both captions of an image share z
    assert torch.equal(z1, i1)  # the first set's noise is the same under every schedule
    cfg_ref = C.resolve("ssagan_f2f", "smoke", {"train.pair_noise": "per_position"})
    r1, r2 = gan.noise_for_sets(cfg_ref, 3, 4, step=0, sets=sets, device="cpu")
    # reference: noise row k goes with the k-th caption of each length-sorted set
    assert torch.equal(r1[1], z1[0]) and torch.equal(r1[2], z1[1]) and torch.equal(r1[0], z1[2])
    assert torch.equal(r2[0], z1[0]) and torch.equal(r2[2], z1[1]) and torch.equal(r2[1], z1[2])
    assert not torch.equal(gan.noise_for_sets(cfg, 3, 4, 1, sets, "cpu")[0], i1)  # new noise each step
    # the noise depends on (seed, step) only: the same for every arm
    for v in ("baseline", "f2r", "both"):
        a1, a2 = gan.noise_for_sets(C.resolve(f"ssagan_{v}", "smoke"), 3, 4, 0, sets, "cpu")
        assert torch.equal(a1, i1) and torch.equal(a2, i2)


def _record_steps(setup, monkeypatch, exp, **over):
    """Train 2 steps of ``exp``; return per step the batch tensors and noise it drew, and the final weights."""
    from t2i_lib.train.families import ssagan as fam_mod

    seen = []
    real_noise = fam_mod.noise_for_sets

    def noise_spy(cfg, n, z_dim, step, sets, device, info=None):
        zs = real_noise(cfg, n, z_dim, step, sets, device, info) if info else \
            real_noise(cfg, n, z_dim, step, sets, device)
        seen.append({"step": step, "z": [z.clone() for z in zs],
                     "captions": [c.clone() for c, _ in sets], "lens": [l.clone() for _, l in sets]})
        return zs

    real = gan.FAMILIES["ssagan"]

    def step_spy(ctx, batch, step):
        seen.append({"step": step, "images": batch["images"][-1].clone(), "class_id": batch["class_id"].clone()})
        return real.step(ctx, batch, step)

    monkeypatch.setattr(fam_mod, "noise_for_sets", noise_spy)
    monkeypatch.setitem(gan.FAMILIES, "ssagan", dataclasses.replace(real, step=step_spy))
    cfg = _cfg(setup, exp, **{"train.max_steps": 2, "train.ckpt_every": 2, **over})
    s = gan.train_gan(cfg, torch.device("cpu"), setup[1], force=True)
    state = ck.load(s["checkpoint"])["state"]
    monkeypatch.undo()
    return seen, state


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_the_four_arms_see_identical_batches_and_noise(setup, monkeypatch):
    """The controlled ablation: every arm of a family draws the same images, caption sets and noise at every step,
    and with both contrastive weights at 0 the four arms end with bit-identical weights (nothing but the weights
    tells them apart)."""
    runs = {v: _record_steps(setup, monkeypatch, f"ssagan_{v}") for v in ("baseline", "f2r", "f2f", "both")}
    base_seen, base_state = runs["baseline"]
    assert len(base_seen) == 4 and len(base_seen[1]["captions"]) == 2  # 2 steps x (batch, noise); 2 caption sets
    for v, (seen, _) in runs.items():
        assert _same(seen, base_seen), v
    zeroed = {v: _record_steps(setup, monkeypatch, f"ssagan_{v}",
                               **{"train.losses.f2f": 0.0, "train.losses.f2r": 0.0})[1] for v in ("f2r", "f2f", "both")}
    for v, state in zeroed.items():
        assert _same(state, base_state), v
    assert not _same(runs["both"][1], base_state)  # the weights do matter when they are not 0


def test_attribute_negatives_change_only_the_mismatched_term(setup, monkeypatch, plain_ssagan_losses):
    """train.attribute_negatives: the same images, captions and noise; step 1's real and fake D terms are the
    same (same initial weights), the mismatched term is not (it averages over the extra pairs), and the run
    trains."""
    seen, _ = _record_steps(setup, monkeypatch, "ssagan_baseline")
    seen_neg, _ = _record_steps(setup, monkeypatch, "ssagan_baseline", **{"train.attribute_negatives": True})
    assert _same(seen_neg, seen)
    plain = plain_ssagan_losses
    neg = _losses(setup, "ssagan_baseline", **{"train.attribute_negatives": True})
    assert neg[0]["d_real"] == pytest.approx(plain[0]["d_real"], rel=1e-6)
    assert neg[0]["d_fake"] == pytest.approx(plain[0]["d_fake"], rel=1e-6)
    assert neg[0]["d_mis"] != pytest.approx(plain[0]["d_mis"], rel=1e-6)
    assert all(math.isfinite(r["d_mis"]) for r in neg) and len(neg) == 3


def test_single_caption_reference_baseline_is_its_own_arm():
    cfg = C.resolve("ssagan_baseline1cap", "smoke")
    assert cfg.captions_per_sample == 1 and cfg.train.caption_sets == "auto"
    assert C.resolve("ssagan_baseline", "smoke").captions_per_sample == 2
    assert C.resolve("ssagan_baseline1cap", "smoke", {"train.f2f_pairing": "split"}).captions_per_sample == 1
    from t2i_lib.metrics.evaluate import variant_of

    assert variant_of(cfg) == "baseline1cap" and variant_of(C.resolve("ssagan_baseline", "smoke")) == "baseline"


def test_damsm_gamma1_per_family():
    assert C.resolve("ssagan_f2f", "paper").train.damsm_gamma1 == 5.0
    assert C.resolve("attngan_f2f", "paper").train.damsm_gamma1 == 4.0
    assert C.resolve("style_attngan_both_coco", "paper").train.damsm_gamma1 == 4.0


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_adam_implementations_give_the_default_update(setup, impl):
    plain = _losses(setup, "ssagan_both")
    fast = _losses(setup, "ssagan_both", **{"train.adam": impl})
    for a, b in zip(plain, fast):
        for k in TERMS:
            if k in a:
                assert math.isclose(a[k], b[k], rel_tol=1e-5, abs_tol=1e-6), (impl, k, a[k], b[k])


def test_adam_eps_reaches_both_optimizers_and_keeps_run_ids_at_its_default():
    from t2i_lib.train.gan import make_optimizers

    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    base = C.resolve("ssagan_baseline", "smoke")
    assert [o.defaults["eps"] for o in make_optimizers(base, G, D)] == [1e-8, 1e-8]  # PyTorch's default
    big = C.resolve("ssagan_baseline", "smoke", {"train.adam_eps": 1.0})
    opt_g, opt_d = make_optimizers(big, G, D)
    assert opt_g.defaults["eps"] == opt_d.defaults["eps"] == 1.0
    assert big.run_id != base.run_id
    assert C.resolve("ssagan_baseline", "smoke", {"train.adam_eps": 1e-8}).run_id == base.run_id
    # eps far above the gradient: Adam's first update (beta1 0) is lr * g / (|g| + eps), linear in g
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([w], lr=0.5, betas=(0.0, 0.9), eps=1.0)
    w.grad = torch.tensor([1e-3, -2e-3, 4e-3])
    opt.step()
    assert torch.allclose(w.detach(), -0.5 * w.grad / (w.grad.abs() + 1.0))
    with pytest.raises(C.ConfigError, match="adam_eps"):
        C.resolve("ssagan_baseline", "smoke", {"train.adam_eps": 0.0})


def test_lazy_magp_runs_on_every_kth_step_at_k_times_the_weight(setup, plain_ssagan_losses):
    """train.magp_every k: MA-GP on steps 0, k, 2k, ... with weight x k, nothing on the others; the first step's D
    hinge terms are the plain run's, its penalty exactly k times the plain one (same weights until that update);
    the default keeps every run id."""
    from t2i_lib.losses.adversarial import magp_weight_at

    assert [magp_weight_at(s, 2.0, 4) for s in range(6)] == [8.0, 0.0, 0.0, 0.0, 8.0, 0.0]
    assert [magp_weight_at(s, 2.0) for s in range(3)] == [2.0] * 3 and magp_weight_at(0, 0.0, 4) == 0.0
    plain = plain_ssagan_losses
    lazy = _losses(setup, "ssagan_baseline", **{"train.magp_every": 2})
    assert [r["step"] for r in lazy] == [1, 2, 3]  # logged after steps 0, 1, 2
    assert lazy[0]["d_total"] == plain[0]["d_total"] and lazy[0]["d_real"] == plain[0]["d_real"]
    assert plain[0]["d_magp"] > 0 and all(r["d_magp"] > 0 for r in plain)
    assert lazy[0]["d_magp"] == pytest.approx(2 * plain[0]["d_magp"], rel=1e-6)
    assert lazy[1]["d_magp"] == 0.0 and lazy[2]["d_magp"] > 0
    assert lazy[1]["d_total"] != plain[1]["d_total"]  # the skipped step trains a different D from then on
    base = C.resolve("ssagan_baseline", "demo")
    assert C.resolve("ssagan_baseline", "demo", {"train.magp_every": 1}).run_id == base.run_id
    assert C.resolve("ssagan_baseline", "demo", {"train.magp_every": 4}).run_id != base.run_id
    with pytest.raises(C.ConfigError, match="magp_every"):
        C.resolve("ssagan_baseline", "smoke", {"train.magp_every": 0})


def test_contrastive_gradients_reach_G_not_frozen_encoders(setup):
    from t2i_lib.data.dataset import CaptionDataset
    from t2i_lib.train.damsm import encoder_path, load_encoders

    cfg = _cfg(setup, "ssagan_both", **{"train.losses.damsm": 0.0})
    ds = CaptionDataset(setup[1], "train", (64,), 2)
    te, ie, _ = load_encoders(encoder_path(cfg), "cpu")
    modules, _ = ssagan_family.build(cfg)
    G = modules["G"]
    with torch.no_grad():  # open the residual gates so the sentence matters
        for b in G.blocks:
            b.gamma.fill_(0.5)
    ctx = gan.GanContext(cfg, torch.device("cpu"), te, ie, G, modules["D"], None, None)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    sets = gan.caption_sets(batch, "cpu")
    emb = [(*te(c, l), l) for c, l in sets]
    z = torch.randn(4, cfg.model.z_dim)
    fakes = [G(z, s) for _, s, _ in emb]
    terms = gan.encoder_terms(ctx, fakes, batch["images"][-1], emb, batch["class_id"])
    assert set(terms) == {"g_f2f", "g_f2r"}
    (terms["g_f2f"] + terms["g_f2r"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert all(p.grad is None for p in list(te.parameters()) + list(ie.parameters()))


def test_fake_to_fake_minimum_for_identical_pairs():
    from t2i_lib.losses.contrastive import fake_to_fake

    n, tau = 4, 0.5
    e = torch.eye(8)[:n]
    want = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2))
    assert fake_to_fake(e, e.clone(), tau).item() == pytest.approx(want, rel=1e-6)


def test_final_checkpoint_has_no_optimizer_state_and_a_stripped_mid_run_one_cannot_resume(setup):
    cfg = _cfg(setup, "ssagan_both", **{"train.max_steps": 4, "train.ckpt_every": 2, "train.keep_checkpoints": 0})
    gan.train_gan(cfg, torch.device("cpu"), setup[1], force=True)
    run = gan.run_dir_for(cfg)
    mid, final = ck.load(run / "checkpoints" / "ckpt_000002.pt"), ck.load(run / "checkpoints" / "ckpt_000004.pt")
    assert set(mid["optim"]) == {"G", "D"} and final["optim"] is None
    n_opt = sum(v.numel() for o in mid["optim"].values() for st in o["state"].values() for v in st.values()
                if torch.is_tensor(v) and v.dim() > 0)
    n_w = sum(v.numel() for part in ("G", "D") for v in mid["state"][part].values() if v.is_floating_point())
    assert n_opt >= 1.9 * n_w, (n_opt, n_w)  # Adam's two moments: about twice the weights
    assert (run / "checkpoints" / "ckpt_000004.pt").stat().st_size < 0.6 * (run / "checkpoints" /
                                                                           "ckpt_000002.pt").stat().st_size
    # killed after the final checkpoint, before summary.json: the next call finishes from it without training
    (run / "summary.json").unlink()
    s = gan.train_gan(cfg, torch.device("cpu"), setup[1])
    assert s["steps"] == 4 and torch.equal(ck.load(s["checkpoint"])["state"]["G"][next(iter(final["state"]["G"]))],
                                           next(iter(final["state"]["G"].values())))
    # a mid-run checkpoint without optimizer state is refused, naming the step
    (run / "summary.json").unlink()
    (run / "checkpoints" / "ckpt_000004.pt").unlink()
    ck.save(run / "checkpoints", 2, {**{k: v for k, v in mid.items() if k not in ("format", "lib_version", "step")},
                                     "optim": None})
    with pytest.raises(ck.CheckpointError, match="step 2 has no optimizer state"):
        gan.train_gan(cfg, torch.device("cpu"), setup[1])


def test_resume_continues_from_saved_step_bitwise(setup):
    cfg = _cfg(setup, "ssagan_both", **{"train.max_steps": 4, "train.ckpt_every": 2})
    full = gan.train_gan(cfg, torch.device("cpu"), setup[1], force=True)
    run = gan.run_dir_for(cfg)
    want = ck.load(run / "checkpoints" / "ckpt_000004.pt")
    stats_full = (run / "stats.jsonl").read_text()
    (run / "checkpoints" / "ckpt_000004.pt").unlink()
    (run / "summary.json").unlink()
    resumed = gan.train_gan(cfg, torch.device("cpu"), setup[1])
    got = ck.load(run / "checkpoints" / "ckpt_000004.pt")
    for part in ("G", "D"):
        for k, v in want["state"][part].items():
            assert torch.equal(v, got["state"][part][k]), (part, k)
    assert (run / "stats.jsonl").read_text() .count("\n") == stats_full.count("\n") == 4
    assert [json.loads(l)["g_total"] for l in (run / "stats.jsonl").read_text().splitlines()] == \
        [json.loads(l)["g_total"] for l in stats_full.splitlines()]
    assert resumed["steps"] == full["steps"] == 4


def _nan_at_step_1(monkeypatch, term: str) -> None:
    """Make the SSA-GAN step report a NaN ``term`` at step 1."""
    real = gan.FAMILIES["ssagan"]
    real_step = real.step

    def bad_step(ctx, batch, step):
        out = real_step(ctx, batch, step)
        if step == 1:
            out[term] = torch.tensor(float("nan"))
        return out

    monkeypatch.setitem(gan.FAMILIES, "ssagan", dataclasses.replace(real, step=bad_step))


def test_nonfinite_loss_stops_with_term_and_step_or_is_skipped(setup, monkeypatch):
    cfg = _cfg(setup, "ssagan_baseline", **{"train.max_steps": 3, "train.ckpt_every": 1})
    _nan_at_step_1(monkeypatch, "g_damsm")
    with pytest.raises(gan.NonFiniteLossError, match="g_damsm at step 1"):
        gan.train_gan(cfg, torch.device("cpu"), setup[1], force=True)
    run = gan.run_dir_for(cfg)
    assert ck.load_latest(run / "checkpoints")["step"] == 1  # the last good checkpoint is intact
    cfg2 = _cfg(setup, "ssagan_baseline", **{"train.max_steps": 3, "train.skip_nonfinite": True})
    s = gan.train_gan(cfg2, torch.device("cpu"), setup[1], force=True)
    assert s["skipped_steps"] == 1 and s["steps"] == 3


@pytest.mark.parametrize("exp", ["style_attngan_baseline", "style_attngan_f2r", "style_attngan_f2f",
                                 "style_attngan_both", "attngan_baseline", "attngan_f2r", "attngan_f2f",
                                 "attngan_both"])
def test_attngan_families_train_all_variants(setup, exp):
    cfg = _cfg(setup, exp, **{"model.w_dim": 8, "model.ca_dim": 8, "model.mapping_layers": 2, "model.r_num": 1})
    s = gan.train_gan(cfg, torch.device("cpu"), setup[1])
    final = s["final"]
    assert final["step"] == 2 and math.isfinite(final["g_total"]) and "g_kl" in final
    assert ("g_f2f" in final) == exp.endswith(("f2f", "both")) and ("g_f2r" in final) == exp.endswith(("f2r", "both"))
    c = ck.load(s["checkpoint"], expect={"kind": "gan", "family": cfg.model.family})
    assert "G_ema" in c["state"]  # AttnGAN lineage keeps an EMA of G
    G, meta = gan.load_generator(s["checkpoint"], "cpu")
    assert meta["weights"] == "G_ema"
    if cfg.model.family == "style_attngan":
        assert bool(G.w_avg_initialized)  # W average tracked during training, copied into the EMA generator


def _losses(setup, exp, **over):
    cfg = _cfg(setup, exp, **{"train.max_steps": 3, "train.sample_every": 100, "train.ckpt_every": 100, **over})
    gan.train_gan(cfg, torch.device("cpu"), setup[1], force=True)
    return [json.loads(l) for l in (gan.run_dir_for(cfg) / "stats.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def plain_ssagan_losses(setup):
    """The logged losses of 3 plain SSA-GAN baseline steps (:func:`_losses`), shared by the tests that compare an
    option against them."""
    return _losses(setup, "ssagan_baseline")


TERMS = ("d_total", "g_total", "g_adv", "g_damsm", "g_f2f", "g_f2r")


@pytest.mark.parametrize("exp", ["ssagan_both", "style_attngan_both"])
def test_speed_flags_give_the_plain_path_losses(setup, exp):
    """finite_check='log' is the same computation (bitwise); channels-last within 1e-3 relative (other conv kernels; Adam amplifies); bf16 autocast within
    the stated 5e-2 relative over 3 steps (bf16 keeps 8 mantissa bits).  torch.compile is not run on CPU: inductor
    compiles each graph with the C++ toolchain for minutes; it is measured by benchmarks/bench_train_step.py on GPU."""
    plain = _losses(setup, exp)
    logged = _losses(setup, exp, **{"train.finite_check": "log"})
    assert [{**r, "seconds": 0} for r in logged] == [{**r, "seconds": 0} for r in plain]
    cl = _losses(setup, exp, **{"train.channels_last": True})
    bf = _losses(setup, exp, **{"train.precision": "bf16"})
    for a, b, c in zip(plain, cl, bf):
        for k in TERMS:
            if k in a:
                assert math.isclose(a[k], b[k], rel_tol=1e-3, abs_tol=1e-5), ("channels_last", k, a[k], b[k])
                assert math.isclose(a[k], c[k], rel_tol=5e-2, abs_tol=2e-2), ("bf16", k, a[k], c[k])
    assert any(a[k] != c[k] for a, c in zip(plain, bf) for k in TERMS if k in a)  # bf16 really ran


def test_finite_check_at_logging_names_the_interval(setup, monkeypatch):
    cfg = _cfg(setup, "ssagan_baseline", **{"train.finite_check": "log", "train.max_steps": 2, "train.log_every": 2,
                                            "train.ckpt_every": 100})
    _nan_at_step_1(monkeypatch, "g_adv")
    with pytest.raises(gan.NonFiniteLossError, match=r"g_adv between steps 1 and 2"):
        gan.train_gan(cfg, torch.device("cpu"), setup[1], force=True)
    with pytest.raises(C.ConfigError, match="finite_check='step'"):
        _cfg(setup, **{"train.finite_check": "log", "train.skip_nonfinite": True})


def _tiny_style(image_size=64):
    from t2i_lib.models.style_attngan import StyleAttnGANGenerator

    torch.manual_seed(0)
    G = StyleAttnGANGenerator(image_size, ngf=4, z_dim=8, ca_dim=8, cond_dim=16, word_dim=16, w_dim=8,
                              mapping_layers=2)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(0.5)  # make the injected noise visible
        G.w_avg.normal_()
        G.w_avg_initialized.fill_(True)
    return G.eval()


def test_truncation_psi_reaches_the_generator():
    fam = gan.get_family("style_attngan")
    G = _tiny_style()
    z, s = torch.randn(3, 16), torch.randn(3, 16)
    cfg = C.resolve("style_attngan_f2f", "smoke", {"model.truncation_psi": 0.5, "model.figure_truncation_psi": 0.7})
    plain = fam.sampler(C.resolve("style_attngan_f2f", "smoke"))(G, z, s)
    half = fam.sampler(cfg)(G, z, s)
    assert torch.allclose(half, fam.generate(G, z, s, truncation_psi=0.5))
    assert torch.allclose(fam.sampler(cfg, figures=True)(G, z, s), fam.generate(G, z, s, truncation_psi=0.7))
    assert not torch.allclose(half, plain)
    assert gan.get_family("ssagan").sampler(cfg) is gan.get_family("ssagan").generate  # SSA-GAN: no truncation


def test_style_evaluation_noise_is_random_per_sample_and_batch_independent():
    from t2i_lib.models.layers import NoiseInjection

    fam = gan.get_family("style_attngan")
    G = _tiny_style()
    z, s = torch.randn(4, 16), torch.randn(4, 16)
    both = fam.generate(G, z, s)
    assert torch.allclose(both, fam.generate(G, z, s))  # a function of the sample ...
    singles = torch.cat([fam.generate(G, z[i:i + 1], s[i:i + 1]) for i in range(4)])
    assert torch.allclose(both, singles, atol=1e-4)  # ... not of its batch (up to float rounding)
    NoiseInjection.eval_noise = "zero"
    try:
        quiet = fam.generate(G, z, s)
    finally:
        NoiseInjection.eval_noise = "random"
    assert (both - quiet).abs().mean() > 1e-3  # the reference's random noise is really injected at evaluation


@pytest.mark.parametrize("exp", ["ssagan_both", "style_attngan_both"])
def test_checkpoint_and_sample_intervals_do_not_change_the_weights(setup, exp):
    """train.ckpt_every / sample_every / keep_checkpoints are left out of the run id (a learning curve's run, every
    checkpoint kept, is the study's run), so they must not change what is trained."""
    small = {"model.w_dim": 8, "model.ca_dim": 8, "model.mapping_layers": 2, "model.r_num": 1, "train.max_steps": 3}
    often = _cfg(setup, exp, **small, **{"train.ckpt_every": 1, "train.sample_every": 1, "train.keep_checkpoints": 0})
    rarely = _cfg(setup, exp, **small, **{"train.ckpt_every": 100, "train.sample_every": 100})
    assert often.run_id == rarely.run_id
    a = ck.load(gan.train_gan(often, torch.device("cpu"), setup[1], force=True)["checkpoint"])["state"]
    assert len(ck.list_checkpoints(gan.run_dir_for(often) / "checkpoints")) == 3
    b = ck.load(gan.train_gan(rarely, torch.device("cpu"), setup[1], force=True)["checkpoint"])["state"]
    assert _same(a, b)


def test_loss_curve_marks_the_fake_to_fake_chance_value():
    """ln(2N - 1) for N pairs: the NT-Xent value at uniform similarity, hand-computed here for N = 8."""
    import numpy as np

    from t2i_lib.report import gan_report

    x = torch.randn(8, 16)
    assert gan_report.f2f_chance({"images_per_step": 16, "caption_sets": "paired"}) == pytest.approx(math.log(15))
    # the loss of identical features for every fake equals that chance value (no information on the pairs)
    from t2i_lib.losses.contrastive import fake_to_fake

    same = x[:1].expand(8, 16)
    assert fake_to_fake(same, same.clone(), 0.5).item() == pytest.approx(math.log(15), rel=1e-5)
    assert gan_report.f2f_chance({"images_per_step": 4, "caption_sets": "single"}) is None
    stats = [{"step": s, "g_f2f": 2.7 - 0.1 * s, "g_total": 1.0, "d_total": 1.0} for s in range(1, 5)]
    fig = gan_report.loss_curves(stats, "x", f2f_chance=math.log(15))
    enc = fig.axes[3]
    assert enc.get_title() == "contrastive terms" and fig.axes[2].get_title() == "DAMSM term"
    dashed = [l for l in enc.lines if l.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), math.log(15))
    assert not [l for l in gan_report.loss_curves(stats).axes[3].lines if l.get_linestyle() == "--"]


@pytest.mark.parametrize("n", [5, 11, 16])
def test_split_grid_returns_the_tiles_make_grid_was_given(tmp_path, n):
    """The inverse of the sample grid's own layout (8 per row, padding 2), ragged last row included."""
    import io

    import numpy as np
    import torchvision
    from PIL import Image

    from t2i_lib.report import gan_report

    g = torch.Generator().manual_seed(n)
    tiles = torch.randint(0, 256, (n, 3, 6, 7), generator=g).float() / 255  # exact byte values
    grid = torchvision.utils.make_grid(tiles, nrow=8, padding=2)
    buf = io.BytesIO()
    Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy()).save(buf, format="PNG")
    (tmp_path / "grid.png").write_bytes(buf.getvalue())
    got = gan_report.split_grid(tmp_path / "grid.png", n)
    want = tiles.mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    assert len(got) == n and all(np.array_equal(a, b) for a, b in zip(got, want))
    with pytest.raises(ValueError, match="not a grid"):
        gan_report.split_grid(tmp_path / "grid.png", n + 8)


def test_a_run_publishes_its_curves_and_captioned_samples(setup, tmp_path):
    from t2i_lib.report import gan_report

    s = gan.train_gan(_cfg(setup, "ssagan_f2f"), torch.device("cpu"), setup[1])
    made = gan_report.publish_run_figures(s, tmp_path / "figures", "ssagan_f2f")
    assert {k: p.name for k, p in made.items()} == {"losses": "02_ssagan_f2f_losses.png",
                                                    "samples": "02_ssagan_f2f_samples.png",
                                                    "captioned": "02_ssagan_f2f_samples_captioned.png"}
    assert made["samples"].read_bytes() == open(s["sample_grid"], "rb").read()
    assert made["losses"].stat().st_size > 1000 and made["captioned"].stat().st_size > 1000
    captions = gan_report.sample_captions(s)
    fig = gan_report.captioned_samples(s)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.images]
    assert len(titles) == len(captions) == 16  # the grid's 16 fixed captions (the tiny set's 16 test images)
    assert [t.replace("\n", " ") for t in titles] == captions  # each image above its own caption, in grid order
