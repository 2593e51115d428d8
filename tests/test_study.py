"""The study report: aggregation over seeds, paired differences, the t-test, claim verdicts and study.md."""

import json
import math

import pytest

from t2i_lib.report import study


def _rec(family, variant, seed, **metrics):
    base = {"fid": 20.0, "kid_mean": 0.01, "kid_std": 0.001, "is_mean": None, "is_std": None,
            "is_unavailable_reason": "offline", "r_precision": 0.5, "r_precision_std": 0.02,
            "consistency_gap_damsm": 0.1, "sibling_sim_damsm": 0.6, "unrelated_sim_damsm": 0.5,
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


# ---------------------------------------------------------------------------------------------------- verdicts


def _ablation(seeds=(0, 1, 2)):
    """SSA-GAN, 4 variants: f2f clearly raises both consistency gaps, f2r clearly worsens FID and KID."""
    noise = [0.0, 1.0, -1.0, 0.5, -0.5]
    recs = []
    for s in seeds:
        e = noise[s % len(noise)]
        base = dict(fid=20.0 + e, kid_mean=0.010 + 0.001 * e, consistency_gap_damsm=0.10 + 0.01 * e,
                    consistency_gap_inception=0.020 + 0.001 * e, r_precision=0.5 + 0.01 * e)
        recs.append(_rec("ssagan", "baseline", s, **base))
        f2f = dict(base, consistency_gap_damsm=base["consistency_gap_damsm"] + 0.10 + 0.005 * (s % 3),
                   consistency_gap_inception=base["consistency_gap_inception"] + 0.010 + 0.0005 * (s % 3))
        recs.append(_rec("ssagan", "f2f", s, **f2f))
        f2r = dict(base, fid=base["fid"] + 10.0 + (s % 3), kid_mean=base["kid_mean"] + 0.005 + 0.0005 * (s % 3))
        recs.append(_rec("ssagan", "f2r", s, **f2r))
        recs.append(_rec("ssagan", "both", s, fid=base["fid"] + 0.3 * e * e - 0.1,
                         consistency_gap_damsm=f2f["consistency_gap_damsm"] + 0.02 * e, r_precision=0.52))
    return recs


def test_judge_verdicts():
    v = {(e["claim"], e["family"]): e for e in study.judge(_ablation())}
    assert v[("f2f_consistency", "ssagan")]["verdict"] == "supported"
    assert [t["verdict"] for t in v[("f2f_consistency", "ssagan")]["tests"]] == ["supported", "supported"]
    f2r = v[("f2r_distribution", "ssagan")]
    assert f2r["verdict"] == "contradicted" and all(t["mean"] > 0 for t in f2r["tests"])
    assert v[("style_detail", "style_attngan")]["verdict"] == "not measured"
    assert len(v[("both_beat_each", "ssagan")]["tests"]) == 4  # 2 comparisons x (FID, consistency gap)


def test_style_claim_with_attngan_runs():
    recs = [_rec("attngan", "baseline", s, fid=30.0 + s, attribute_accuracy=0.5 + 0.01 * s) for s in range(3)]
    recs += [_rec("style_attngan", "baseline", s, fid=20.0 + 2 * s, attribute_accuracy=0.7 + 0.02 * s)
             for s in range(3)]
    e = next(e for e in study.judge(recs) if e["claim"] == "style_detail")
    assert e["family"] == "style_attngan" and e["verdict"] == "supported"
    assert [t["comparison"] for t in e["tests"]][0].startswith("AttnGAN + style blocks baseline vs AttnGAN")
    # A reference family with baseline runs only is not part of the loss ablation: no rows for claims (a)-(c).
    both = recs + [_rec("style_attngan", "f2f", s) for s in range(3)]
    fams = {(e["claim"], e["family"]) for e in study.judge(both)}
    assert ("f2f_consistency", "style_attngan") in fams and ("f2f_consistency", "attngan") not in fams


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
    _write(tmp_path / "metrics", _ablation())
    out = study.write_study(tmp_path / "metrics", tmp_path / "demo" / "study.md", figures_dir=tmp_path / "figures",
                            device_note="CPU, 2 cores", wall_time_note="3 h 10 min")
    md = (tmp_path / "demo" / "study.md").read_text()
    # Table of mean ± std: SSA-GAN baseline FID 20, 21, 19 -> 20.00 ± 1.00.
    assert "| model | variant | seeds | FID |" in md
    assert "| SSA-GAN | baseline | 0,1,2 | 20.00 ± 1.00 |" in md
    for v in ("baseline", "f2r", "f2f", "both"):
        assert f"| SSA-GAN | {v} | 0,1,2 |" in md
    for c in study.CLAIMS:
        assert f"## Claim ({c.letter}): {c.text}" in md
    assert "**SSA-GAN: supported**" in _section(md, "a")
    assert "contradicts the paper" not in _section(md, "a")
    b = _section(md, "b")
    assert "**SSA-GAN: contradicted**" in b and "**contradicts the paper**" in b
    assert "**AttnGAN + style blocks: not measured**" in _section(md, "d")
    assert "## Setup" in md and "CPU, 2 cores" in md and "3 h 10 min" in md and "512" in md
    lim = md[md.index("## Limits of this testbed"):]
    assert "synthetic caption-shapes dataset at 64 px with small models" in lim
    assert "not comparable to CUB/COCO" in lim and "unknown beyond its abstract" in lim
    fig = tmp_path / "figures" / "study_metrics.png"
    assert out["figure"] == fig and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](../figures/study_metrics.png)" in md
    assert out["study_md"] == tmp_path / "demo" / "study.md"
    verdicts = {(e["claim"], e["family"]): e["verdict"] for e in out["verdicts"]}
    assert verdicts[("f2f_consistency", "ssagan")] == "supported"
    assert not list((tmp_path / "demo").glob(".*.tmp"))  # atomic write leaves no temporary file


