"""Open a local HTML page in headless Chromium and report what a reader would run into.

For tests of the HTML report: `check_page` loads the file through selenium and the system's
chromedriver, and returns the page title, the browser console's errors, the images that did not
load, and a full-page screenshot to look at. Selenium is imported only when a page is checked,
so `chromium_paths()` works (for a skip condition) where selenium is missing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAME = "chromedriver"
INSTALL_HINT = "apt-get install chromium chromium-driver"
# Chromium will not start as root with its sandbox on, and CI runs as root in a container; the
# other flags skip the GPU, first-run setup and background calls home, none of which a test needs.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # CI containers often mount a small /dev/shm
)
PAGE_LOAD_TIMEOUT_S = 60
MAX_SCREENSHOT_HEIGHT = 20_000
# The src attribute as written (e.g. "missing.png"), not the URL it resolves to.
IMAGE_STATES_JS = """
return Array.from(document.images, img => ({
    src: img.getAttribute("src"),
    loaded: img.complete && img.naturalWidth > 0,
}));
"""


@dataclass(frozen=True)
class PageCheck:
    title: str
    console_errors: list[str]  # browser console messages of level SEVERE
    images: int  # <img> elements on the page
    broken_images: list[str]  # src of each <img> that did not load
    screenshot: Path


def chromium_paths() -> tuple[str, str] | None:
    """(Chromium binary, chromedriver) found on PATH, or None if either is missing."""
    browser = next(filter(None, map(shutil.which, BROWSER_NAMES)), None)
    driver = shutil.which(DRIVER_NAME)
    return (browser, driver) if browser and driver else None


def severe_messages(log_entries: list[dict]) -> list[str]:
    """The messages of the browser log's SEVERE entries (JS errors, resources that failed)."""
    return [entry["message"] for entry in log_entries if entry["level"] == "SEVERE"]


def broken_sources(image_states: list[dict]) -> list[str]:
    """The src of each image that did not load, in page order."""
    return [image["src"] for image in image_states if not image["loaded"]]


def start_chromium(width: int, height: int):
    """A selenium WebDriver on headless Chromium; the caller must quit() it."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError(f"Chromium or chromedriver is not on PATH: {INSTALL_HINT}")
    browser, driver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=driver), options=options)
    except WebDriverException as error:
        raise RuntimeError(f"could not start {browser} through {driver}: {error.msg}") from error


def open_page(driver, url: str) -> None:
    """Load `url` and wait until the document and everything it references has loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    driver.get(url)
    WebDriverWait(driver, PAGE_LOAD_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.readyState") == "complete",
        message=f"{url} did not finish loading within {PAGE_LOAD_TIMEOUT_S} s",
    )


def save_full_page_screenshot(driver, path: Path, width: int) -> None:
    """Grow the window to the page's height (capped), so one screenshot shows all of it."""
    page_height = driver.execute_script("return document.documentElement.scrollHeight")
    # Even headless, the window height includes ~140 px of browser UI above the viewport.
    ui_height = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(width, min(page_height + ui_height, MAX_SCREENSHOT_HEIGHT))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"Chromium could not write the screenshot {path}")


def check_page(
    html_path: Path, screenshot_path: Path, *, width: int = 1400, height: int = 1000
) -> PageCheck:
    """Open `html_path` in headless Chromium; report its console errors and broken images."""
    if not html_path.is_file():
        raise FileNotFoundError(f"no HTML page to check at {html_path}")
    driver = start_chromium(width, height)
    try:
        open_page(driver, html_path.resolve().as_uri())
        title = driver.title
        image_states = driver.execute_script(IMAGE_STATES_JS)
        console_errors = severe_messages(driver.get_log("browser"))
        save_full_page_screenshot(driver, screenshot_path, width)
    finally:
        driver.quit()
    return PageCheck(
        title=title,
        console_errors=console_errors,
        images=len(image_states),
        broken_images=broken_sources(image_states),
        screenshot=screenshot_path,
    )
