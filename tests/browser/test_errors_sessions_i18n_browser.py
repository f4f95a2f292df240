"""Plain-language errors, two people at once with their own tokens, and the Chinese UI."""

from __future__ import annotations

import re

import pytest
from pw_helpers import api_requests, set_token, visible_bot_texts

from modelscope_api.config import fingerprint
from modelscope_api.simulator import chat as simchat

pytestmark = pytest.mark.browser

STOP = '[data-testid="stop-button"]'
DONE = re.compile(r"Task (\S+) · SUCCEED · seed (\d+)")


def send_chat(page, text: str) -> None:
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill(text)
    box.press("Enter")


@pytest.mark.parametrize(("token", "message"), [
    ("ms-test-unbound", "Your ModelScope account is not bound to an Alibaba Cloud (Aliyun) account yet"),
    ("ms-test-quota", "Today's free quota is used up (429"),
], ids=["401-unbound", "429-quota"])
def test_refused_token_shows_plain_message(new_page, bsim, token, message):
    from playwright.sync_api import expect

    page = new_page()
    set_token(page, token)
    page.get_by_role("button", name="Check token").click()
    expect(page.get_by_text(re.compile("^❌"))).to_contain_text(message)

    send_chat(page, "Hello there")
    toast = page.get_by_test_id("toast-body").filter(has_text=message)
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("request_id")
    assert visible_bot_texts(page) == []  # no answer was made up


def test_two_people_at_once_each_see_only_their_own(new_page, bsim):
    from playwright.sync_api import expect

    people = {"alice": "ms-test-alice", "bob": "ms-test-bob"}
    pages = {name: new_page() for name in people}
    for name, page in pages.items():
        set_token(page, people[name])
    questions = {name: f"{name} wants to know about tea ceremonies" for name in people}
    prompts = {name: f"{name}'s paper crane on a windowsill" for name in people}
    bsim.clear_log()

    # Both chat at once: send both, then wait for both answers.
    for name, page in pages.items():
        send_chat(page, questions[name])
    for name, page in pages.items():
        expect(page.get_by_test_id("bot").last).to_contain_text(f'You asked: "{questions[name]}"')
        expect(page.locator(STOP)).to_be_hidden(timeout=30_000)

    # Both make a picture at once.
    for name, page in pages.items():
        page.get_by_role("tab", name="Text-to-Image").click()
        page.get_by_role("textbox", name="Prompt", exact=True).fill(prompts[name])
    for page in pages.values():
        page.get_by_role("button", name="Generate", exact=True).click()
    tasks, seeds = {}, {}
    for name, page in pages.items():
        done = page.get_by_text(DONE)
        expect(done).to_be_visible(timeout=30_000)
        m = DONE.search(done.inner_text())
        tasks[name], seeds[name] = m.group(1), int(m.group(2))
    assert tasks["alice"] != tasks["bob"]

    # Each page shows only its own conversation and its own picture.
    for name, page in pages.items():
        other = "bob" if name == "alice" else "alice"
        page.get_by_role("tab", name="Chat").click()
        answers = visible_bot_texts(page)
        assert len(answers) == 1 and questions[name] in answers[0]
        expect(page.get_by_test_id("user")).to_have_text([questions[name]])
        assert other not in page.get_by_role("log").first.inner_text()
        page.get_by_role("tab", name="Text-to-Image").click()
        thumbs = page.get_by_role("button", name=re.compile("^Thumbnail "))
        expect(thumbs).to_have_count(1)
        expect(thumbs.get_by_role("img", name=re.compile(rf"^seed {seeds[name]} "))).to_be_visible()

    # Every request carried its own person's token.
    api = api_requests(bsim)
    chats = [r for r in api if r.path.endswith("/chat/completions")]
    submits = [r for r in api if r.path.endswith("/images/generations")]
    assert len(chats) == 2 and len(submits) == 2
    for name, token in people.items():
        fp = fingerprint(token)
        mine = [r for r in chats if simchat.message_text(r.json["messages"][-1]["content"]) == questions[name]]
        assert len(mine) == 1 and mine[0].token_fingerprint == fp
        mine = [r for r in submits if r.json["prompt"] == prompts[name]]
        assert len(mine) == 1 and mine[0].token_fingerprint == fp
        polls = [r for r in api if r.path.endswith(f"/tasks/{tasks[name]}")]
        assert polls and {r.token_fingerprint for r in polls} == {fp}
    # …and they really ran at the same time: bob's task started while alice's was being polled.
    first, second = sorted(submits, key=lambda r: r.time)
    first_task = tasks["alice" if first.json["prompt"] == prompts["alice"] else "bob"]
    last_poll = max(r.time for r in api if r.path.endswith(f"/tasks/{first_task}"))
    assert second.time < last_poll


def test_chinese_browser_gets_chinese_labels(new_page):
    from playwright.sync_api import expect

    page = new_page(locale="zh-CN")
    for tab in ("对话", "看图问答", "文生图"):
        expect(page.get_by_role("tab", name=tab)).to_be_visible()
    expect(page.get_by_role("textbox", name="你的 ModelScope 访问令牌")).to_be_visible()
    expect(page.get_by_role("button", name="检查令牌")).to_be_visible()
    expect(page.get_by_text("还没有令牌")).to_be_visible()
    expect(page.get_by_role("tab", name="Chat")).to_have_count(0)

    page.get_by_role("tab", name="文生图").click()
    expect(page.get_by_role("textbox", name="提示词", exact=True)).to_be_visible()
    # Messages made at run time follow the browser's language too.
    page.get_by_role("button", name="生成", exact=True).click()
    expect(page.get_by_text(re.compile("^⚠️"))).to_contain_text("请求未发送")

    page.get_by_role("tab", name="看图问答").click()
    expect(page.get_by_role("button", name="提问", exact=True)).to_be_visible()
    expect(page.get_by_role("textbox", name="图片链接")).to_be_visible()
