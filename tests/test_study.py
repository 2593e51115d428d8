"""The study report: aggregation over seeds, paired differences, the t-test, claim verdicts and study.md."""

import json
import math

import pytest

from t2i_lib.report import study


def _rec(family, variant, seed, **metrics):
    base = {"fid": 20.0, "kid_mean": 0.01, "kid_std": 0.001, "is_mean": None, "is_std": None,
            "is_unavailable_reason": "offline", "r_precision": 0.5, "r_precision_std": 0.02,
            "consistency_gap_damsm": 0.1, "sibling_sim_damsm": 0.6, "unrelated_sim_damsm": 0.5,
            "r_precision_judge": 0.4, "consistency_gap_judge": 0.1, "sibling_sim_judge": 0.6,
            "consistency_gap_inception": 0.02, "sibling_sim_inception": 0.7, "unrelated_sim_inception": 0.68,
            "attribute_accuracy": 0.7, "attribute_accuracy_per": None}
    base.update(metrics)
    return {"run_id": f"{family}_{variant}-demo-s{seed}-abcdef12", "kind": "gan", "experiment": f"{family}_{variant}",
            "family": family, "variant": variant, "profile": "demo", "dataset": "caption-shapes", "seed": seed,
            "config_hash": "ab" * 32, "lib_version": "0.1.0", "metrics": base,
            "protocol": {"n_samples": 512, "image_size": 64,
                         "consistency": {"groups": 32, "captions_per_group": 4, "noise": "shared within a group"}},
            "device": "cpu", "seconds": 30.0}


# ------------------------------------------------------------------------------------------------ aggregation


def test_aggregate_mean_sample_std_and_skips_none():
    recs = [_rec("ssagan", "baseline", 0, fid=10.0, attribute_accuracy=0.6),
            _rec("ssagan", "baseline", 2, fid=14.0, attribute_accuracy=None),
            _rec("ssagan", "baseline", 1, fid=12.0, attribute_accuracy=0.8),
            _rec("ssagan", "f2f", 0, fid=9.0),
            {"kind": "damsm", "family": "x", "variant": "y", "seed": 0}]  # other kinds are ignored
    agg = study.aggregate(recs)
    assert [(g["family"], g["variant"]) for g in agg] == [("ssagan", "baseline"), ("ssagan", "f2f")]
    b = agg[0]
    assert b["n_runs"] == 3 and b["seeds"] == [0, 1, 2]
    # FID 10, 12, 14: mean 12, sample variance ((-2)^2 + 0 + 2^2) / (3 - 1) = 4 -> std 2.
    assert b["metrics"]["fid"]["n"] == 3
    assert b["metrics"]["fid"]["mean"] == pytest.approx(12.0)
    assert b["metrics"]["fid"]["std"] == pytest.approx(2.0)
    # Attribute accuracy 0.6, 0.8 (seed 2 is None and skipped): mean 0.7, std sqrt((0.01 + 0.01) / 1) = 0.14142.
    aa = b["metrics"]["attribute_accuracy"]
    assert aa["n"] == 2 and aa["seeds"] == [0, 1]
    assert aa["mean"] == pytest.approx(0.7)
    assert aa["std"] == pytest.approx(math.sqrt(0.02))
    # One seed: a mean and no spread.
    f = agg[1]["metrics"]["fid"]
    assert f["n"] == 1 and f["mean"] == pytest.approx(9.0) and f["std"] is None
    assert set(b["metrics"]) == set(study.METRICS)


# --------------------------------------------------------------------------------------------------- pairing


def test_paired_pairs_by_seed_and_ignores_unmatched():
    recs = [_rec("ssagan", "baseline", s, fid=v) for s, v in [(0, 20.0), (1, 21.0), (2, 22.0), (3, 30.0)]]
    recs += [_rec("ssagan", "f2r", s, fid=v) for s, v in [(3, 31.0), (1, 23.0), (2, 25.0), (5, 0.0)]]
    recs += [_rec("attngan", "f2r", 0, fid=0.0)]  # another family never pairs
    r = study.paired(recs, "fid", "ssagan", "f2r")
    assert r["seeds"] == [1, 2, 3]
    # seed 1: 23 - 21 = 2, seed 2: 25 - 22 = 3, seed 3: 31 - 30 = 1.
    assert r["diffs"] == pytest.approx([2.0, 3.0, 1.0])
    assert r["n"] == 3 and r["df"] == 2
    assert r["mean"] == pytest.approx(2.0)
    assert r["std"] == pytest.approx(1.0)
    assert r["effect_size"] == pytest.approx(2.0)
    assert r["t"] == pytest.approx(2.0 / (1.0 / math.sqrt(3)))
    assert r["p"] == pytest.approx(0.0742, abs=1e-4)
    lo, hi = r["ci95"]  # 2 ± 4.302653 / sqrt(3)
    assert lo == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert hi == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-5)


