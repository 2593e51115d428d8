"""Human evaluation: the study folder, the per-rater schedule, the statistics, simulated raters and the refusals of
the answer-file loader (the page itself is driven in a browser by test_human_eval_browser.py)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from t2i_lib.report import human_eval as H

ARMS3 = ["ssagan_baseline", "ssagan_f2f", "ssagan_both"]


@pytest.fixture(scope="module")
def study3(tmp_path_factory):
    out = tmp_path_factory.mktemp("he") / "human_eval"
    key = H.build_study(H.toy_material(ARMS3, n_items=8, size=16, seed=0), out, seed=0, n_attention=4)
    return out, key


def test_study_folder_is_blinded_self_contained_and_reproducible(study3, tmp_path):
    out, key = study3
    assert len(key["trials"]) == 8 * 3 * 2 + 4  # items x pairs of arms x kinds + attention checks
    assert sum(t["attention"] for t in key["trials"]) == 4
    assert {t["kind"] for t in key["trials"] if t["attention"]} == set(H.KINDS)
    html = (out / "study" / "index.html").read_text()
    for arm in ARMS3 + ["ssagan", "baseline", "f2f", "both"]:
        assert arm not in html, arm
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html), "the page refers to the network"
    assert "http://" not in html and "https://" not in html
    srcs = set(re.findall(r"images/[0-9a-f]{20}\.png", html))
    assert srcs and all((out / "study" / s).is_file() for s in srcs)
    assert all(re.fullmatch(r"t[0-9a-f]{10}", t["id"]) for t in key["trials"])
    assert len({t["id"] for t in key["trials"]}) == len(key["trials"])
    # option a is not always the same arm (the arm behind a/b is drawn per trial)
    assert len({t["options"]["a"] for t in key["trials"] if not t["attention"]}) == 3
    assert f'content="{key["version"]}"' in html and not (out / "study" / "study_key.json").exists()
    # identical inputs: identical page; other images: another version
    again = H.build_study(H.toy_material(ARMS3, n_items=8, size=16, seed=0), tmp_path / "a", seed=0, n_attention=4)
    assert again["version"] == key["version"]
    assert (tmp_path / "a" / "study" / "index.html").read_text() == html
    other = H.build_study(H.toy_material(ARMS3, n_items=8, size=16, seed=1), tmp_path / "a", seed=0, n_attention=4)
    assert other["version"] != key["version"]
    # a study with collected answers is not silently replaced by another version
    (tmp_path / "a" / "answers" / "r1.json").write_text("{}")
    with pytest.raises(H.StudyError, match="answer file"):
        H.build_study(H.toy_material(ARMS3, n_items=8, size=16, seed=0), tmp_path / "a", seed=0, n_attention=4)
    H.build_study(H.toy_material(ARMS3, n_items=8, size=16, seed=0), tmp_path / "a", seed=0, force=True)


def test_rater_schedule_is_a_seeded_permutation_per_rater():
    ids = [f"t{i:02d}" for i in range(30)]
    s1 = H.rater_schedule("abc", "r1", ids)
    assert s1 == H.rater_schedule("abc", "r1", ids)
    assert sorted(s["trial"] for s in s1) == ids and [s["position"] for s in s1] == list(range(30))
    assert {tuple(s["shown"]) for s in s1} == {("a", "b"), ("b", "a")}
    assert [s["trial"] for s in H.rater_schedule("abc", "r2", ids)] != [s["trial"] for s in s1]
    assert [s["trial"] for s in H.rater_schedule("abd", "r1", ids)] != [s["trial"] for s in s1]
    lefts = [s["shown"][0] for r in range(40) for s in H.rater_schedule("v", f"r{r}", ids)]
    assert 0.45 < lefts.count("a") / len(lefts) < 0.55
    # 32-bit arithmetic pinned (the page's JavaScript reproduces these; the browser test checks the whole order)
    assert H._fnv1a32("") == 0x811C9DC5 and H._fnv1a32("a") == 0xE40C292C


def test_wilson_and_binomial_hand_values():
    lo, hi = H.wilson_interval(7, 10)
    assert lo == pytest.approx(0.3968, abs=1e-4) and hi == pytest.approx(0.8922, abs=1e-4)
    assert H.wilson_interval(0, 10)[0] == pytest.approx(0.0) and H.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(np.isnan(H.wilson_interval(0, 0)))
    assert H.binomial_two_sided(2, 10) == pytest.approx(112 / 1024)
    assert H.binomial_two_sided(8, 10) == pytest.approx(112 / 1024)
    assert H.binomial_two_sided(5, 10) == 1.0 and H.binomial_two_sided(0, 0) == 1.0
    assert H.binomial_two_sided(0, 1) == 1.0 and H.binomial_two_sided(0, 5) == pytest.approx(2 / 32)


def test_fleiss_kappa_and_krippendorff_alpha_textbook_examples():
    # Fleiss (1971) as worked in the usual textbook example: 10 items, 14 raters, 5 categories -> 0.210
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert H.fleiss_kappa(counts) == pytest.approx(0.2099, abs=1e-3)
    with pytest.raises(ValueError):
        H.fleiss_kappa(np.array([[1, 1], [2, 1]]))
    # Krippendorff (2011), 4 coders x 12 units with missing values, nominal -> 0.743
    c = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
         [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[row[u] for row in c if row[u] is not None] for u in range(12)]
    assert H.krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=1e-3)
    assert H.krippendorff_alpha_nominal([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert np.isnan(H.krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]))


def test_bradley_terry_recovers_pairwise_probabilities():
    bt = H.bradley_terry(np.array([[0, 30], [10, 0]]), ["x", "y"], prior=0)
    assert bt["p_beats"]["x"]["y"] == pytest.approx(0.75, abs=1e-6) and bt["ranking"] == ["x", "y"]
    s = np.array([4.0, 2.0, 1.0])
    p = s[:, None] / (s[:, None] + s[None, :])
    wins = np.round(1000 * p) * (1 - np.eye(3))
    bt = H.bradley_terry(wins, ["a", "b", "c"], prior=0)
    assert bt["ranking"] == ["a", "b", "c"]
    ls = bt["log_strength"]
    assert ls["a"] - ls["b"] == pytest.approx(np.log(2), abs=0.01) and ls["b"] - ls["c"] == pytest.approx(np.log(2),
                                                                                                           abs=0.01)
    bt0 = H.bradley_terry(np.array([[0, 5, 0], [0, 0, 5], [0, 0, 0]]), ["a", "b", "c"])  # b never wins vs a: finite
    assert all(np.isfinite(list(bt0["log_strength"].values()))) and bt0["ranking"] == ["a", "b", "c"]


def test_simulated_raters_preference_is_recovered_and_inattentive_raters_excluded(study3, tmp_path):
    out, key = study3
    scores = {"ssagan_baseline": 0.2, "ssagan_f2f": 0.5, "ssagan_both": 0.9}
    truth = H.simulate_answers(key, tmp_path / "sim", n_raters=20, p=0.7, arm_scores=scores,
                               attention_fail_rate=0.2, tie_rate=0.1, seed=4)
    assert len(truth["inattentive"]) == 4 and (tmp_path / "simulation_truth.json").is_file()
    res = H.analyse(key, sorted((tmp_path / "sim").glob("*.json")), source="simulated")
    excluded = {r["rater_id"] for r in res["excluded_raters"]}
    assert excluded and excluded <= set(truth["inattentive"])  # every attentive rater passes
    assert set(res["included_raters"]) >= {r["rater_id"] for r in truth["raters"] if r["attentive"]}
    assert all("attention checks" in r["reason"] for r in res["excluded_raters"])
    # The seeds are fixed, but the page's version (a hash of its assets) seeds each rater's schedule, so any edit
    # of the page redraws these answers: the checks below should fail for about 1 draw in 100 (1 of 20 redraws did).
    covered = 0
    for r in res["pairwise"]:
        if r["kind"] == "all":
            want = 0.7 if scores[r["arm_a"]] > scores[r["arm_b"]] else 0.3
            lo, hi = r["ci95"]
            covered += lo <= want <= hi
            lo999, hi999 = H.wilson_interval(r["wins_a"], r["n"], z=3.29)
            assert lo999 <= want <= hi999, r
            assert r["p_value"] < 0.01 and r["cant_tell"] > 0
    assert covered >= 2  # each 95 % interval covers p with probability 0.95
    checks = H.simulation_check(res, truth)
    assert len(checks) == 3 and sum(c["covered"] for c in checks) == covered
    assert res["bradley_terry"]["all"]["ranking"] == ["ssagan_both", "ssagan_f2f", "ssagan_baseline"]
    ag = res["agreement"]
    assert ag["n_units"] == 48 and 0 < ag["krippendorff_alpha_nominal"] < 0.5  # p = 0.7: weak agreement
    # no preference: win rates near 0.5, intervals cover it
    H.simulate_answers(key, tmp_path / "flat", n_raters=12, p=0.5, attention_fail_rate=0, seed=5)
    flat = H.analyse(key, sorted((tmp_path / "flat").glob("*.json")))
    assert not flat["excluded_raters"]
    assert all(H.wilson_interval(r["wins_a"], r["n"], z=3.29)[0] <= 0.5 <= H.wilson_interval(r["wins_a"], r["n"],
                                                                                               z=3.29)[1]
               for r in flat["pairwise"])


def _one(key, tmp_path, name="r.json", **kw):
    H.simulate_answers(key, tmp_path / "one", n_raters=1, attention_fail_rate=0, seed=kw.pop("seed", 0))
    doc = json.loads(next((tmp_path / "one").glob("*.json")).read_text())
    doc.update(kw)
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p, doc


def test_loader_refuses_malformed_duplicated_and_foreign_files(study3, tmp_path):
    out, key = study3
    good, doc = _one(key, tmp_path, "good.json")
    copy = tmp_path / "x_copy.json"  # sorted after good.json: the later one is refused
    shutil.copy(good, copy)
    same_rater = tmp_path / "same_rater.json"
    d2 = json.loads(good.read_text())
    d2["answers"] = d2["answers"][:5]
    same_rater.write_text(json.dumps(d2))
    foreign, _ = _one(key, tmp_path, "foreign.json", study_version="0123456789abcdef")
    notjson = tmp_path / "notjson.json"
    notjson.write_text("{not json")
    other_fmt, _ = _one(key, tmp_path, "fmt.json", format="something-else/1")
    edited_p, edited = _one(key, tmp_path, "edited.json", seed=2)  # another rater; one answer's sides swapped
    edited["answers"][0]["shown"] = edited["answers"][0]["shown"][::-1]
    edited_p.write_text(json.dumps(edited))
    twice_p, twice = _one(key, tmp_path, "twice.json", seed=3)
    twice["answers"].append(twice["answers"][0])
    twice_p.write_text(json.dumps(twice))
    badrt = json.loads(good.read_text())
    badrt["rater_id"] = "bad rater id"
    badrt_p = tmp_path / "badid.json"
    badrt_p.write_text(json.dumps(badrt))
    files = [good, copy, same_rater, foreign, notjson, other_fmt, edited_p, twice_p, badrt_p]
    with pytest.raises(H.AnswerFileError) as e:
        H.load_answers(files, key)
    msg = str(e.value)
    assert "8 answer file(s) refused" in msg
    for name, why in [("x_copy.json", "duplicated: identical"), ("same_rater.json", "duplicated: rater"),
                      ("foreign.json", "foreign"), ("notjson.json", "not JSON"), ("fmt.json", "format"),
                      ("edited.json", "schedule"), ("twice.json", "answered twice"), ("badid.json", "rater_id")]:
        line = next(l for l in msg.splitlines() if l.strip().startswith(str(tmp_path / name)))
        assert why in line, (name, line)
    accepted, refused = H.load_answers(files, key, strict=False)
    assert [a["file"] for a in accepted] == [str(good)] and len(refused) == 8
    res = H.analyse(key, files, strict=False)
    assert len(res["refused"]) == 8 and res["included_raters"] == [doc["rater_id"]]
    assert "8 file(s) refused" in H.summary_markdown(res)


def test_partial_file_is_kept_and_a_failed_attention_check_excludes(study3, tmp_path):
    out, key = study3
    good, doc = _one(key, tmp_path, "good.json")
    doc["answers"] = doc["answers"][:10]
    part = tmp_path / "part.json"
    part.write_text(json.dumps(doc))
    acc, _ = H.load_answers([part], key)
    assert acc[0]["complete"] is False and len(acc[0]["answers"]) == 10
    by_id = {t["id"]: t for t in key["trials"]}
    sleepy, d = _one(key, tmp_path, "sleepy.json", seed=6)
    n_wrong = 0
    for a in d["answers"]:
        if by_id[a["trial"]]["attention"] and n_wrong < 2:
            a["answer"] = "right" if a["answer"] == "left" else "left"
            a["chosen"] = a["shown"][0] if a["answer"] == "left" else a["shown"][1]
            n_wrong += 1
    sleepy.write_text(json.dumps(d))
    res = H.analyse(key, [good, sleepy])
    assert res["included_raters"] == [doc["rater_id"]]
    assert res["excluded_raters"] == [{"rater_id": d["rater_id"], "reason": "attention checks 2/4 correct (< 75%)"}]


def test_run_analysis_prefers_real_answers_and_writes_products(study3, tmp_path):
    out, key = study3
    work = tmp_path / "study"
    shutil.copytree(out, work)
    with pytest.raises(H.AnswerFileError, match="no answer files"):
        H.run_analysis(work)
    H.simulate_answers(key, work / "simulated", n_raters=6, attention_fail_rate=0, seed=1)
    res = H.run_analysis(work)
    assert res["source"] == "simulated" and res["simulation"]["n_raters"] == 6
    saved = json.loads((work / "results.json").read_text())
    assert saved["format"] == H.RESULTS_FORMAT and saved["study_version"] == key["version"]
    md = (work / "summary.md").read_text()
    assert "simulated raters" in md and "Bradley-Terry" in md and "| consistency |" in md
    assert (work / "human_eval.png").stat().st_size > 1000
    good, _ = _one(key, tmp_path, "real.json", seed=9)
    shutil.copy(good, work / "answers" / "real.json")
    res = H.run_analysis(work)
    assert res["source"] == "answers" and len(res["included_raters"]) == 1 and "simulation" not in res


def test_ensure_study_keeps_a_study_that_has_answers(study3, tmp_path):
    from types import SimpleNamespace

    out, key = study3
    work = tmp_path / "kept"
    shutil.copytree(out, work)
    good, _ = _one(key, tmp_path, "r.json", seed=2)
    shutil.copy(good, work / "answers" / "r.json")
    cfgs = [SimpleNamespace(experiment=a) for a in ARMS3]
    kept = H.ensure_study(cfgs, None, None, work)  # nothing sampled: the runs are not even needed
    assert kept["version"] == key["version"]
    with pytest.raises(H.StudyError, match="arms"):
        H.ensure_study(cfgs[:2], None, None, work)
