"""The human-evaluation study page in a real browser: Debian's headless Chromium driven through Playwright.

Opens the built page from file://, answers every trial with the keyboard (reloading midway: the page must
resume where it stopped), downloads the answers and feeds them to the analysis; checks that no request leaves
the machine, that no arm name reaches the DOM, and that the page's seeded schedule is the one the analysis
checks files against.  Keeps screenshots at 1280x720 and at a phone's size under results/smoke/human_eval/.
"""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest

from t2i_lib import paths
from t2i_lib.report import human_eval as H
from t2i_lib.utils import browser

ARMS = ["arm_alpha_secret", "arm_beta_secret"]


def test_study_page_keyboard_reload_resume_download_and_analysis(tmp_path):
    reason = browser.skip_reason()
    if reason:
        pytest.skip(f"the study page needs a real browser: {reason}")

    out = tmp_path / "human_eval"
    key = H.build_study(H.toy_material(ARMS, n_items=3, size=32, seed=1), out, seed=3, n_attention=2)
    n = len(key["trials"])
    assert n == 3 * 1 * 2 + 2
    by_id = {t["id"]: t for t in key["trials"]}
    spec = json.loads((out / "study" / "index.html").read_text().split('type="application/json">')[1]
                      .split("</script>")[0].replace("<\\/", "</"))
    page_trials = {t["id"]: t for t in spec["trials"]}
    rater = "rater-07"
    schedule = H.rater_schedule(key["version"], rater, [t["id"] for t in key["trials"]])
    url = (out / "study" / "index.html").resolve().as_uri()

    requests, leaked = [], []

    def route(r):
        requests.append(r.request.url)
        if urlparse(r.request.url).scheme in ("file", "blob", "data"):
            r.continue_()
        else:
            leaked.append(r.request.url)
            r.abort()

    seen, keys_used = [], []
    with browser.launch_chromium() as chromium:
        ctx = chromium.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
        ctx.route("**/*", route)
        page = ctx.new_page()
        page.goto(url)
        assert page.is_visible("#intro") and not page.is_visible("#trial")
        page.fill("#rater-id", "bad id!")
        page.click("#start")
        assert "letters" in page.inner_text("#rater-error") and page.is_visible("#intro")
        page.fill("#rater-id", rater)
        page.press("#rater-id", "Enter")
        for k in range(n):
            if k == n // 2:  # reload midway: the page resumes at the next unanswered trial
                page.reload()
                assert page.is_visible("#trial")
                assert page.inner_text("#progress-text") == f"Trial {k + 1} of {n}"
                assert "Welcome back" in page.inner_text("#status")
            assert page.inner_text("#progress-text") == f"Trial {k + 1} of {n}"
            assert page.get_attribute("#progress", "value") == str(k)
            html = page.content()
            assert not any(a in html for a in ARMS), "an arm name reached the DOM"
            tid = page.get_attribute("#trial", "data-trial-id")
            seen.append(tid)
            step = schedule[k]
            assert tid == step["trial"]
            left_srcs = page.eval_on_selector_all("#imgs-left img", "els => els.map(e => e.getAttribute('src'))")
            assert left_srcs == page_trials[tid]["options"][step["shown"][0]]
            alts = page.eval_on_selector_all("#trial img", "els => els.map(e => e.alt)")
            assert alts and all(a.strip() for a in alts)
            t = by_id[tid]
            want = t["correct"] if t["attention"] else ("a" if t["options"]["a"] == ARMS[0] else "b")
            if k == 1 and not t["attention"]:
                key_name = "ArrowDown"  # one "can't tell"
            else:
                side = "left" if step["shown"][0] == want else "right"
                key_name = {"left": ["ArrowLeft", "1"], "right": ["ArrowRight", "2"]}[side][k % 2]
            keys_used.append(key_name)
            page.keyboard.press(key_name)
        assert page.is_visible("#done") and page.inner_text("#progress-text") == f"All {n} trials answered"
        with page.expect_download() as dl:
            page.click("#download")
        ans_path = out / "answers" / dl.value.suggested_filename
        dl.value.save_as(ans_path)
        ctx.close()
    assert seen == [s["trial"] for s in schedule]  # the page's order is the Python schedule for this rater
    assert requests and not leaked, f"requests left the machine: {leaked}"
    assert all(urlparse(u).scheme in ("file", "blob", "data") for u in requests)

    doc = json.loads(ans_path.read_text())
    assert doc["rater_id"] == rater and doc["study_version"] == key["version"] and doc["complete"]
    assert [a["trial"] for a in doc["answers"]] == seen
    assert all(a["rt_ms"] >= 0 for a in doc["answers"])
    res = H.analyse(key, [ans_path])
    assert res["included_raters"] == [rater] and not res["excluded_raters"] and not res["refused"]
    assert res["raters"][0]["attention_correct"] == 2
    ties = 1 if keys_used[1] == "ArrowDown" else 0
    allrow = next(r for r in res["pairwise"] if r["kind"] == "all")
    assert allrow["arm_a"] == ARMS[0] and allrow["wins_a"] == 6 - ties and allrow["wins_b"] == 0
    assert allrow["cant_tell"] == ties and allrow["win_rate_a"] == 1.0

    shots = H.screenshots(out / "study", paths.profile_dir("smoke") / "human_eval")
    from PIL import Image

    for name, (w, h) in H.VIEWPORTS.items():
        p = shots[name]
        assert p.parent == paths.profile_dir("smoke") / "human_eval"
        assert Image.open(p).size == (w, h) and p.stat().st_size < 200_000
