"""The HTML reports as a reader sees them: rendered in headless Chromium (t2i_lib.utils.browser).

The checker (browser.check_report) is shown once to fail on a deliberately broken report; then every report of the
session's smoke run (conftest.smoke_results, shared with test_end_to_end.py) must come out clean.  Without a
headless Chromium the tests skip with the command that installs it."""

import base64
import io

import pytest

from conftest import PROJECT_ROOT as ROOT
from t2i_lib.utils import browser

pytestmark = pytest.mark.skipif(browser.skip_reason() is not None, reason=str(browser.skip_reason()))


def _png(size=(300, 200), colour=(200, 30, 30), stripe=True) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.rectangle([size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4], fill=colour)
    if stripe:
        d.line([0, 0, size[0], size[1]], fill="black", width=max(1, size[0] // 30))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def chromium():
    with browser.launch_chromium() as b:
        yield b


def test_checker_fails_a_broken_report_and_passes_a_clean_one(tmp_path, chromium):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "ok.png").write_bytes(_png(colour=(30, 30, 200)))
    fig = _png()
    same_fig_smaller = _png(size=(270, 180))  # the inline copy of a figure next to its saved PNG
    clean = f"""<html><body><h1>Report</h1><p>saved to results/smoke/figures/ok.png</p>
        <img src="figures/ok.png" alt="a"><img src="{_data_uri(fig)}" alt="b">
        <img src="{_data_uri(_png(colour=(30, 160, 30), stripe=False))}" alt="c"></body></html>"""
    (tmp_path / "clean.html").write_text(clean)
    assert browser.check_report(chromium, tmp_path / "clean.html") == []

    broken = f"""<html><body><h1>Report</h1>
        <img src="../figures/ok.png" alt="wrong folder">
        <img src="http://example.com/logo.png" alt="remote">
        <img src="{_data_uri(fig)}" alt="fig"><img src="{_data_uri(same_fig_smaller)}" alt="fig again">
        <div class="jp-RenderedText" data-mime-type="application/vnd.jupyter.stderr"><pre>UserWarning: tight_layout
        </pre></div>
        <pre>Traceback (most recent call last):\n  File "x.py", line 1</pre>
        <p>wrote /tmp/run-1/figures/x.png and {ROOT}/notebooks</p></body></html>"""
    (tmp_path / "broken.html").write_text(broken)
    problems = browser.check_report(chromium, tmp_path / "broken.html", forbidden=[str(ROOT)])
    text = "\n".join(problems)
    assert "image does not load" in text and "ok.png" in text  # the link relative to the wrong folder
    assert "request leaves the machine: http://example.com/logo.png" in text
    assert "stderr block" in text and "tight_layout" in text
    assert "a Python traceback" in text
    assert "figure shown twice (images 3 and 4 of the page)" in text
    assert "'/tmp/run-1/figures/x.png'" in text and repr(str(ROOT)) in text
    assert all(p.startswith("broken.html: ") for p in problems)


@pytest.mark.slow
def test_smoke_reports_are_clean_in_a_browser(smoke_results, chromium):
    out, r, _ = smoke_results
    assert r.returncode == 0, r.stderr[-3000:]
    reports = sorted((out / "reports").glob("*.html"))
    assert len(reports) == 15
    problems = [p for html in reports
                for p in browser.check_report(chromium, html, forbidden=[str(ROOT), str(out)])]
    assert problems == [], "\n".join(problems)
