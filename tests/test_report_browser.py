"""The HTML report as a reader sees it: opened in headless Chromium, every figure loaded, no errors.

Needs the Debian package ``chromium`` (``.ci/run`` installs it; set ``SEQMEM_CHROMIUM`` to use another
binary).  Without it the test is skipped with that reason, which pytest's summary (``-ra``) shows.
The screenshot is written beside the report (``report/screenshot.png``) so it can be looked at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from seqmem.config import ProbeConfig
from seqmem.report import render_report
from seqmem.sweep import Study, run_study

CHROMIUM = os.environ.get("SEQMEM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a sandbox without a network or a display: no background traffic, no GPU, no sandbox (root).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found: install the Debian package 'chromium' (.ci/run does)"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real study's report: two cells on a short copy task, probed at init and at the end."""
    study = Study(
        name="browser_check",
        base={
            "task": "copy",
            "task_params": {"delay": 5},
            "hidden_size": 8,
            "max_steps": 30,
            "eval_every": 10,
        },
        axes={"cell": ["rnn", "lstm"], "seed": [0, 1]},
        probe=ProbeConfig(quantities=("grad_norm", "gates", "gradient_bound"), every_n_evals=0, batch_size=8),
    )
    study_dir = run_study(study, preset=None, out=tmp_path_factory.mktemp("results"), workers=1)
    return render_report(study_dir)


@pytest.fixture(scope="module")
def opened(report: Path) -> dict:
    """What the browser saw: image sizes, links, console messages, page errors, requests."""
    seen: dict = {"console": [], "errors": [], "requests": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: seen["console"].append((message.type, message.text)))
            page.on("pageerror", lambda error: seen["errors"].append(str(error)))
            page.on("request", lambda request: seen["requests"].append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            seen["images"] = page.eval_on_selector_all(
                "img", "images => images.map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
            )
            seen["links"] = page.eval_on_selector_all(
                "a[href]", "links => links.map(a => a.getAttribute('href'))"
            )
            seen["title"] = page.title()
            page.screenshot(path=report.parent / "screenshot.png", full_page=True)
        finally:
            browser.close()
    return seen


def test_every_figure_loads(opened: dict) -> None:
    images = opened["images"]
    assert len(images) >= 4, f"expected the study's figures, got {images}"
    broken = [alt for alt, complete, width, height in images if not (complete and width > 0 and height > 0)]
    assert not broken, f"images that did not load: {broken}"


def test_no_console_errors_and_no_network(opened: dict, report: Path) -> None:
    assert opened["errors"] == []
    assert [text for kind, text in opened["console"] if kind in ("error", "warning")] == []
    # self-contained: the page itself is the only thing the browser fetched
    assert set(opened["requests"]) == {report.as_uri()}
    assert opened["title"].startswith("seqmem report")


def test_every_link_points_to_a_written_file(opened: dict, report: Path) -> None:
    assert opened["links"], "the figures link their SVG and PNG files"
    missing = [href for href in opened["links"] if not (report.parent / href).is_file()]
    assert not missing


def test_screenshot_is_saved(opened: dict, report: Path) -> None:
    shot = report.parent / "screenshot.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
