"""The report opened in a real headless Chromium: images decode, tables fill, tokens are highlighted.

Skipped when Chromium or chromedriver is missing, unless ``AFSCOPE_REQUIRE_BROWSER=1`` (set in CI),
which turns the skip into a failure. The driver path is passed explicitly, so Selenium Manager (which
would download a driver) is never run; the test makes sure of that, and that the pages fetch nothing
but their own ``file://`` resources.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from report_fixtures import make_results

from afscope.report import write_report

CHROMIUM = os.environ.get("AFSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AFSCOPE_CHROMEDRIVER", "/usr/bin/chromedriver")


def _need(reason: str) -> None:
    if os.environ.get("AFSCOPE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"AFSCOPE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.selenium_manager import SeleniumManager
    except ImportError:
        _need("selenium is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            _need(f"{path} not found")

    def no_manager(*args, **kwargs):
        raise AssertionError("Selenium Manager was invoked (it may download a driver)")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_manager)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000",
                # any name lookup fails: nothing can leave the machine even if something tried
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chrome-profile", ignore_errors=True)


def _open(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(Array.from(document.images).map(i => i.src))"
        ".concat(Array.from(document.querySelectorAll('a[href], link[href]')).map(a => a.href))")
    assert all(u.startswith("file://") for u in urls), urls


def test_report_renders_in_chromium(browser, tmp_path):
    index = write_report(make_results(tmp_path))

    _open(browser, index)
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
        "i.naturalWidth])")
    assert len(images) >= 8
    for src, complete, width in images:
        assert complete and width > 0, src
    ladder = browser.execute_script(
        "return Array.from(document.querySelectorAll('#ladder-table tbody tr'))"
        ".map(r => r.dataset.method)")
    assert len(ladder) == 6 and ladder[0].endswith("logistic_l1")
    for table in ("datasets-table", "id-ood-table", "category-table", "sae-table"):
        rows = browser.execute_script(
            f"return document.querySelectorAll('#{table} tbody tr').length")
        assert rows > 0, table
    baseline_bg = browser.execute_script(
        "return getComputedStyle(document.querySelector('tr.baseline td')).backgroundColor")
    assert baseline_bg not in ("rgba(0, 0, 0, 0)", "transparent")
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    browser.save_screenshot(str(tmp_path / "index.png"))
    assert (tmp_path / "index.png").stat().st_size > 10_000

    _open(browser, index.parent / "features.html")
    tokens = browser.execute_script(
        "return Array.from(document.querySelectorAll('.tok.hl'))"
        ".map(t => getComputedStyle(t).backgroundColor)")
    assert len(tokens) > 20
    assert all(t.startswith("rgba(255, 140, 0") or t == "rgb(255, 140, 0)" for t in tokens)
    assert browser.execute_script("return document.querySelectorAll('article.feature').length") == 3
    # the untrusted <script> in the traces is shown as text, never run
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    assert "<script>alert('pwned')</script>" in browser.find_element("id", "features").text


def test_behaviour_page_renders_in_chromium(browser, tmp_path):
    from test_report_behaviour import make_behaviour

    index = write_report(make_behaviour(tmp_path, with_results=True))
    _open(browser, index)
    assert browser.execute_script(
        "return document.getElementById('behaviour-link').getAttribute('href')") == "behaviour.html"

    _open(browser, index.parent / "behaviour.html")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
        "i.naturalWidth])")
    assert len(images) == 4  # gap + per-cue plots, two copied sweep plots
    for src, complete, width in images:
        assert complete and width > 0, src
    for table in ("gap-table", "cue-table", "train-table", "directions-table", "conditions-table",
                  "confusion-table"):
        rows = browser.execute_script(
            f"return document.querySelectorAll('#{table} tbody tr').length")
        assert rows > 0, table
    banner = browser.find_element("id", "ablation-warning")
    assert banner.is_displayed() and "below 20%" in banner.text
    assert browser.execute_script(
        "return getComputedStyle(document.getElementById('ablation-warning')).color"
    ) == "rgb(179, 38, 30)"
    # the two sides of a pair sit next to each other
    lefts = browser.execute_script(
        "return Array.from(document.querySelector('.pair').children)"
        ".map(c => c.getBoundingClientRect().left)")
    assert len(lefts) == 2 and lefts[1] > lefts[0] + 200
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    assert "<script>alert('pwned')</script>" in browser.find_element("id", "organism").text
    browser.save_screenshot(str(tmp_path / "behaviour.png"))
    assert (tmp_path / "behaviour.png").stat().st_size > 10_000
