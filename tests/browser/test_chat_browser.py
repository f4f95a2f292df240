"""Chat tab in a real browser: streaming, stop, retry, and the thinking block."""

from __future__ import annotations

import pytest
from pw_helpers import api_requests, set_token, shot, visible_bot_texts, wait_bot_longer, wait_bot_quiet

from modelscope_api.config import fingerprint
from modelscope_api.simulator import chat as simchat

pytestmark = pytest.mark.browser

STOP = '[data-testid="stop-button"]'


def norm(text: str) -> str:
    return " ".join(text.split())


def last_user_text(req) -> str:
    users = [m for m in (req.json or {}).get("messages", []) if m.get("role") == "user"]
    return simchat.message_text(users[-1]["content"]) if users else ""


def send(page, text: str) -> None:
    box = page.get_by_placeholder("Type a message and press Enter")
    box.click()
    box.press_sequentially(text, delay=2)
    box.press("Enter")


def test_chat_streams_stops_and_retries(new_page, bsim):
    from playwright.sync_api import expect

    question = "How does a bicycle stay upright?"
    full = norm("".join(simchat.answer_tokens(question, max_tokens=200)[0]))
    page = new_page()
    set_token(page, "ms-test-rider")
    max_tokens = page.get_by_role("spinbutton", name="number input for max_tokens")
    max_tokens.fill("200")  # a long answer: ~5 s at the simulator's 40 tokens/s
    max_tokens.press("Tab")
    bsim.clear_log()

    send(page, question)
    expect(page.get_by_test_id("user").last).to_have_text(question)
    # The answer streams in: its text grows several times while the stop button shows.
    n1 = wait_bot_longer(page, 0)
    n2 = wait_bot_longer(page, n1)
    echo = f'You asked: "{question}"'
    n3 = wait_bot_longer(page, max(n2, len(echo)))  # stop once the echo of the question is in
    assert n1 < n2 < n3 < len(full)
    expect(page.locator(STOP)).to_be_visible()

    page.locator(STOP).click()
    expect(page.locator(STOP)).to_be_hidden()
    partial = norm(wait_bot_quiet(page))
    page.wait_for_timeout(800)  # long enough for ~30 more tokens, had it not stopped
    assert norm(visible_bot_texts(page)[-1]) == partial, "the answer kept growing after Stop"
    assert partial and len(partial) < len(full) and full.startswith(partial), (partial, full)
    assert partial.startswith(echo)

    page.get_by_role("button", name="Retry").last.click()
    expect(page.locator(STOP)).to_be_visible()
    expect(page.locator(STOP)).to_be_hidden(timeout=30_000)
    assert norm(visible_bot_texts(page)[-1]) == full
    assert len(visible_bot_texts(page)) == 1, "retry replaces the answer instead of adding one"

    chats = [r for r in api_requests(bsim) if r.path.endswith("/chat/completions")]
    assert [last_user_text(r) for r in chats] == [question, question]
    assert all(r.token_fingerprint == fingerprint("ms-test-rider") for r in chats)
    assert all(r.json.get("max_tokens") == 200 and r.json.get("stream") is True for r in chats)


def test_thinking_model_shows_collapsed_thinking_block(new_page, bsim):
    from playwright.sync_api import expect

    question = "Why is the sky blue?"
    reasoning = norm("".join(simchat.reasoning_tokens(question)))
    answer = norm("".join(simchat.answer_tokens(question)[0]))
    page = new_page()
    set_token(page, "ms-test-thinker")
    page.get_by_role("combobox", name="Model").first.click()
    page.get_by_role("option", name="Qwen/QwQ-32B").click()
    expect(page.get_by_text("This model always thinks before answering")).to_be_visible()

    send(page, question)
    thought = page.locator(".thought-group")
    expect(thought).to_be_visible()
    expect(thought).to_contain_text("Thinking")
    expect(page.locator(STOP)).to_be_hidden(timeout=30_000)

    # Collapsed: the title (with how long it thought) shows, the reasoning itself does not.
    expect(thought.locator(".duration")).to_contain_text("s")
    expect(page.get_by_text("Let me think about")).to_have_count(0)
    # The answer is its own message, without the reasoning in it.
    assert norm(visible_bot_texts(page)[-1]) == answer
    assert "Let me think" not in visible_bot_texts(page)[-1]

    thought.locator(".title").click()
    expect(thought).to_contain_text("Let me think about")
    assert reasoning[:60] in norm(thought.inner_text())
    shot(page, "chat")


def test_anthropic_protocol_hides_thinking_and_shows_its_code(new_page, bsim):
    from playwright.sync_api import expect

    zh = new_page(locale="zh-CN")  # the choice is worded in both languages
    expect(zh.get_by_role("radio", name="OpenAI 兼容")).to_be_checked()
    expect(zh.get_by_role("radio", name="Anthropic 兼容（测试版）")).to_be_visible()
    zh.close()

    question = "What is a haiku?"
    answer = norm("".join(simchat.answer_tokens(question)[0]))
    page = new_page()
    set_token(page, "ms-test-anthropic-browser")
    page.get_by_role("combobox", name="Model").first.click()
    page.get_by_role("option", name="Qwen/Qwen3-32B").click()
    thinking = page.get_by_role("checkbox", name="Thinking (enable_thinking)")
    expect(thinking).to_be_visible()
    thinking.check()
    page.get_by_role("radio", name="Anthropic-compatible (beta)").check()
    expect(thinking).to_be_hidden()
    expect(page.get_by_text("The Anthropic-compatible endpoint has no thinking switch")).to_be_visible()
    bsim.clear_log()

    send(page, question)
    expect(page.get_by_test_id("user").last).to_have_text(question)
    expect(page.locator(STOP)).to_be_hidden(timeout=30_000)
    expect(page.locator(".thought-group")).to_have_count(0)
    assert norm(visible_bot_texts(page)[-1]) == answer

    page.get_by_role("button", name="Show code").click()
    code = page.locator(".cm-content:visible")
    expect(code).to_contain_text("anthropic.Anthropic(")
    expect(code).to_contain_text("client.messages.stream(")
    assert "ms-test-anthropic-browser" not in code.inner_text()

    sent = api_requests(bsim)
    assert [r.path for r in sent] == ["/v1/messages"]
    assert last_user_text(sent[0]) == question and "enable_thinking" not in sent[0].json

    # Back to OpenAI: the switch returns, the note goes.
    page.get_by_role("radio", name="OpenAI-compatible").check()
    expect(thinking).to_be_visible()
    expect(page.get_by_text("The Anthropic-compatible endpoint has no thinking switch")).to_be_hidden()
