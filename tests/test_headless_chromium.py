"""The headless-Chromium page checker, on tiny pages written into tmp_path."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from headless_chromium import check_page, chromium_paths
from matplotlib import image as mpimg

pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[dev]'")
if chromium_paths() is None:
    pytest.skip(
        "Chromium/chromedriver not installed: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(height: int = 8, width: int = 12) -> bytes:
    """A small grey PNG image."""
    buffer = io.BytesIO()
    mpimg.imsave(buffer, np.full((height, width, 3), 0.5), format="png")
    return buffer.getvalue()


def write_page(directory: Path, title: str, body: str) -> Path:
    page = directory / "page.html"
    page.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body>{body}</body></html>",
        encoding="utf-8",
    )
    return page


def test_clean_page_has_no_errors_and_every_image_loads(tmp_path):
    (tmp_path / "figure.png").write_bytes(png_bytes())
    embedded = base64.b64encode(png_bytes()).decode("ascii")
    page = write_page(
        tmp_path,
        "Clean report",
        f"<h1>Report</h1><img src='data:image/png;base64,{embedded}'><img src='figure.png'>",
    )
    check = check_page(page, tmp_path / "shots" / "clean.png")
    assert check.title == "Clean report"
    assert check.console_errors == []
    assert check.images == 2
    assert check.broken_images == []
    assert check.screenshot == tmp_path / "shots" / "clean.png"
    screenshot = check.screenshot.read_bytes()
    assert screenshot.startswith(PNG_SIGNATURE) and len(screenshot) > len(PNG_SIGNATURE)


def test_script_error_and_missing_image_are_reported(tmp_path):
    page = write_page(
        tmp_path,
        "Broken report",
        "<script>throw new Error('report script failed');</script><img src='missing.png'>",
    )
    check = check_page(page, tmp_path / "broken.png")
    assert check.images == 1
    assert check.broken_images == ["missing.png"]
    assert any("report script failed" in message for message in check.console_errors)
    assert any("missing.png" in message for message in check.console_errors)
    assert check.screenshot.is_file()


def test_missing_page_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no HTML page"):
        check_page(tmp_path / "absent.html", tmp_path / "absent.png")
