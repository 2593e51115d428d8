"""The HTML reports as a reader sees them: rendered in headless Chromium (t2i_lib.utils.browser).

The checker (browser.check_report) is shown once to fail on a deliberately broken report; then every report of the
session's smoke run (conftest.smoke_results, shared with test_end_to_end.py) must come out clean.  Without a
headless Chromium the tests skip with the command that installs it."""

import base64
import io

import pytest

from conftest import PROJECT_ROOT as ROOT
from t2i_lib import paths
from t2i_lib.utils import browser

needs_browser = pytest.mark.skipif(browser.skip_reason() is not None, reason=str(browser.skip_reason()))


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


def test_render_writes_the_machine_paths_relative(tmp_path):
    import nbformat

    from t2i_lib.report import render

    results = tmp_path / "res"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"Inputs in `{results}/metrics`, cache {ROOT}/cache."),
                nbformat.v4.new_code_cell(f'RESULTS_DIR = "{results}"', outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text=f"wrote {results}/figures/a.png\n"),
                    nbformat.v4.new_output("display_data", data={
                        "text/markdown": f"table from {results}/tables/m.md (`{results}/tables`)", "text/plain": "x"}),
                    nbformat.v4.new_output("display_data", data={
                        "text/html": f"<p>weights {ROOT}/cache/w.pth</p>", "text/plain": "x"})])]
    nbformat.write(nb, tmp_path / "05_x.ipynb")
    html = render.render(tmp_path / "05_x.ipynb", tmp_path / "reports", results).read_text()
    assert str(results) not in html and str(ROOT) not in html
    assert "<code>&lt;results&gt;/metrics</code>" in html and "&lt;repo&gt;/cache/w.pth" in html
    assert "wrote &lt;results&gt;/figures/a.png" in html and "table from &lt;results&gt;/tables/m.md" in html
    assert "<script src=" not in html  # no require.js or MathJax to fetch
    inside = render.path_replacements(ROOT / "results" / "smoke")
    assert (str(ROOT / "results" / "smoke"), "results/smoke") in inside
    # the tests move the cache out of the repository (T2I_CACHE_DIR): it is shown as <cache>
    cache = str(paths.cache_root())
    assert (cache, "<cache>") in inside
    out = render._relative(f"weights {cache}/weights/w.pth", inside, "text/html")
    assert out == "weights &lt;cache&gt;/weights/w.pth"


@pytest.fixture(scope="module")
def chromium():
    with browser.launch_chromium() as b:
        yield b


@needs_browser
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


@needs_browser
@pytest.mark.slow
def test_smoke_reports_are_clean_in_a_browser(smoke_results, chromium):
    out, r, _ = smoke_results
    assert r.returncode == 0, r.stderr[-3000:]
    reports = sorted((out / "reports").glob("*.html"))
    assert len(reports) == 15
    problems = [p for html in reports
                for p in browser.check_report(chromium, html, forbidden=[str(ROOT), str(out)])]
    assert problems == [], "\n".join(problems)