def test_paired_small_n_and_degenerate_cases():
    one = study.paired([_rec("ssagan", "baseline", 0), _rec("ssagan", "f2f", 0, fid=25.0)], "fid", "ssagan", "f2f")
    assert one["n"] == 1 and one["mean"] == pytest.approx(5.0)
    assert one["std"] is None and one["t"] is None and one["p"] is None and one["effect_size"] is None
    none = study.paired([_rec("ssagan", "baseline", 0)], "fid", "ssagan", "f2f")
    assert none["n"] == 0 and none["mean"] is None and none["diffs"] == []
    same = study.paired([_rec("ssagan", "baseline", s, fid=10.0) for s in range(3)]
                        + [_rec("ssagan", "f2f", s, fid=12.0) for s in range(3)], "fid", "ssagan", "f2f")
    assert same["std"] == 0.0 and same["p"] == 0.0 and same["t"] == math.inf
    with pytest.raises(ValueError, match="seed 0"):
        study.paired([_rec("ssagan", "baseline", 0), _rec("ssagan", "baseline", 0)], "fid", "ssagan", "f2f")


def test_paired_across_families():
    recs = [_rec("attngan", "baseline", s, fid=30.0 + s) for s in range(3)]
    recs += [_rec("style_attngan", "baseline", s, fid=20.0 + 2 * s) for s in range(3)]
    r = study.paired(recs, "fid", "style_attngan", "baseline", "baseline", baseline_family="attngan")
    assert r["diffs"] == pytest.approx([-10.0, -9.0, -8.0]) and r["baseline_family"] == "attngan"


# ------------------------------------------------------------------------------------------------- the t-test


