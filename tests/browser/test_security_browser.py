"""What a visitor sees when the studio refuses something, in a real browser: a server path
typed as an image URL, and a third picture while two are still being made (the fair share).
English and Chinese, desktop and a 390 px phone; screenshots of each."""

from __future__ import annotations

import pytest
from pw_helpers import TIMEOUT_MS, api_requests, set_token, shot

from modelscope_api.config import fingerprint

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
VARIANTS = [("en-US", None), ("zh-CN", None), ("en-US", PHONE), ("zh-CN", PHONE)]


def _name(base: str, locale: str, viewport) -> str:
    return f"{base}-{locale[:2]}-{'phone' if viewport else 'desktop'}"


@pytest.mark.parametrize(("locale", "viewport"), VARIANTS)
def test_a_server_path_as_image_url_is_refused_and_nothing_is_sent(new_page, bsim, locale, viewport):
    from playwright.sync_api import expect

    zh = locale.startswith("zh")
    page = new_page(locale)
    if viewport:
        page.set_viewport_size(viewport)
    set_token(page, "ms-test-path", zh=zh)
    page.get_by_role("tab", name="看图问答" if zh else "Vision Q&A").click()
    bsim.clear_log()
    page.get_by_role("textbox", name="图片链接" if zh else "Image URL").fill("/etc/passwd")
    page.get_by_role("textbox", name="问题" if zh else "Question").fill("What is in this file?")
    page.get_by_role("button", name="提问" if zh else "Ask", exact=True).click()
    note = page.get_by_test_id("bot").last
    expect(note).to_contain_text("image_url")
    expect(note).to_contain_text("请求未发送" if zh else "Nothing was sent")
    expect(page.get_by_text("root:")).to_have_count(0)
    shot(page, _name("refused-path", locale, viewport))
    assert [r for r in api_requests(bsim) if r.path.endswith("/chat/completions")] == []


@pytest.mark.parametrize(("locale", "viewport"), VARIANTS)
def test_a_third_picture_in_flight_is_refused_under_the_prompt(browser, app_url, bsim, locale, viewport):
    """Three tabs of one browser with one token: two pictures are being made, the third
    Generate is refused at the queue's door, in the page's language, next to the prompt."""
    from playwright.sync_api import expect

    zh = locale.startswith("zh")
    token = f"ms-test-fair-{locale[:2]}-{'p' if viewport else 'd'}"
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}, locale=locale)
    context.set_default_timeout(TIMEOUT_MS)
    bsim.set_config(task_seconds=8.0)
    try:
        pages = []
        for _ in range(3):
            page = context.new_page()
            page.goto(app_url)
            expect(page.get_by_role("tab").first).to_be_visible(timeout=60_000)
            set_token(page, token, zh=zh)
            page.get_by_role("tab", name="文生图" if zh else "Text-to-Image").click()
            page.get_by_role("textbox", name="提示词" if zh else "Prompt", exact=True).fill("a lighthouse at dusk")
            pages.append(page)
        generate = "生成" if zh else "Generate"
        for page in pages[:2]:
            page.get_by_role("button", name=generate, exact=True).click()
            expect(page.get_by_text("⏳").first).to_be_visible()  # the job is running
        third = pages[2]
        third.get_by_role("button", name=generate, exact=True).click()
        words = "张图片正在生成" if zh else "pictures being made"
        expect(third.get_by_text(words).first).to_be_visible()
        third.bring_to_front()
        shot(third, _name("fair-share", locale, viewport))
        mine = [r for r in api_requests(bsim) if r.path.endswith("/images/generations")
                and r.token_fingerprint == fingerprint(token)]
        assert len(mine) == 2  # the refused one never reached the service
    finally:
        bsim.set_config(task_seconds=2.0)
        context.close()
