"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium through Playwright."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from .factories import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
]


def require_browser() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("TELMI_TEST_REQUIRE_BROWSER"):
        pytest.fail("TELMI_TEST_REQUIRE_BROWSER is set but /usr/bin/chromium is missing")
    pytest.skip("headless Chromium (Debian package chromium) is not installed")


async def poll(page: Any, script: str, timeout: float = 15.0) -> Any:
    """Evaluate `script` until truthy. (Playwright's wait_for_function evals a string in the
    page, which Telmi's CSP rightly refuses; evaluate goes through the debugger instead.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {script[:80]}")
        await asyncio.sleep(0.1)


async def signed_in(browser: Any, base: str, email: str) -> Any:
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    page = await context.new_page()
    await page.goto(base + "/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + "/")
    return page