def test_t_test_known_values():
    # Differences [1, 2, 3]: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df = 2, two-sided p = 0.0742.
    assert study.t_two_sided_p_pure(3.4641, 2) == pytest.approx(0.0742, abs=1e-4)
    # df = 2 has the closed form p = 1 - |t| / sqrt(2 + t^2).
    for t in (0.1, 0.5, 1.7, 3.0, 12.0):
        assert study.t_two_sided_p_pure(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
    # df = 1 is Cauchy: p = 1 - (2 / pi) atan |t|.
    for t in (0.3, 1.0, 6.0):
        assert study.t_two_sided_p_pure(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
    # Table critical values.
    for t, df, p in ((2.776445, 4, 0.05), (2.228139, 10, 0.05), (2.042272, 30, 0.05), (4.032143, 5, 0.01),
                     (63.65674, 1, 0.01)):
        assert study.t_two_sided_p_pure(t, df) == pytest.approx(p, rel=1e-5)
    # Large df approaches the normal: P(|Z| > 1.959964) = 0.05.
    assert study.t_two_sided_p_pure(1.959964, 1e7) == pytest.approx(0.05, rel=1e-4)
    assert study.t_two_sided_p_pure(0.0, 3) == pytest.approx(1.0)
    assert study.t_two_sided_p_pure(-3.4641, 2) == study.t_two_sided_p_pure(3.4641, 2)
    assert study.t_two_sided_p(3.4641, 2) == pytest.approx(0.0742, abs=1e-4)  # scipy or the fallback


def test_t_test_second_case_differences():
    # Differences [1, -1, 2, 0]: mean 0.5, sd sqrt(5/3), t = 0.5 / (sd / 2) = 0.774597, df = 3.
    # df = 3 closed form: p = 1 - (2 / pi) (theta + sin(theta) cos(theta)), theta = atan(t / sqrt 3).
    recs = [_rec("ssagan", "baseline", s, consistency_gap_damsm=0.0) for s in range(4)]
    recs += [_rec("ssagan", "f2f", s, consistency_gap_damsm=d) for s, d in enumerate([1.0, -1.0, 2.0, 0.0])]
    r = study.paired(recs, "consistency_gap_damsm", "ssagan", "f2f")
    assert r["std"] == pytest.approx(math.sqrt(5 / 3))
    assert r["t"] == pytest.approx(0.774597, abs=1e-6)
    th = math.atan(r["t"] / math.sqrt(3))
    expected = 1 - 2 / math.pi * (th + math.sin(th) * math.cos(th))
    assert r["p"] == pytest.approx(expected, rel=1e-8)
    assert r["p"] == pytest.approx(0.4950, abs=1e-3)


def test_incomplete_beta_and_quantile():
    assert study.betainc_regularized(1, 1, 0.3) == pytest.approx(0.3)
    assert study.betainc_regularized(2.5, 1, 0.4) == pytest.approx(0.4 ** 2.5)
    a, b, x = 3.2, 0.7, 0.81
    assert study.betainc_regularized(a, b, x) == pytest.approx(1 - study.betainc_regularized(b, a, 1 - x))
    assert study.t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert study.t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-6)
    assert study.t_quantile(0.025, 10) == pytest.approx(-2.228139, abs=1e-6)


# --------------------------------------------------------------------------------------- Welch, Holm, effects


def test_welch_known_values_and_degenerate_cases():
    recs = [_rec("attngan", "baseline", s, fid=v) for s, v in enumerate([30.0, 32.0, 34.0])]
    recs += [_rec("style_attngan", "baseline", s, fid=v) for s, v in enumerate([20.0, 21.0, 22.0, 23.0])]
    r = study.welch(recs, "fid", "style_attngan", "baseline", "attngan")
    # means 21.5 and 32; variances 5/3 and 4; se = sqrt(5/12 + 4/3) = sqrt(1.75)
    assert r["mean"] == pytest.approx(-10.5) and r["std"] == pytest.approx(math.sqrt(1.75))
    assert r["t"] == pytest.approx(-10.5 / math.sqrt(1.75))
    qa, qb = 5 / 12, 4 / 3
    df = (qa + qb) ** 2 / (qa ** 2 / 3 + qb ** 2 / 2)
    assert r["df"] == pytest.approx(df) and r["n_a"] == 4 and r["n_b"] == 3 and r["n"] == 3
    assert r["p"] == pytest.approx(study.t_two_sided_p_pure(r["t"], df), rel=1e-6)
    assert r["p"] < 0.01 and r["ci95"][0] < -10.5 < r["ci95"][1]
    one = study.welch(recs[:1] + recs[3:], "fid", "style_attngan", "baseline", "attngan")
    assert one["mean"] == pytest.approx(-8.5) and one["p"] is None
    assert study.welch(recs[3:], "fid", "style_attngan", "baseline", "attngan")["mean"] is None


def test_holm_hand_computed():
    # sorted 0.01, 0.02, 0.04 (m = 3): 0.03, 0.04, 0.04 (monotone); None is not a test.
    assert study.holm([0.04, None, 0.01, 0.02]) == pytest.approx([0.04, None, 0.03, 0.04])
    assert study.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and study.holm([]) == []


def test_min_effect_absolute_or_relative():
    assert study.min_effect("fid", 300.0) == pytest.approx(6.0)  # 2 % of the reference FID
    assert study.min_effect("consistency_gap_judge", 0.5) == pytest.approx(0.02)
    assert study.min_effect("sibling_sim_judge", 0.9) == 0.0
    assert study.HIGHER_IS_BETTER["sibling_sim_judge"] is None and study.HIGHER_IS_BETTER["sibling_sim_damsm"] is None


# ---------------------------------------------------------------------------------------------------- verdicts


def _ablation(seeds=(0, 1, 2), gap_effect=0.10, fid_effect=10.0, noise_scale=1.0, families=("ssagan",)):
    """Every family x 4 variants: f2f raises the held-out gap by ``gap_effect``, f2r worsens FID by ``fid_effect``,
    both is f2f's gap with the baseline FID; run-to-run noise scaled by ``noise_scale``."""
    noise = [0.0, 1.0, -1.0, 0.5, -0.5]
    recs = []
    for fam in families:
        for s in seeds:
            e = noise[s % len(noise)] * noise_scale
            w = ((s % 3) - 1) * noise_scale  # within-pair noise of the differences
            base = dict(fid=200.0 + 5 * e, kid_mean=0.10 + 0.01 * e, consistency_gap_judge=0.10 + 0.01 * e,
                        consistency_gap_damsm=0.2 + 0.01 * e, consistency_gap_inception=0.05 + 0.001 * e)
            recs.append(_rec(fam, "baseline", s, **base))
            f2f = dict(base, consistency_gap_judge=base["consistency_gap_judge"] + gap_effect + 0.005 * w)
            recs.append(_rec(fam, "f2f", s, **f2f))
            recs.append(_rec(fam, "f2r", s, **dict(base, fid=base["fid"] + fid_effect + 0.5 * w)))
            recs.append(_rec(fam, "both", s, **dict(f2f, fid=base["fid"] + 0.4 * w)))
    return recs


def _verdicts(recs):
    return {(e["claim"], e["family"]): e for e in study.judge(recs)}


def test_clear_effect_is_supported_after_holm_and_wrong_way_contradicted():
    v = _verdicts(_ablation())
    a = v[("f2f_consistency", "ssagan")]
    assert a["verdict"] == "supported" and a["primary"]["metric"] == "consistency_gap_judge"
    assert a["primary"]["p_holm"] >= a["primary"]["p"] and a["primary"]["p_holm"] < 0.05
    b = v[("f2r_distribution", "ssagan")]
    assert b["verdict"] == "contradicted" and b["primary"]["mean"] == pytest.approx(10.0)
    # (c): the better single loss by FID is f2f (f2r is 10 worse); both has f2f's... baseline FID: no difference
    c = v[("both_beat_each", "ssagan")]
    assert c["primary"]["baseline"] == "f2f" and c["primary"]["comparison"] == "both vs f2f"
    assert v[("style_detail", "style_attngan")]["verdict"] == "not measured"
    assert all(t.get("verdict") is None for e in v.values() for t in e["secondary"])  # never decisive
    # Holm over the primary tests that ran: (a), (b), (c) of SSA-GAN.
    ps = [e["primary"]["p"] for e in v.values() if e["primary"] and e["primary"]["p_holm"] is not None]
    assert len(ps) == 3


def test_noise_at_three_seeds_is_inconclusive():
    recs = _ablation(gap_effect=0.004, fid_effect=2.0, noise_scale=2.0)  # small effects under large noise
    v = _verdicts(recs)
    assert v[("f2f_consistency", "ssagan")]["verdict"] == "inconclusive"
    assert v[("f2r_distribution", "ssagan")]["verdict"] == "inconclusive"


def test_tiny_significant_effect_is_negligible():
    recs = _ablation(fid_effect=0.3, noise_scale=0.01)  # FID +0.3 on 200 (0.15 %), extremely consistent
    b = _verdicts(recs)[("f2r_distribution", "ssagan")]
    assert b["primary"]["p_holm"] < 0.05 and abs(b["primary"]["mean"]) < b["primary"]["min_effect"] == 4.0
    assert b["verdict"] == "negligible"


def _with_attributes(recs, acc_by_arm, chance=0.19):
    for r in recs:
        r["metrics"]["attribute_accuracy"] = acc_by_arm.get(r["variant"], 0.6)
        r["metrics"]["attribute_accuracy_chance"] = chance
    return recs


def test_arm_at_chance_makes_the_claim_not_testable():
    recs = _with_attributes(_ablation(), {"baseline": 0.6, "f2f": 0.6, "f2r": 0.20, "both": 0.6})
    cond = study.conditioning(recs)
    assert cond[("ssagan", "f2r")]["at_chance"] and not cond[("ssagan", "f2f")]["at_chance"]
    assert cond[("ssagan", "f2r")]["threshold"] == pytest.approx(0.22)
    v = _verdicts(recs)
    assert v[("f2r_distribution", "ssagan")]["verdict"] == "not testable"
    assert v[("f2r_distribution", "ssagan")]["not_testable_arms"] == [("ssagan", "f2r")]
    assert v[("f2f_consistency", "ssagan")]["verdict"] == "supported"  # f2f and baseline learned
    # Without attributes the held-out R-precision is the conditioning measure (chance 1 / candidates).
    recs2 = _ablation()
    for r in recs2:
        r["metrics"]["attribute_accuracy"] = None
        r["metrics"]["r_precision_judge"] = 0.015 if r["variant"] == "f2f" else 0.5
        r["protocol"]["r_precision"] = {"n_candidates": 100}
    assert _verdicts(recs2)[("f2f_consistency", "ssagan")]["verdict"] == "not testable"
    assert _verdicts(recs2)[("f2r_distribution", "ssagan")]["verdict"] == "contradicted"


def test_style_claim_is_unpaired_welch_and_interaction_is_reported():
    recs = _ablation(families=("style_attngan", "attngan"))
    for r in recs:
        if r["family"] == "style_attngan":
            r["metrics"]["fid"] -= 50.0
            r["seed"] += 10  # unpaired: the style claim must not need matching seeds
    d = _verdicts(recs)[("style_detail", "style_attngan")]
    assert d["primary"]["test"] == "welch" and d["primary"]["mean"] == pytest.approx(-50.0)
    assert d["verdict"] == "supported"
    fams = {k[1] for k in _verdicts(recs) if k[0] == "f2f_consistency"}
    assert fams == {"style_attngan", "attngan"}  # plain AttnGAN's loss arms are part of the ablation
    recs = _ablation(families=("style_attngan", "attngan"))
    for r in recs:
        if r["family"] == "attngan" and r["variant"] == "f2r":
            r["metrics"]["fid"] += 20.0  # the loss hurts plain AttnGAN more
    rows = {(r["variant"], r["metric"]): r for r in study.interaction(recs)}
    assert rows[("f2r", "fid")]["effect_with"] == pytest.approx(10.0)
    assert rows[("f2r", "fid")]["effect_without"] == pytest.approx(30.0)
    assert rows[("f2r", "fid")]["interaction"] == pytest.approx(-20.0) and rows[("f2r", "fid")]["p"] < 0.01


def _with_config(recs, family, **train):
    """Give every record a config; ``family``'s records get ``train`` settings on top of the shared ones."""
    for r in recs:
        t = {"lr_g": 2e-4, "max_steps": 2000, "losses": {"damsm": 5.0, "f2f": 0.0}}
        if r["family"] == family:
            t = {**t, **train, "losses": {**t["losses"], **train.get("losses", {})}}
        r["config"] = {"data": {"image_size": 32}, "damsm": {"epochs": 10}, "train": t,
                       "model": {"family": r["family"], "ndf": 4 if r["family"] == family else 8},
                       "run": {"seed": r["seed"]}, "eval": {"n_samples": 400}}
    return recs


def test_cross_family_claim_names_every_recipe_difference_from_the_configs(tmp_path):
    recs = _with_config(_ablation(families=("style_attngan", "attngan")), "style_attngan",
                        max_steps=3000, losses={"damsm": 0.25})
    diff = study.recipe_differences(recs, ("style_attngan", "baseline"), ("attngan", "baseline"))
    # model.* (the architecture), run.* and eval.* are not part of the recipe
    assert diff == [{"key": "train.losses.damsm", "a": 0.25, "b": 5.0},
                    {"key": "train.max_steps", "a": 3000, "b": 2000}]
    assert study.recipe_differences(recs, ("style_attngan", "baseline"), ("ssagan", "baseline")) == []
    v = _verdicts(recs)
    assert v[("style_detail", "style_attngan")]["recipe_differences"] == diff
    assert v[("f2f_consistency", "attngan")]["recipe_differences"] == []  # within a family: none reported
    _write(tmp_path / "metrics", recs)
    study.write_study(tmp_path / "metrics", tmp_path / "study.md")
    d = _section((tmp_path / "study.md").read_text(), "d")
    assert "`train.losses.damsm` 0.25 vs 5.0; `train.max_steps` 3000 vs 2000" in d
    assert "not of the architecture alone" in d and "ndf" not in d
    # the same recipe: no such line
    _write(tmp_path / "same", _with_config(_ablation(families=("style_attngan", "attngan")), "none"))
    study.write_study(tmp_path / "same", tmp_path / "same.md")
    assert "configs differ in" not in _section((tmp_path / "same.md").read_text(), "d")


# -------------------------------------------------------------------------------------------------- study.md


def _write(mdir, recs):
    mdir.mkdir(parents=True, exist_ok=True)
    for r in recs:
        (mdir / f"{r['run_id']}.json").write_text(json.dumps(r))
    (mdir / "damsm-demo.json").write_text(json.dumps({"kind": "damsm"}))


def _section(md, letter):
    start = md.index(f"## Claim ({letter})")
    end = md.find("\n## ", start + 5)
    return md[start:end]


def test_write_study_from_metrics_files(tmp_path):
    _write(tmp_path / "demo" / "metrics", _ablation())
    out = study.write_study(tmp_path / "demo" / "metrics", tmp_path / "demo" / "study.md",
                            figures_dir=tmp_path / "demo" / "figures", device_note="CPU, 2 cores",
                            wall_time_note="3 h 10 min")
    md = (tmp_path / "demo" / "study.md").read_text()
    assert md.count("## How claims are judged") == 1 and md.index("## How claims are judged") < md.index("## Setup")
    assert "Holm" in md and "negligible" in md and "not testable" in md and "Welch" in md
    assert "| model | variant | seeds | FID |" in md and "R-prec. eval enc. (%)" in md
    assert "| SSA-GAN | baseline | 0,1,2 | 200.00 ± 5.00 |" in md
    for c in study.CLAIMS:
        assert f"## Claim ({c.letter}): {c.text}" in md
    assert "**SSA-GAN: supported**" in _section(md, "a") and "Secondary (shown, not decisive" in _section(md, "a")
    b = _section(md, "b")
    assert "**SSA-GAN: contradicted**" in b and "**contradicts the paper**" in b
    assert "**AttnGAN + style blocks: not measured**" in _section(md, "d")
    assert "## Setup" in md and "CPU, 2 cores" in md and "3 h 10 min" in md and "512" in md
    assert "`metrics/` (relative to this file)" in md and str(tmp_path) not in md  # portable
    assert "at chance" not in md.split("## How claims are judged")[0]  # no arm flagged
    lim = md[md.index("## Limits of this testbed"):]
    assert "synthetic caption-shapes dataset at 64 px with small models" in lim
    assert "not comparable to CUB/COCO" in lim and "unknown beyond its abstract" in lim
    fig = tmp_path / "demo" / "figures" / "study_metrics.png"
    assert out["figure"] == fig and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](figures/study_metrics.png)" in md
    assert not list((tmp_path / "demo").glob(".*.tmp"))  # atomic write leaves no temporary file


