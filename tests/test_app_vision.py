"""The Vision Q&A tab: the public `/vision` endpoint through gradio_client (URL, upload,
follow-ups, errors) and the handler's validation called directly."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from modelscope_api import catalog
from modelscope_api.config import fingerprint
from ui import vision_tab
from ui.chat_tab import content_text
from ui.context import AppContext

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TOKEN = "ms-test-vision"
VL = catalog.DEFAULT_VISION_MODEL
URL = "https://example.com/cat.png"


def client(studio, token: str | None = TOKEN) -> Client:
    headers = {"X-ModelScope-Token": token} if token else {}
    return Client(studio.url, headers=headers, verbose=False, download_files=False)


def ask(c: Client, question: str, image_url: str = "", image=None, model: str = VL):
    return c.predict(image_url, image, question, model, api_name="/vision")


def last_chat(sim):
    return [e for e in sim.log if e.path.endswith("/chat/completions")][-1]


def error_text(messages: list) -> str:
    return " ".join(content_text(m["content"]) for m in messages
                    if (m.get("metadata") or {}).get("title", "").startswith("❌"))


def image_urls(body) -> list[str]:
    return [part["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for part in m["content"] if part.get("type") == "image_url"]


def test_example_assets_are_real_images():
    from PIL import Image

    for name, _ in vision_tab.EXAMPLES:
        with Image.open(ASSETS / name) as img:
            img.verify()


def test_url_question_and_follow_up(clean_studio):
    sim = clean_studio.sim
    c = client(clean_studio)
    chatbot, question_box, quota, code = ask(c, "What animal is this?", image_url=URL)
    body = last_chat(sim).json
    assert image_urls(body) == [URL]
    assert body["messages"][0]["content"][1] == {"type": "text", "text": "What animal is this?"}
    assert last_chat(sim).token_fingerprint == fingerprint(TOKEN)
    texts = [content_text(m["content"]) for m in chatbot]
    assert texts[0] == f"![image]({URL})" and texts[1] == "What animal is this?"
    assert chatbot[-1]["role"] == "assistant" and texts[-1]
    assert question_box == "" and "Calls left today" in quota and URL in code

    chatbot, *_ = ask(c, "And what colour is it?")  # a follow-up: no image given again
    body = last_chat(sim).json
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert image_urls(body) == [URL]  # the image stays in the first message only
    assert body["messages"][-1] == {"role": "user", "content": "And what colour is it?"}
    assert [content_text(m["content"]) for m in chatbot if m["role"] == "user"][-1] == "And what colour is it?"

    ask(c, "Describe this one.", image_url="https://example.com/dog.png")  # another image: new conversation
    body = last_chat(sim).json
    assert len(body["messages"]) == 1 and image_urls(body) == ["https://example.com/dog.png"]


def test_upload_is_sent_as_a_data_url(clean_studio):
    c = client(clean_studio)
    chatbot, *_ = ask(c, "图片里是什么形状？", image=handle_file(str(ASSETS / "red_circle.png")))
    urls = image_urls(last_chat(clean_studio.sim).json)
    assert len(urls) == 1 and urls[0].startswith("data:image/png;base64,")
    assert chatbot[-1]["role"] == "assistant"
    ask(c, "What colour?", image=handle_file(str(ASSETS / "red_circle.png")))  # same image: follow-up
    body = last_chat(clean_studio.sim).json
    assert len(body["messages"]) == 3 and len(image_urls(body)) == 1


def phone_photo(size=(1080, 2376)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def sent_size(url: str) -> tuple[int, int]:
    import base64
    import io

    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        return img.size


def shrink_notes(chatbot: list) -> list[str]:
    return [content_text(m["content"]) for m in chatbot
            if (m.get("metadata") or {}).get("title", "").startswith("📐")]


@pytest.mark.parametrize(("lang", "words"), [("en", "shrunk from 1080×2376 to 931×2048"),
                                             ("zh", "从 1080×2376 缩小到 931×2048")])
def test_a_big_upload_is_shrunk_answered_and_said_once(clean_studio, tmp_path, lang, words):
    """The real service answers 400 for a picture over 2048 px a side (the simulator too): a
    1080x2376 phone photo goes out as 931x2048, with one note, kept for the follow-ups."""
    photo = tmp_path / "phone.jpg"
    photo.write_bytes(phone_photo())
    headers = {"X-ModelScope-Token": TOKEN, "accept-language": "zh-CN,zh;q=0.9" if lang == "zh" else "en-US"}
    c = Client(clean_studio.url, headers=headers, verbose=False, download_files=False)
    chatbot, *_ = ask(c, "What is in this photo?", image=handle_file(str(photo)))
    assert not error_text(chatbot)
    assert chatbot[-1]["role"] == "assistant" and "931x2048 pixels" in content_text(chatbot[-1]["content"])
    [note] = shrink_notes(chatbot)
    assert words in note and "2048" in note
    [first] = image_urls(last_chat(clean_studio.sim).json)
    assert first.startswith("data:image/jpeg;base64,") and sent_size(first) == (931, 2048)

    chatbot, *_ = ask(c, "And the colours?")  # a follow-up re-reads the kept upload and fits it
    body = last_chat(clean_studio.sim).json
    assert len(body["messages"]) == 3 and image_urls(body) == [first]  # the very same picture
    assert len(shrink_notes(chatbot)) == 1  # said once a conversation
    assert not any("📐" in json.dumps(m, ensure_ascii=False) for m in body["messages"])  # notes stay home
    chatbot, *_ = ask(c, "And the shapes?", image=handle_file(str(photo)))  # the same photo again
    assert len(shrink_notes(chatbot)) == 1 and len(last_chat(clean_studio.sim).json["messages"]) == 5


def test_an_upload_that_fits_is_sent_as_it_came_without_a_note(handler, fake_request, uploaded, simulator):
    data = (ASSETS / "street_sign.jpg").read_bytes()
    chatbot = run(handler, fake_request, image=uploaded(data, "sign.jpg"))[-1][0]
    assert not shrink_notes(chatbot)
    import base64

    [url] = image_urls(last_chat(simulator).json)
    assert base64.b64decode(url.split(",", 1)[1]) == data


def test_non_image_upload_is_refused_by_name(clean_studio, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not really a picture")
    before = len(clean_studio.sim.log)
    with pytest.raises(AppError) as info:
        ask(client(clean_studio), "What is it?", image=handle_file(str(fake)))
    assert "image" in str(info.value) and "PNG, JPEG" in str(info.value)
    assert len(clean_studio.sim.log) == before


def test_sessions_do_not_share_conversations(clean_studio):
    alice, bob = client(clean_studio, "ms-test-v-alice"), client(clean_studio, "ms-test-v-bob")
    ask(alice, "What is this?", image_url=URL)
    with pytest.raises(AppError) as info:
        ask(bob, "And the colour?")  # bob has no conversation and gave no image
    assert "image_url" in str(info.value)
    ask(bob, "Hi?", image_url="https://example.com/bob.png")
    assert URL not in json.dumps(last_chat(clean_studio.sim).json)


def test_thinking_vision_model_shows_thinking_apart(clean_studio):
    chatbot, *_ = ask(client(clean_studio), "Count the bars.", image_url=URL, model="Qwen/QVQ-72B-Preview")
    notes = [m for m in chatbot if (m.get("metadata") or {}).get("title")]
    assert len(notes) == 1 and notes[0]["metadata"]["title"].endswith("Thinking")
    assert chatbot[-1]["role"] == "assistant" and not chatbot[-1].get("metadata")


@pytest.mark.parametrize(("token", "expected"), [(None, "No ModelScope token"),
                                                 ("ms-test-unverified", "real-name")])
def test_errors_are_explained(clean_studio, token, expected):
    with pytest.raises(AppError) as info:
        ask(client(clean_studio, token), "What is this?", image_url=URL)
    assert expected in str(info.value)


def test_the_browser_gets_errors_as_a_note_and_keeps_the_question(simulator, fake_request):
    ask_ui = vision_tab.make_ask(AppContext(base_url=simulator.base_url))
    outputs = list(ask_ui(URL, None, "What is this?", VL, None, "ms-test-quota", fake_request()))
    chatbot, conversation, question_box, _, code = outputs[-1]
    assert "quota" in error_text(chatbot) and chatbot[-2]["content"] == "What is this?"
    assert conversation == gr.skip() and question_box == gr.skip()  # both left as they were
    assert "chat.completions.create" in code


def test_stream_cut_keeps_the_partial_answer(clean_studio):
    clean_studio.sim.inject("stream_cut", scope="chat")
    chatbot, question_box, *_ = ask(client(clean_studio), "Describe it in detail.", image_url=URL)
    assert any("cut off" in (m.get("metadata") or {}).get("title", "") for m in chatbot)


# --------------------------------------------------------------------------- validation (handler)


@pytest.fixture
def handler(simulator):
    return vision_tab.make_ask(AppContext(base_url=simulator.base_url))


def run(handler, fake_request, *, image_url="", image=None, question="What is it?", model=VL, conv=None):
    return list(handler(image_url, image, question, model, conv, TOKEN, fake_request()))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"question": "  ", "image_url": URL}, "question"),
    ({"image_url": ""}, "image_url"),
    ({"image_url": "ftp://example.com/a.png"}, "image_url"),
    ({"image_url": "file:///etc/passwd"}, "image_url"),
    ({"image_url": URL, "model": ""}, "model"),
])
def test_bad_input_names_the_field(handler, fake_request, simulator, kwargs, field):
    before = len(simulator.log)
    note = error_text(run(handler, fake_request, **kwargs)[-1][0])
    assert field in note and "Nothing was sent" in note
    assert len(simulator.log) == before


def test_upload_that_is_not_an_image_is_refused(handler, fake_request, uploaded):
    fake = uploaded(b"not really a picture", "notes.png")
    note = error_text(run(handler, fake_request, image=fake)[-1][0])
    assert "image" in note and "PNG, JPEG" in note


def test_upload_too_large_is_refused(handler, fake_request, uploaded, monkeypatch):
    from ui import uploads

    monkeypatch.setattr(uploads.read_upload, "__defaults__", ("image", 1000))
    note = error_text(run(handler, fake_request, image=uploaded(ASSETS / "street_sign.jpg"))[-1][0])
    assert "at most" in note


def test_upload_wins_over_url(handler, fake_request, simulator):
    outs = run(handler, fake_request, image_url=URL, image=str(ASSETS / "bar_chart.png"))
    urls = image_urls(last_chat(simulator).json)
    assert urls[0].startswith("data:image/png;base64,") and URL not in urls
    conv = outs[-1][1]
    assert conv["key"].startswith("file:") and conv["messages"][-1]["role"] == "assistant"


def test_preview_is_rendered_by_the_browser_only():
    assert "<img" in vision_tab.PREVIEW_JS and "https?" in vision_tab.PREVIEW_JS
