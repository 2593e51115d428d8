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
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