def test_write_study_flags_arms_at_chance_at_the_top(tmp_path):
    recs = _with_attributes(_ablation(), {"baseline": 0.20, "f2f": 0.19, "f2r": 0.21, "both": 0.18})
    _write(tmp_path / "metrics", recs)
    out = study.write_study(tmp_path / "metrics", tmp_path / "study.md")
    md = (tmp_path / "study.md").read_text()
    top = md.split("## How claims are judged")[0]
    assert "**Every arm is at chance on the text conditioning**" in top and "SSA-GAN f2r (21.0 %)" in top
    for letter in "abc":
        assert "**SSA-GAN: not testable**" in _section(md, letter)
    assert "contradicts the paper" not in md and out["figure"] is None


def test_write_study_inconclusive_with_two_seeds(tmp_path):
    _write(tmp_path / "metrics", _ablation(seeds=(0, 1)))
    study.write_study(tmp_path / "metrics", tmp_path / "study.md")
    md = (tmp_path / "study.md").read_text()
    for letter in "abc":
        assert "**SSA-GAN: inconclusive**" in _section(md, letter)
    assert "contradicts the paper" not in md and "**SSA-GAN: supported**" not in md


def test_write_study_refuses_empty_or_mixed(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        study.write_study(tmp_path / "empty", tmp_path / "s.md")
    recs = _ablation()
    recs[0] = dict(recs[0], dataset="cub")
    _write(tmp_path / "mixed", recs)
    with pytest.raises(ValueError, match="mix"):
        study.write_study(tmp_path / "mixed", tmp_path / "s.md")


def test_setup_names_schedule_and_training_time_from_the_run_summaries(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "summary.json").write_text(json.dumps({"steps": 140, "wall_seconds": 180.0,
                                                                      "device": "cpu"}))
    recs = []
    for seed in (0, 1, 2):
        r = _rec("ssagan", "baseline", seed)
        r["config"] = {"train": {"max_steps": 140, "batch_size": 16, "f2f_pairing": "split"},
                       "model": {"ngf": 8, "ndf": 8}}
        r["train_summary"] = "runs/a/summary.json" if seed == 0 else str(tmp_path / "missing.json")
        r["_file"] = str(tmp_path / "metrics" / f"x{seed}.json")  # relative paths: from the results directory
        recs.append(r)
    # seed 2: written by today's evaluation, which keeps the training time in the metrics file (no run folder needed)
    recs[2]["training"] = {"wall_seconds": 60.0, "device": "cpu", "steps": 140}
    lines = study._training_lines(recs)
    assert lines[0] == ("- training schedule per model: SSA-GAN: 140 steps, batch 16, ngf/ndf 8/8, 16 images x 1 "
                        "caption per step (the reference's single-caption baseline)")
    assert lines[1] == ("- training time summed over 2 runs: 4.0 min on cpu (recorded in the metrics files, or read "
                        "from the runs' summary.json where a run folder is here); 1 of 3 runs record no training time "
                        "(metrics written before it was recorded, run folder absent)")
    # nothing recorded: said, not summed to zero
    assert study._training_lines([_rec("ssagan", "baseline", 0)]) == [
        "- training time: not recorded (metrics written before it was recorded, run folders absent)"]


def test_setup_reads_attribute_accuracy_against_classifier_and_pooled_chance():
    r = _rec("ssagan", "baseline", 0)
    r["protocol"]["attribute_classifier"] = {"heads": {"shape": 4, "colour": 10}, "real_test_accuracy_mean": 0.9}
    # older files: chance = (1/4 + 1/10) / 2 = 17.5 %, the plain mean over heads
    assert study._attribute_lines([r]) == ["- attribute classifier (trained on real images): 90.0 % on real test "
                                           "images; chance 17.5 % (uniform over the classes of each head: shape 4, "
                                           "colour 10)"]
    r["metrics"]["attribute_accuracy_chance"] = 0.186  # pooled over the checks, as the metric is
    assert "chance 18.6 % (pooled over the individual checks" in study._attribute_lines([r])[0]
    assert study._attribute_lines([_rec("ssagan", "baseline", 0)]) == []
    # metrics files from two trainings of the classifier: both accuracies shown, and the caveat
    r2 = _rec("ssagan", "f2f", 0)
    r2["protocol"]["attribute_classifier"] = {"heads": {"shape": 4, "colour": 10}, "real_test_accuracy_mean": 0.95}
    two = study._attribute_lines([r, r2])[0]
    assert "90.0 / 95.0 % (the metrics files come from 2 trainings" in two and "not strictly comparable" in two


def test_setup_states_the_batch_structure_and_noise_of_every_arm():
    from t2i_lib import config as C
    from t2i_lib.report.study import arm_batches

    demo = arm_batches(C.resolve("ssagan_f2r", "demo").to_dict())
    assert demo.startswith("8 images x 2 different captions") and "every fake its own noise" in demo
    assert "the same batches and noise in every arm" in demo
    assert arm_batches(C.resolve("ssagan_baseline1cap", "demo").to_dict()).startswith("16 images x 1 caption")
    shared = arm_batches(C.resolve("attngan_f2f", "paper", {"train.pair_noise": "per_image"}).to_dict())
    assert shared.startswith("20 images x 2") and "share their noise" in shared


def test_measurement_cells_never_print_negative_zero():
    from t2i_lib.report.study import _cell

    assert _cell({"n": 1, "mean": -1e-5, "std": None}, 1.0, 3) == "0.000 (n=1)"
    assert _cell({"n": 3, "mean": -0.25, "std": 1e-6}, 1.0, 2) == "-0.25 ± 0.00"
    assert _cell({"n": 0, "mean": None, "std": None}, 1.0, 2) == "n/a"


def test_metrics_figure_draws_spread_only_with_seeds_and_the_chance_line():
    from matplotlib.container import ErrorbarContainer

    one = study.aggregate([_rec("ssagan", v, 0, fid=10.0, attribute_accuracy=0.6) for v in ("baseline", "f2f")])
    fig = study.metrics_figure(one, metrics=("fid", "attribute_accuracy"), chance={"attribute_accuracy": 0.185})
    assert not any(isinstance(c, ErrorbarContainer) for ax in fig.axes for c in ax.containers)  # n = 1: no spread
    assert [ln.get_ydata()[0] for ln in fig.axes[1].get_lines()] == [0.185] and not fig.axes[0].get_lines()
    two = study.aggregate([_rec("ssagan", "baseline", s, fid=10.0 + s, attribute_accuracy=0.6) for s in (0, 1)])
    fig = study.metrics_figure(two, metrics=("fid",))
    assert sum(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers) == 1


def test_num_prints_floating_point_noise_as_zero():
    # a paired mean of differences that cancel exactly in real arithmetic comes out as a tiny non-zero float
    noise = sum([0.0425, -0.0200, -0.0225]) / 3
    assert noise != 0.0 and abs(noise) < 1e-12
    assert study._num(noise) == "0.0000"
    assert study._num(-noise) == "0.0000"
    assert study._num(0.00012341) == "0.0001234"
    assert study._num(-0.0362) == "-0.0362"
    assert study._num(12345.678) == "1.235e+04"


def test_setup_names_which_family_uses_which_encoder_when_they_differ():
    def with_encoders(rec, train, judge):
        rec["protocol"]["damsm_encoder"] = {"path": train}
        rec["protocol"]["judge_encoder"] = {"path": judge}
        return rec

    recs = [with_encoders(_rec("ssagan", "baseline", 0), "runs/a/best.pt", "runs/j/best.pt"),
            with_encoders(_rec("attngan", "baseline", 0), "runs/a/best.pt", "runs/j/best.pt")]
    line = next(l for l in study._setup_lines(recs, study.aggregate(recs), "", "") if "DAMSM encoders" in l)
    assert line == ("- DAMSM encoders (paths relative to the results directory): training encoder (the GAN's; the "
                    "paper's protocol): `runs/a/best.pt`; evaluation encoder (held out: own seed, selected on a "
                    "validation split): `runs/j/best.pt`")
    recs.append(with_encoders(_rec("style_attngan", "f2f", 0), "runs/a/best.pt", "runs/j/best.pt"))
    recs[0] = with_encoders(recs[0], "runs/b/best.pt", "runs/k/best.pt")  # SSA-GAN on its own pair
    line = next(l for l in study._setup_lines(recs, study.aggregate(recs), "", "") if "DAMSM encoders" in l)
    assert ("training encoder (the GAN's; the paper's protocol): `runs/a/best.pt` (AttnGAN, AttnGAN + style "
            "blocks), `runs/b/best.pt` (SSA-GAN); evaluation encoder") in line
    assert line.endswith("`runs/j/best.pt` (AttnGAN, AttnGAN + style blocks), `runs/k/best.pt` (SSA-GAN)")


def test_one_encoder_path_with_two_versions_of_its_weights_is_flagged_at_the_top(tmp_path):
    """A retrained encoder keeps its run id (the config is the same) but not always its weights: the study says so."""
    recs = []
    for seed in (0, 1, 2):
        for variant in ("baseline", "f2f"):
            r = _rec("ssagan", variant, seed)
            sha = "aa" * 32 if seed < 2 else "bb" * 32  # seed 2 trained after the encoder was retrained
            r["protocol"]["damsm_encoder"] = {"path": "runs/damsm_cl-demo-s0-x/best.pt", "sha256": sha}
            r["protocol"]["judge_encoder"] = {"path": "runs/damsm_cl-demo-s1-y/best.pt", "sha256": "cc" * 32}
            recs.append(r)
    md = study._encoder_versions_md(recs)
    assert md.startswith("> **One encoder, several versions of its weights**: training encoder "
                         "`runs/damsm_cl-demo-s0-x/best.pt`: weights aaaaaaaaaaaa (SSA-GAN baseline s0, SSA-GAN "
                         "baseline s1, SSA-GAN f2f s0, SSA-GAN f2f s1); weights bbbbbbbbbbbb (SSA-GAN baseline s2, "
                         "SSA-GAN f2f s2).")
    assert "evaluation encoder" not in md  # one version of the judge: not flagged
    _write(tmp_path / "metrics", recs)
    text = study.write_study(tmp_path / "metrics", tmp_path / "study.md")["study_md"]
    head = open(text).read().split("## How claims are judged")[0]
    assert "One encoder, several versions of its weights" in head
    for r in recs:
        r["protocol"]["damsm_encoder"]["sha256"] = "aa" * 32
    assert study._encoder_versions_md(recs) == ""
