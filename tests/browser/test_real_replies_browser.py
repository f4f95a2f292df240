"""Replies the real service sends, seen in a real browser (English and 中文, desktop and a
390 px phone): a chat over the Anthropic-compatible protocol, a 200 that carries no answer
(a note says so, never a blank bubble), and a reply without quota headers (the quota line says
the quota is unknown instead of keeping the old numbers). Screenshots of each variant."""

from __future__ import annotations

import pytest
from pw_helpers import api_requests, set_token, shot

from modelscope_api.config import fingerprint

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
VARIANTS = [("en-US", None), ("zh-CN", None), ("en-US", PHONE), ("zh-CN", PHONE)]


def message_box(page, zh: bool):
    """The chat's message box, found by its placeholder while it still shows one (Gradio
    drops the placeholder after the first message; the element stays)."""
    return page.get_by_placeholder("输入消息，按回车发送" if zh else "Type a message and press Enter").element_handle()


def send(box, text: str) -> None:
    box.click()
    box.fill(text)
    box.press("Enter")


@pytest.mark.parametrize(("locale", "viewport"), VARIANTS)
def test_anthropic_chat_no_answer_and_unknown_quota(new_page, bsim, locale, viewport):
    from playwright.sync_api import expect

    zh = locale.startswith("zh")
    token = f"ms-test-replies-{locale[:2]}-{'p' if viewport else 'd'}"
    page = new_page(locale)
    if viewport:
        page.set_viewport_size(viewport)
    set_token(page, token, zh=zh)
    bots = page.get_by_test_id("bot")
    box = message_box(page, zh)

    # 1. Anthropic-compatible (beta): the answer streams from POST /v1/messages.
    page.get_by_label("Anthropic 兼容（测试版）" if zh else "Anthropic-compatible (beta)").check()
    send(box, "你好，Anthropic！" if zh else "Hello over Anthropic!")
    expect(bots.filter(has_text="You asked:").last).to_be_visible()
    mine = [r.path for r in api_requests(bsim) if r.token_fingerprint == fingerprint(token)]
    assert mine == ["/v1/messages"], mine
    quota = page.get_by_text("今日剩余调用" if zh else "Calls left today")
    expect(quota).to_be_visible()

    # 2. A 200 carrying nothing: a note that the model returned no answer.
    page.get_by_label("OpenAI 兼容" if zh else "OpenAI-compatible", exact=True).check()
    bsim.inject("hollow_reply", token=token)
    send(box, "还在吗？" if zh else "Still there?")
    no_answer = "模型没有返回任何回答" if zh else "The model returned no answer"
    expect(bots.filter(has_text=no_answer).last).to_be_visible()

    # 3. A reply without the rate-limit headers: the quota is unknown, not the old number.
    bsim.inject("no_quota_headers", token=token)
    send(box, "最后一个问题" if zh else "One last question")
    expect(page.get_by_text("未知（服务器这次没有返回额度信息）" if zh
                            else "unknown (the server's reply carried no quota figures)")).to_be_visible()
    expect(quota).to_be_hidden()
    expect(bots.filter(has_text="You asked:")).to_have_count(2)
    shot(page, f"real-replies-{locale[:2]}-{'phone' if viewport else 'desktop'}")
