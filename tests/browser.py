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


AXE_DIR = Path(__file__).with_name("axe")
AXE_SOURCE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA (what RGAA 4.1 maps to) plus axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_source() -> str:
    """axe-core from the npm registry, installed once with `npm ci` (the lock pins it);
    a file lock keeps parallel workers from installing it twice."""
    if not AXE_SOURCE.exists():
        import fcntl
        import subprocess

        with open(AXE_DIR / ".install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not AXE_SOURCE.exists():
                subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
                    cwd=AXE_DIR,
                    check=True,
                    timeout=300,
                )
    return AXE_SOURCE.read_text()


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is, of any impact. Injected through the
    debugger (`evaluate`), since the page's CSP rightly refuses inline scripts."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    result = await page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})).violations.map(v => ({id: v.id, impact: v.impact,"
        " help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))",
        AXE_TAGS,
    )
    return list(result)


async def scroll_overflow(page: Any) -> int:
    """How many CSS pixels the document is wider than the window (0: no sideways scroll)."""
    return int(
        await page.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - document.documentElement.clientWidth"
        )
    )


VIEWPORTS = {"desktop": (1366, 768), "tablet": (768, 1024), "phone": (390, 844)}
