"""Headless Chromium for checks that need a real browser (HTML reports, the human-evaluation page).

One place finds the browser and launches it the same way for every caller:

    from t2i_lib.utils.browser import launch_chromium, BrowserUnavailable

    with launch_chromium() as browser:          # a Playwright ``Browser``; closed (and Playwright stopped) on exit
        page = browser.new_page()
        page.goto(Path("report.html").resolve().as_uri())

The browser is Debian's ``chromium-headless-shell`` (or ``chromium``), driven by the ``playwright`` Python package
pinned in ``requirements.txt``. Playwright's own browser downloads (``playwright install``) are never used:
``scripts/setup_env.sh`` installs the Debian package when it is missing and it runs as root. Set
``T2I_CHROMIUM=/path/to/chrome`` to use another executable.

When no browser can be found or started, :func:`launch_chromium` raises :class:`BrowserUnavailable` whose message
names the one command that installs it (:data:`INSTALL_HINT`); tests turn it into a skip with that message
(:func:`skip_reason` returns it without launching anything).

:func:`check_report` renders one HTML report (or any local page) and lists what a reader would find wrong: images
that do not load, requests that fail or leave the machine, stderr/warning blocks, tracebacks, a figure shown twice,
absolute paths of the machine.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote, urlparse

#: Executables tried in order when ``T2I_CHROMIUM`` is not set.
CANDIDATES = ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium", "chromium-headless-shell", "chromium")

#: Flags for a quiet, offline, container-friendly headless browser (root needs ``--no-sandbox``).
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run")

INSTALL_HINT = ("install the browser with: sudo apt-get install -y chromium-headless-shell "
                "(and the Python driver with: bash scripts/setup_env.sh)")


class BrowserUnavailable(RuntimeError):
    """No usable headless Chromium (or the ``playwright`` package) on this machine."""


def find_chromium() -> str | None:
    """Path of the Chromium executable to use, or None when there is none."""
    override = os.environ.get("T2I_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    for name in CANDIDATES:
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


def skip_reason() -> str | None:
    """Why a browser check cannot run here (missing package or executable), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing; " + INSTALL_HINT
    if find_chromium() is None:
        return "no headless Chromium found; " + INSTALL_HINT
    return None


@contextmanager
def launch_chromium(*, timeout_ms: float = 30_000) -> Iterator["object"]:
    """Start headless Chromium through Playwright; yield the ``Browser``; close both on exit.

    Raises :class:`BrowserUnavailable` (message: what is missing and the command that installs it) when the
    package or the executable is missing or the browser does not start.
    """
    reason = skip_reason()
    if reason:
        raise BrowserUnavailable(reason)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=find_chromium(), headless=True,
                                         args=list(CHROMIUM_ARGS), timeout=timeout_ms)
        except PlaywrightError as exc:
            raise BrowserUnavailable(f"headless Chromium at {find_chromium()} did not start ({exc}); "
                                     + INSTALL_HINT) from exc
        try:
            yield browser
        finally:
            browser.close()


#: Absolute paths that identify a machine (home folders, temporary folders), as they would appear in a report.
MACHINE_PATH = re.compile(r"(?<![\w.])(/home/|/root/|/tmp/|/Users/|/private/var/|/var/folders/|[A-Z]:\\Users\\)[\w./\\-]+")

_PAGE_FACTS = """() => ({
  images: Array.from(document.images).map(im => ({src: im.currentSrc || im.src, complete: im.complete,
                                                  width: im.naturalWidth, height: im.naturalHeight})),
  stderr: Array.from(document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
               .map(e => e.innerText.slice(0, 200)),
  text: document.body ? document.body.innerText : "",
})"""


def _image_bytes(src: str) -> bytes | None:
    if src.startswith("data:"):
        head, _, data = src.partition(",")
        return base64.b64decode(data) if head.endswith(";base64") else None
    url = urlparse(src)
    if url.scheme == "file":
        path = Path(unquote(url.path))
        return path.read_bytes() if path.is_file() else None
    return None


def _thumbnail(data: bytes, size: int = 48):
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    return img.width / img.height, np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32)


def duplicate_images(sources: Iterable[str], tolerance: float = 6.0) -> list[tuple[int, int]]:
    """Index pairs of images that show the same picture: same aspect ratio (within 3 %) and a mean absolute
    difference below ``tolerance`` (0-255) between 48x48 colour thumbnails -- a figure rendered twice at two
    resolutions (matplotlib's inline display next to the saved PNG) counts as a duplicate."""
    thumbs = []
    for src in sources:
        data = _image_bytes(src)
        try:
            thumbs.append(_thumbnail(data) if data else None)
        except OSError:
            thumbs.append(None)
    pairs = []
    for i in range(len(thumbs)):
        for j in range(i + 1, len(thumbs)):
            a, b = thumbs[i], thumbs[j]
            if a is None or b is None or abs(a[0] / b[0] - 1) > 0.03:
                continue
            if float(abs(a[1] - b[1]).mean()) < tolerance:
                pairs.append((i, j))
    return pairs


def check_report(browser, html: str | Path, forbidden: Iterable[str] = (), timeout_ms: float = 30_000) -> list[str]:
    """Open ``html`` (a local file) in ``browser`` (from :func:`launch_chromium`) and return the problems found, one
    line each (an empty list: the report is clean):

    - an image that does not load (``naturalWidth`` 0), a request that fails, or one that would leave the machine
      (anything but ``file:``, ``data:``, ``blob:``, ``about:``; such requests are blocked, never sent);
    - a stderr output block (warnings, progress bars, logging) or a Python traceback in the page;
    - the same figure shown twice (:func:`duplicate_images`);
    - an absolute path of the machine (:data:`MACHINE_PATH`) or any of the ``forbidden`` strings in the page text.
    """
    html = Path(html).resolve()
    name = html.name
    problems: list[str] = []
    page = browser.new_page()
    try:
        def route(r):
            scheme = urlparse(r.request.url).scheme
            if scheme in ("file", "data", "blob", "about"):
                r.continue_()
            else:
                problems.append(f"{name}: request leaves the machine: {r.request.url[:120]}")
                r.abort()

        page.route("**/*", route)
        page.on("requestfailed", lambda req: problems.append(
            f"{name}: request failed: {req.url[:120]} ({req.failure})")
            if urlparse(req.url).scheme in ("file", "data", "blob", "about") else None)
        page.on("pageerror", lambda exc: problems.append(f"{name}: script error: {exc}"))
        page.goto(html.as_uri(), wait_until="load", timeout=timeout_ms)
        facts = page.evaluate(_PAGE_FACTS)
    finally:
        page.close()
    for im in facts["images"]:
        if not im["complete"] or im["width"] == 0:
            problems.append(f"{name}: image does not load: {im['src'][:120]}")
    for block in facts["stderr"]:
        problems.append(f"{name}: stderr block: {block[:120]!r}")
    text = facts["text"]
    if "Traceback (most recent call last)" in text:
        problems.append(f"{name}: a Python traceback")
    for m in sorted({m.group(0) for m in MACHINE_PATH.finditer(text)} | {f for f in forbidden if f and f in text}):
        problems.append(f"{name}: absolute path of the machine in the text: {m!r}")
    loaded = [(k, im["src"]) for k, im in enumerate(facts["images"]) if im["width"] > 0]
    for i, j in duplicate_images([src for _, src in loaded]):
        problems.append(f"{name}: figure shown twice (images {loaded[i][0] + 1} and {loaded[j][0] + 1} of the page)")
    return problems
