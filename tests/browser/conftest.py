"""Fixtures for the browser tests: one JupyterLab server and one Chromium for the session.

The tests skip (with the reason) when Playwright or Chromium is missing, so a laptop without
them still runs the rest of the suite. CI sets SPLATCOURSE_REQUIRE_BROWSER=1, which turns that
skip into a failure: there, a browser test that silently did not run would hide a broken
widget.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from lab_driver import (
    LabServer,
    artifacts_dir,
    chromium_path,
    launch_chromium,
    open_notebook,
    run_cells,
)

from splatcourse.paths import repo_root


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in Chromium through Playwright (tests/browser)"
    )


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        return (
            "Chromium is not installed (apt-get install chromium, or set "
            "SPLATCOURSE_CHROMIUM to its path)"
        )
    return None


@pytest.fixture(scope="session")
def browser_ready() -> None:
    reason = _missing()
    if reason:
        if os.environ.get("SPLATCOURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SPLATCOURSE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def lab(browser_ready) -> LabServer:
    server = LabServer(repo_root()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(browser_ready):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context, profile = launch_chromium(playwright, chromium_path())
        yield context
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def shots() -> Path:
    return artifacts_dir()


class NotebookRunner:
    """One open notebook at a time; cells already run are not run again.

    Tests of the same lesson follow one another (the tables keep them together), so a
    lesson's expensive cells run once however many of its widgets are tested.
    """

    def __init__(self, lab: LabServer, browser) -> None:
        self.lab, self.browser = lab, browser
        self.page = None
        self.path: str | None = None
        self.ran = -1

    def open(self, path: str):
        if path != self.path:
            if self.page is not None:
                self.page.close()
                self.lab.shutdown_kernels()
            self.page = self.browser.new_page()
            self.path, self.ran = None, -1
            open_notebook(self.page, self.lab, path)
            self.path = path
        return self.page

    def run_to(self, path: str, index: int):
        """Open `path` and run every cell up to and including `index`, in order."""
        page = self.open(path)
        if index > self.ran:
            run_cells(page, self.ran + 1, index)
            self.ran = index
        return page

    def close(self) -> None:
        if self.page is not None:
            self.page.close()
            self.page = None


@pytest.fixture(scope="session")
def notebooks(lab, browser) -> NotebookRunner:
    runner = NotebookRunner(lab, browser)
    yield runner
    runner.close()
