"""Helpers for the browser tests (imported by the test modules and conftest)."""

from __future__ import annotations

import io
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
# Tests leave the tree clean: their screenshots go to test-results/ (git-ignored) unless
# STUDIO_UPDATE_SCREENSHOTS=1 asks to refresh the README's pictures in assets/screenshots/.
SCREENSHOTS = (ASSETS / "screenshots" if os.environ.get("STUDIO_UPDATE_SCREENSHOTS") == "1"
               else ROOT / "test-results" / "screenshots")
TIMEOUT_MS = 20_000  # default wait for any locator / expect
SHOT_MAX_BYTES = 400_000
# An image "on the internet" for the Vision tab: the browser's preview is served from the
# repo's assets by a Playwright route; the app and the simulator never fetch it.
IMAGE_URL = "https://images.example.com/photos/street_sign.jpg"


def set_token(page, token: str, zh: bool = False) -> None:
    """Type the token into the header's password box like a person, then leave the box."""
    from playwright.sync_api import expect

    box = page.get_by_label("你的 ModelScope 访问令牌" if zh else "Your ModelScope access token")
    box.click()
    box.press_sequentially(token, delay=5)
    box.press("Tab")
    expect(page.get_by_text("已为当前标签页设置你自己的令牌" if zh else "Your own token is set")).to_be_visible()


def api_requests(sim, path_prefix: str = "/v1/") -> list:
    """The simulator's logged API requests (its /_sim/ admin calls are never API calls)."""
    return [r for r in sim.log if not r.path.startswith("/_sim/") and r.path.startswith(path_prefix)]


def visible_bot_texts(page) -> list[str]:
    """innerText of every bot message in the visible chatbot (the current tab's)."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid="bot"]')]
        .filter(e => e.offsetParent !== null && !e.querySelector('.thought-group'))
        .map(e => e.innerText.trim())""")


def wait_bot_longer(page, n: int, timeout: float = TIMEOUT_MS) -> int:
    """Wait until the last visible answer is longer than n characters; returns its length."""
    handle = page.wait_for_function(
        """(n) => {
            const bots = [...document.querySelectorAll('[data-testid="bot"]')]
                .filter(e => e.offsetParent !== null && !e.querySelector('.thought-group'));
            const last = bots[bots.length - 1];
            const len = last ? last.innerText.trim().length : 0;
            return len > n ? len : false;
        }""", arg=n, timeout=timeout, polling=50)
    return int(handle.json_value())


def wait_bot_quiet(page, quiet_ms: int = 500, timeout: float = 10_000) -> str:
    """The last visible answer's text once it has not changed for `quiet_ms` (updates already
    on their way when a stream was stopped land first, however busy the machine is). A
    stream that keeps going never goes quiet: this then times out."""
    import time

    deadline = time.monotonic() + timeout / 1000
    text, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now_text = (visible_bot_texts(page) or [""])[-1]
        if now_text != text:
            text, since = now_text, time.monotonic()
        elif (time.monotonic() - since) * 1000 >= quiet_ms:
            return text
        page.wait_for_timeout(50)
    raise AssertionError(f"the answer kept changing for {timeout / 1000:.0f} s")


def shot(page, name: str) -> Path:
    """A full-page PNG of the page at SCREENSHOTS/<name>.png (shrunk if over ~400 KB).

    The viewport is first made as tall as the page, so nothing re-lays out while the picture
    is taken."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    try:
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        data = page.screenshot(type="png", full_page=True, animations="disabled", caret="hide")
    finally:
        page.set_viewport_size(size)
    if len(data) > SHOT_MAX_BYTES:
        from PIL import Image

        img = Image.open(io.BytesIO(data)).convert("RGB")
        while True:
            buf = io.BytesIO()
            img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
            if buf.tell() <= SHOT_MAX_BYTES or img.width < 700:
                break
            img = img.resize((int(img.width * 0.85), int(img.height * 0.85)), Image.Resampling.LANCZOS)
        data = buf.getvalue()
    path.write_bytes(data)
    return path
