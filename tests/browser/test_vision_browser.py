"""Vision Q&A tab in a real browser: paste an image URL, ask, follow up."""

from __future__ import annotations

import pytest
from pw_helpers import IMAGE_URL, api_requests, set_token, shot, visible_bot_texts

from modelscope_api.config import fingerprint
from modelscope_api.simulator import chat as simchat

pytestmark = pytest.mark.browser


def test_vision_url_question_and_follow_up(new_page, bsim):
    from playwright.sync_api import expect

    first_q = "What does this sign tell drivers?"
    follow_q = "And what colour is it?"
    page = new_page()
    set_token(page, "ms-test-viewer")
    page.get_by_role("tab", name="Vision Q&A").click()
    bsim.clear_log()

    url_box = page.get_by_role("textbox", name="Image URL")
    url_box.click()
    url_box.press_sequentially(IMAGE_URL, delay=1)
    # The browser (not the server) shows a preview of the pasted link.
    preview = page.locator('img[alt="preview"]')
    expect(preview).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())

    question = page.get_by_role("textbox", name="Question")
    question.fill(first_q)
    page.get_by_role("button", name="Ask", exact=True).click()
    answers = page.get_by_test_id("bot")
    expect(answers.last).to_contain_text(f'You asked: "{first_q}"')
    expect(answers.last).to_contain_text("I see an image named street_sign.jpg.")
    expect(question).to_have_value("")  # the box empties once the answer is complete

    question.fill(follow_q)
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(answers.last).to_contain_text(f'You asked: "{follow_q}"')
    expect(question).to_have_value("")
    texts = visible_bot_texts(page)
    assert len(texts) == 2 and first_q in texts[0] and follow_q in texts[1]
    # The follow-up still refers to the same image: it stays in the conversation.
    assert "street_sign.jpg" in texts[1]
    # The user's side shows the image and both questions.
    users = page.get_by_test_id("user")
    expect(users.locator("img").first).to_be_visible()
    expect(users.filter(has_text=first_q)).to_have_count(1)
    expect(users.filter(has_text=follow_q)).to_have_count(1)
    shot(page, "vision")

    chats = [r for r in api_requests(bsim) if r.path.endswith("/chat/completions")]
    assert len(chats) == 2
    for req in chats:
        assert req.token_fingerprint == fingerprint("ms-test-viewer")
        first_user = next(m for m in req.json["messages"] if m["role"] == "user")
        assert simchat.image_parts(first_user["content"]) == [IMAGE_URL]
    follow = chats[1].json["messages"]
    assert [m["role"] for m in follow] == ["user", "assistant", "user"]
    assert follow[-1]["content"] == follow_q
