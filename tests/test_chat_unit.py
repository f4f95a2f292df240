"""ChatRequest → SDK kwargs, and vision message building (no server)."""

import io

import pytest
from PIL import Image

from modelscope_api.chat import ChatRequest, image_part, image_to_data_url, vision_message
from modelscope_api.errors import ValidationError

USER = [{"role": "user", "content": "hi"}]


def test_thinking_only_sent_when_asked():
    kw = ChatRequest("Qwen/Qwen2.5-72B-Instruct", USER).create_kwargs()
    assert "extra_body" not in kw and kw["stream"] is True
    kw = ChatRequest("Qwen/Qwen3-32B", USER, enable_thinking=True, thinking_budget=50).create_kwargs()
    assert kw["extra_body"] == {"enable_thinking": True, "thinking_budget": 50}
    kw = ChatRequest("Qwen/Qwen3-32B", USER, enable_thinking=False).create_kwargs()
    assert kw["extra_body"] == {"enable_thinking": False}


def test_never_thinking_without_stream():
    with pytest.raises(ValidationError):
        ChatRequest("Qwen/Qwen3-32B", USER, enable_thinking=True).create_kwargs(stream=False)
    # a hybrid model thinks by default, which the service refuses without streaming
    kw = ChatRequest("Qwen/Qwen3-32B", USER).create_kwargs(stream=False)
    assert kw["extra_body"] == {"enable_thinking": False}


def test_system_prompt_and_sampling():
    kw = ChatRequest("m/x", USER, system_prompt="be brief", temperature=0.3, top_p=0.9,
                     max_tokens=64).create_kwargs()
    assert kw["messages"][0] == {"role": "system", "content": "be brief"}
    assert (kw["temperature"], kw["top_p"], kw["max_tokens"]) == (0.3, 0.9, 64)


@pytest.mark.parametrize("field,value", [("temperature", 2.1), ("temperature", -0.1), ("top_p", 0),
                                         ("top_p", 1.01), ("max_tokens", 0)])
def test_sampling_bounds(field, value):
    with pytest.raises(ValidationError) as info:
        ChatRequest("m/x", USER, **{field: value}).create_kwargs()
    assert info.value.field == field


def png_bytes(color=(255, 0, 0), size=(8, 6), fmt="PNG"):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def test_data_url_from_bytes_and_file(tmp_path):
    assert image_to_data_url(png_bytes()).startswith("data:image/png;base64,")
    p = tmp_path / "x.jpg"
    p.write_bytes(png_bytes(fmt="JPEG"))
    assert image_to_data_url(p).startswith("data:image/jpeg;base64,")


def test_non_image_and_huge_uploads_are_refused(tmp_path):
    with pytest.raises(ValidationError):
        image_to_data_url(b"%PDF-1.4 not an image")
    with pytest.raises(ValidationError):
        image_to_data_url(b"")
    with pytest.raises(ValidationError):
        image_to_data_url(png_bytes(), max_bytes=10)


def test_vision_message_parts():
    msg = vision_message("What is this?", "https://example.com/cat.png")
    assert msg["content"][0] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert msg["content"][1] == {"type": "text", "text": "What is this?"}
    with pytest.raises(ValidationError):
        vision_message("", "https://example.com/cat.png")
    for bad in ("ftp://x/y.png", "htp:/broken", "not a url"):
        with pytest.raises(ValidationError):
            image_part(bad)
