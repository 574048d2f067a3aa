"""Browser harness: the real app under uvicorn on a free 127.0.0.1 port (a background thread of
this process, so it shares the test database, settings and SMTP catcher), driven by Debian's
Chromium through Playwright's async API (the suite runs in pytest-asyncio's session loop, where
Playwright's sync API cannot run). Browsers are never downloaded.

Screenshots go to var/screenshots/ (git-ignored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_PRESENT = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="session")
def live_server(app) -> str:
    """The app served by uvicorn; `app` first, so the SMTP catcher (and worker) are up."""

    from services.portal import assets

    if not assets.STAMP.exists():  # `make test` builds them; a bare `pytest` may not have
        assets.build()

    from services.app import create_app
    from tests.live import served

    with served(create_app(), lifespan="on") as url:
        yield url


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[object]:
    if not CHROMIUM_PRESENT:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def new_page(chromium, live_server):
    """`page = await new_page()`: a fresh browser context (own cookies) on the live server."""
    contexts = []

    async def make(width: int = 1366, height: int = 900):
        context = await chromium.new_context(
            base_url=live_server,
            viewport={"width": width, "height": height},
            locale="en-GB",
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return await context.new_page()

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture(scope="session")
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def shoot(page, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        return path

    return shoot


# The portal suite's people helpers (invitation → accepted account), shared here.
from tests.portal.conftest import make_person, new_browser, owner_browser  # noqa: E402, F401
