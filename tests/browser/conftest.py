"""Browser fixtures: a real `python app.py` against an in-test simulator, driven by Debian's
chromium through Playwright (sync API).

- `bsim`: the simulator these tests use (session): slow enough that streaming, stopping and
  task status can be watched (ttft 0.3 s, 40 tokens/s, image tasks 2 s).
- `app_url`: `python app.py --port <free>` started as a subprocess with
  MODELSCOPE_BASE_URL pointing at `bsim` and no server token (session; terminated at the end).
- `browser`: one chromium for the session; `new_page(locale="en-US")` opens a page in a fresh
  context (1280x900) per call, closed after the test.
- helpers live in pw_helpers.py: `set_token`, `api_requests`, `shot` (PNGs into test-results/screenshots/, or assets/screenshots/ with
  STUDIO_UPDATE_SCREENSHOTS=1).

Missing playwright or chromium: skipped locally, a failure when STUDIO_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from pw_helpers import ASSETS, IMAGE_URL, ROOT, TIMEOUT_MS

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 900}


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"chromium not found at {CHROMIUM}"
    return None


def _require_browser() -> None:
    missing = _browser_missing()
    if missing is None:
        return
    if os.environ.get("STUDIO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here (STUDIO_REQUIRE_BROWSER=1) but {missing}")
    pytest.skip(f"browser tests skipped: {missing}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_tmp():
    path = Path(tempfile.mkdtemp(prefix="studio-browser-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def bsim():
    from modelscope_api.simulator import SimConfig, Simulator

    with Simulator(SimConfig(task_seconds=2.0, ttft=0.3, tokens_per_second=40.0)) as sim:
        yield sim


@pytest.fixture(scope="session")
def app_url(bsim, browser_tmp):
    """`python app.py --port N` against the simulator, as a person would run it."""
    _require_browser()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MODELSCOPE_ACCESS_TOKEN", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")}
    home = browser_tmp / "app-home"
    home.mkdir()
    env.update(
        MODELSCOPE_BASE_URL=bsim.base_url,
        STUDIO_OUTPUTS_DIR=str(browser_tmp / "outputs"),
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(browser_tmp / "gradio"),
        HOME=str(home),
        PYTHONUNBUFFERED="1",
    )
    log_path = browser_tmp / "app.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not serve {url} in time:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


@pytest.fixture(scope="session")
def browser(browser_tmp):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    home = browser_tmp / "chromium-home"
    home.mkdir()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                              env={**os.environ, "HOME": str(home)})
        try:
            yield b
        finally:
            b.close()


def _serve_example_image(route) -> None:
    route.fulfill(status=200, content_type="image/jpeg", body=(ASSETS / "street_sign.jpg").read_bytes())


@pytest.fixture
def new_page(browser, app_url, bsim):
    """new_page(locale="en-US") -> a loaded page of the studio in its own browser context."""
    contexts = []
    bsim.clear_faults()

    def make(locale: str = "en-US"):
        from playwright.sync_api import expect

        ctx = browser.new_context(viewport=VIEWPORT, locale=locale, color_scheme="light")
        ctx.set_default_timeout(TIMEOUT_MS)
        ctx.route(IMAGE_URL, _serve_example_image)
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(app_url)
        expect(page.get_by_role("tab").first).to_be_visible(timeout=60_000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
