"""Open a freshly generated report in headless Chromium from file:// and check what a reader would see.

Needs Debian's `chromium` (and the `playwright` Python package, which drives it; no browser is downloaded).
Locally without Chromium the test skips with the reason; in CI (CI set) a missing browser is a failure.
"""

import json
import os
import shutil

import pytest

from conftest import chromium
from kbench.present import report
from kbench.measure.callpaths import DEFAULT_PATHS
from kbench.measure.callpaths import paths_for

PATHS = paths_for("tensorflow", DEFAULT_PATHS)  # what a default run measures
from kbench.store.results import load_run

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


def _browser_or_skip():
    exe = chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        reason = "headless Chromium is not installed (apt-get install chromium; pip install playwright)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return exe


@pytest.mark.parametrize("evil", [False, True], ids=["real-run", "html-in-model-name"])
def test_report_renders_in_headless_chromium(quick_run, tmp_path, evil):
    exe = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    result, _, _ = quick_run
    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    data = load_run(run_dir)
    one_cell = data.results[data.results["sizes"] == data.results["sizes"].iloc[0]].copy()
    samples = data.samples[data.samples["sizes"] == one_cell["sizes"].iloc[0]].copy()
    meta = dict(data.meta)
    if evil:  # a model named like a script, and hostile options and machine lines, must render as text and stay inert
        one_cell["model"] = "<script>alert(1)</script>"
        samples["model"] = "<script>alert(1)</script>"
        one_cell["options"] = json.dumps({"<b>k</b>": "<img src=x onerror=alert(2)>", "ansi": "\x1b[31m" + "L" * 2000})
        meta["machine"] = ["<script>alert(3)</script>"]
        meta["models"] = {"<script>alert(1)</script>": {"summary": "<img src=y onerror=alert(4)>", "file": "<i>"}}
    data = type(data)(data.run_dir, meta, one_cell, samples)
    html_path = report.write_report(data, tmp_path / "report.html")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        console_errors, dialogs, requests = [], [], []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html_path.as_uri())
        page.wait_for_load_state("load")
        sizes = page.evaluate("Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])")
        parity_rows = page.locator("#parity-table tbody tr").count()
        verdict = page.locator("#verdict").inner_text()
        title = page.title()
        body = page.locator("body").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()

    assert console_errors == [] and dialogs == []
    assert all(not u.startswith(("http:", "https:")) for u in requests), requests
    # every embedded figure decodes (one cell: no ratio line; latency, where the time goes, single-call ECDF, ...)
    assert len(sizes) == html_path.read_text().count("<img") >= 7, sizes
    assert all(w > 0 and h > 0 for w, h in sizes), sizes
    assert parity_rows == len(PATHS)
    assert any(path in verdict for path in PATHS if path != "numpy"), verdict
    assert (tmp_path / "report.png").stat().st_size > 10_000
    if evil:
        assert "<script>alert(1)</script>" in title  # shown as text, not run
        for text in ("<img src=x onerror=alert(2)>", "<script>alert(3)</script>", "<img src=y onerror=alert(4)>",
                     "\\x1b[31m"):  # fmt: skip
            assert text in body, text