def test_write_study_inconclusive_with_two_seeds_and_no_figure(tmp_path):
    _write(tmp_path / "metrics", _ablation(seeds=(0, 1)))
    out = study.write_study(tmp_path / "metrics", tmp_path / "study.md")
    md = (tmp_path / "study.md").read_text()
    assert out["figure"] is None and "study_metrics.png" not in md
    for letter in "abc":
        assert "**SSA-GAN: inconclusive**" in _section(md, letter)
    assert "contradicts the paper" not in md and "**SSA-GAN: supported**" not in md
    assert "| SSA-GAN | baseline | 0,1 |" in md


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
    summ = tmp_path / "summary.json"
    summ.write_text(json.dumps({"steps": 140, "wall_seconds": 180.0, "device": "cpu"}))
    recs = []
    for seed in (0, 1):
        r = _rec("ssagan", "baseline", seed)
        r["config"] = {"train": {"max_steps": 140, "batch_size": 16, "f2f_pairing": "split"},
                       "model": {"ngf": 8, "ndf": 8}}
        r["train_summary"] = str(summ if seed == 0 else tmp_path / "missing.json")
        recs.append(r)
    lines = study._training_lines(recs)
    assert lines[0] == ("- training schedule per model: SSA-GAN: 140 steps, batch 16, ngf/ndf 8/8, fake-to-fake "
                        "pairing split")
    assert lines[1] == "- training time summed over 1 run: 3.0 min on cpu (from the runs' summary.json)"
    assert study._training_lines([_rec("ssagan", "baseline", 0)]) == []  # nothing recorded, nothing claimed


def test_setup_reads_attribute_accuracy_against_classifier_and_chance():
    r = _rec("ssagan", "baseline", 0)
    r["protocol"]["attribute_classifier"] = {"heads": {"shape": 4, "colour": 10}, "real_test_accuracy_mean": 0.9}
    # chance = (1/4 + 1/10) / 2 = 17.5 %
    assert study._attribute_lines([r]) == ["- attribute classifier (trained on real images): 90.0 % on real test "
                                           "images; chance 17.5 % (uniform over the classes of each head: shape 4, "
                                           "colour 10)"]
    assert study._attribute_lines([_rec("ssagan", "baseline", 0)]) == []


def test_limits_warn_when_every_arm_is_at_chance_and_stay_silent_otherwise():
    def rec(variant, seed, attr, rp):
        r = _rec("ssagan", variant, seed, attribute_accuracy=attr, r_precision=rp)
        r["protocol"]["attribute_classifier"] = {"heads": {"shape": 4, "colour": 4}}  # chance 25 %
        r["protocol"]["r_precision"] = {"n_candidates": 100}  # chance 1 %
        return r

    at_chance = [rec("baseline", 0, 0.26, 0.02), rec("f2f", 0, 0.27, 0.025)]
    lines = study._learning_limits(at_chance)
    assert len(lines) == 1 and "not learned the text conditioning" in lines[0]
    assert "at most 27.0 % against a chance level of 25.0 %" in lines[0]
    assert "at most 2.5 % against a chance level of 1.0 %" in lines[0]
    assert "not learned" in study._limits(at_chance)
    learned = [rec("baseline", 0, 0.26, 0.02), rec("f2f", 0, 0.60, 0.40)]  # one arm well above chance
    assert study._learning_limits(learned) == []
