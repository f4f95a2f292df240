"""The simulator over real HTTP: requests/httpx and the real openai SDK."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import openai
import pytest
import requests
from PIL import Image, ImageStat

from modelscope_api import catalog, wire
from modelscope_api.config import fingerprint
from modelscope_api.simulator import FAULTS, TEST_TOKENS, SimConfig, Simulator

CHAT = "Qwen/Qwen2.5-72B-Instruct"  # no thinking
SWITCH = "Qwen/Qwen3-8B"  # enable_thinking switch
ALWAYS = "Qwen/QwQ-32B"  # always reasons
VISION = "Qwen/Qwen2.5-VL-72B-Instruct"
IMAGE = "Qwen/Qwen-Image"
EDIT = "Qwen/Qwen-Image-Edit"
TASK_SECONDS = 0.5


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(task_seconds=TASK_SECONDS, ttft=0.02, tokens_per_second=2000, slow_ttft=0.6)
    with Simulator(config) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(sim):
    sim.clear_faults()
    yield
    sim.clear_faults()


@pytest.fixture
def token():
    return f"ms-test-{uuid.uuid4().hex[:10]}"


def client(sim, token, **kw) -> openai.OpenAI:
    return openai.OpenAI(api_key=token, base_url=sim.base_url + "v1/", max_retries=0, **kw)


def auth(token, **extra) -> dict:
    return {"Authorization": f"Bearer {token}", **extra}


def chat_post(sim, token, body, **headers) -> requests.Response:
    return requests.post(
        sim.base_url + wire.CHAT_COMPLETIONS_PATH, json=body, headers=auth(token, **headers)
    )


def user(text):
    return [{"role": "user", "content": text}]


def submit(sim, token, body=None, *, async_mode=True, **headers) -> requests.Response:
    body = {"model": IMAGE, "prompt": "a red fox in snow", **(body or {})}
    if async_mode:
        headers[wire.ASYNC_MODE_HEADER] = "true"
    return requests.post(sim.base_url + wire.IMAGES_PATH, json=body, headers=auth(token, **headers))


def poll(sim, token, task_id, *, task_type=True, **headers) -> requests.Response:
    if task_type:
        headers[wire.TASK_TYPE_HEADER] = wire.TASK_TYPE_IMAGE
    url = sim.base_url + wire.TASK_PATH.format(task_id=task_id)
    return requests.get(url, headers=auth(token, **headers))


def wait_task(sim, token, task_id, timeout=5.0) -> tuple[dict, list[str]]:
    seen: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = poll(sim, token, task_id).json()
        if not seen or seen[-1] != body["task_status"]:
            seen.append(body["task_status"])
        if body["task_status"] not in wire.RUNNING_STATUSES:
            return body, seen
        time.sleep(0.03)
    raise AssertionError(f"task {task_id} still running: {seen}")


def generate(sim, token, body=None) -> tuple[dict, bytes]:
    r = submit(sim, token, body)
    assert r.status_code == 200, r.text
    done, _ = wait_task(sim, token, r.json()["task_id"])
    assert done["task_status"] == wire.STATUS_SUCCEED, done
    img = requests.get(done["output_images"][0])
    assert img.status_code == 200
    return done, img.content


def png_data_url(colour, size=(64, 48)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def stream_raw(sim, token, body, **headers) -> list[str]:
    """The raw SSE data payloads of a streamed chat (reads until the server stops)."""
    payloads = []
    with httpx.stream(
        "POST",
        sim.base_url + wire.CHAT_COMPLETIONS_PATH,
        json={**body, "stream": True},
        headers=auth(token, **headers),
        timeout=10,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                payloads.append(line[len("data: ") :])
    return payloads


def stream_deltas(sim, token, **kw) -> tuple[list, object]:
    deltas, last = [], None
    for chunk in client(sim, token).chat.completions.create(stream=True, **kw):
        if chunk.choices:
            d = chunk.choices[0].delta
            deltas.append((getattr(d, "reasoning_content", None), d.content))
        last = chunk
    return deltas, last


# ---- lifecycle ------------------------------------------------------------------------------
def test_start_and_stop_are_fast():
    t0 = time.monotonic()
    s = Simulator(SimConfig(ttft=0.01, slow_ttft=30))
    s.start()
    started = time.monotonic() - t0
    assert s.base_url.startswith("http://127.0.0.1:") and s.base_url.endswith("/")
    assert requests.get(s.base_url + "_sim/health").json()["ok"] is True
    # an open, slow stream must not hold up stop()
    holder = concurrent.futures.ThreadPoolExecutor(1)
    holder.submit(
        lambda: chat_post(
            s,
            "ms-test-x",
            {"model": CHAT, "messages": user("hi"), "stream": True},
            **{"X-Sim-Fault": "slow_first_token"},
        )
    )
    time.sleep(0.1)
    t1 = time.monotonic()
    s.stop()
    assert started < 2 and time.monotonic() - t1 < 2
    holder.shutdown(wait=False)
    with pytest.raises(requests.ConnectionError):
        requests.get(s.base_url + "_sim/health", timeout=1)


# ---- tokens ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tok, status, text",
    [
        ("ms-test-anything", 200, None),
        ("ms-offline-demo", 200, None),
        (TEST_TOKENS["unbound"], 401, wire.MSG_ALIYUN_NOT_BOUND),
        (TEST_TOKENS["unverified"], 403, "real-name"),
        (TEST_TOKENS["quota"], 429, None),
        ("ms-1234-not-a-test-token", 401, wire.MSG_AUTH_FAILED),
        (None, 401, wire.MSG_AUTH_FAILED),
    ],
)
@pytest.mark.parametrize("endpoint", ["chat", "images"])
def test_token_behaviors(sim, tok, status, text, endpoint):
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    if endpoint == "chat":
        body = {"model": CHAT, "messages": user("hi"), "max_tokens": 1}
        r = requests.post(sim.base_url + wire.CHAT_COMPLETIONS_PATH, json=body, headers=headers)
    else:
        headers[wire.ASYNC_MODE_HEADER] = "true"
        body = {"model": IMAGE, "prompt": "x"}
        r = requests.post(sim.base_url + wire.IMAGES_PATH, json=body, headers=headers)
    assert r.status_code == status, r.text
    if text:
        assert text in r.text
    assert r.json()["request_id"]


def test_added_tokens(sim):
    sim.add_token("custom-secret-1", "ok")
    sim.add_token("custom-secret-2", "unbound")
    sim.add_token("ms-test-was-fine", "unverified")
    body = {"model": CHAT, "messages": user("hi"), "max_tokens": 1}
    assert chat_post(sim, "custom-secret-1", body).status_code == 200
    assert chat_post(sim, "custom-secret-2", body).status_code == 401
    assert chat_post(sim, "ms-test-was-fine", body).status_code == 403
    assert chat_post(sim, "custom-secret-3", body).status_code == 401
    with pytest.raises(ValueError):
        sim.add_token("x", "weird")


def test_polls_work_for_quota_token_but_auth_is_checked(sim):
    assert poll(sim, TEST_TOKENS["quota"], "1").status_code == 404  # not 429: polls don't count
    assert poll(sim, TEST_TOKENS["unbound"], "1").status_code == 401
    assert poll(sim, "bad", "1").status_code == 401


def test_models_list_answers_200_even_for_bad_token(sim):
    for headers in ({}, {"Authorization": "Bearer nonsense"}, auth("ms-test-unbound")):
        r = requests.get(sim.base_url + wire.MODELS_PATH, headers=headers)
        assert r.status_code == 200
        ids = [m["id"] for m in r.json()["data"]]
        assert r.json()["object"] == "list"
        assert set(catalog.CHAT_MODELS) <= set(ids) and IMAGE in ids
    models = client(sim, "whatever").models.list()
    assert CHAT in [m.id for m in models.data]


# ---- error shapes and quota headers -----------------------------------------------------------
def test_both_error_shapes_on_chat_and_images(sim, token):
    # chat: 400 -> "error", 429 -> "errors"
    r = chat_post(sim, token, {"model": "nope/nope", "messages": user("hi")})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "code", "type"}
    assert "Model id : nope/nope , has no provider supported" == r.json()["error"]["message"]
    sim.inject("429", token=token)
    r = chat_post(sim, token, {"model": CHAT, "messages": user("hi")})
    assert r.status_code == 429 and r.json()["errors"]["message"] == wire.MSG_RATE_LIMIT
    # images: 400 -> "errors", 429 -> "error" too_many_requests
    r = submit(sim, token, {"model": "nope/nope"})
    assert r.status_code == 400 and "has no provider supported" in r.json()["errors"]["message"]
    sim.inject("429", token=token)
    r = submit(sim, token)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == wire.CODE_TOO_MANY_REQUESTS
    assert r.json()["error"]["message"] == wire.MSG_QUOTA_CN
    for resp in (r,):
        assert uuid.UUID(resp.json()["request_id"])


def _remaining(r) -> tuple[int, int]:
    return (
        int(r.headers[wire.RATELIMIT_REQUESTS_REMAINING]),
        int(r.headers[wire.RATELIMIT_MODEL_REQUESTS_REMAINING]),
    )


def test_ratelimit_headers_go_down_and_hit_429():
    with Simulator(SimConfig(ttft=0, requests_limit=5, model_requests_limit=3)) as s:
        tok = "ms-test-quota-run"
        body = {"model": CHAT, "messages": user("hi"), "max_tokens": 1}
        r1 = chat_post(s, tok, body)
        assert r1.headers[wire.RATELIMIT_REQUESTS_LIMIT] == "5"
        assert r1.headers[wire.RATELIMIT_MODEL_REQUESTS_LIMIT] == "3"
        assert _remaining(r1) == (4, 2)
        r2 = chat_post(s, tok, {**body, "max_tokens": 0})  # a 400 counts and carries headers
        assert r2.status_code == 400 and _remaining(r2) == (3, 1)
        assert _remaining(chat_post(s, tok, body)) == (2, 0)
        r4 = chat_post(s, tok, body)
        assert r4.status_code == 429 and _remaining(r4) == (2, 0)
        assert r4.json()["errors"]["message"] == wire.MSG_RATE_LIMIT
        r5 = submit(s, tok)  # another model still has quota
        assert r5.status_code == 200 and _remaining(r5) == (1, 2)
        assert _remaining(submit(s, tok)) == (0, 1)
        r7 = submit(s, tok)
        assert r7.status_code == 429 and r7.json()["error"]["code"] == "too_many_requests"
        assert _remaining(chat_post(s, "ms-test-other", body)) == (4, 2)  # per token
        s.reset_quota()
        assert chat_post(s, tok, body).status_code == 200


# ---- chat ---------------------------------------------------------------------------------------
def test_chat_non_stream_and_one_token_check(sim, token):
    c = client(sim, token)
    r = c.chat.completions.create(model=CHAT, messages=user("What is the capital of France?"))
    text = r.choices[0].message.content
    assert 'You asked: "What is the capital of France?"' in text
    assert r.choices[0].finish_reason == "stop"
    assert 40 <= r.usage.completion_tokens <= 80
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    again = c.chat.completions.create(model=CHAT, messages=user("What is the capital of France?"))
    assert again.choices[0].message.content == text  # deterministic
    one = c.chat.completions.create(model=CHAT, messages=user("ping"), max_tokens=1)
    assert one.usage.completion_tokens == 1 and one.choices[0].finish_reason == "length"


def test_chat_stream_sse_format(sim, token):
    payloads = stream_raw(sim, token, {"model": CHAT, "messages": user("Tell me about owls")})
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.startswith('You asked: "Tell me about owls".')
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == len(chunks) - 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_stream_with_openai_sdk_and_max_tokens(sim, token):
    deltas, last = stream_deltas(sim, token, model=CHAT, messages=user("count"), max_tokens=25)
    assert len([d for d in deltas if d[1]]) == 25
    assert last.choices[0].finish_reason == "length"
    assert last.usage.completion_tokens == 25


def test_token_rate_is_accurate(sim, token):
    sim.set_config(tokens_per_second=500)
    try:
        t0 = time.monotonic()
        deltas, _ = stream_deltas(sim, token, model=CHAT, messages=user("go"), max_tokens=250)
        elapsed = time.monotonic() - t0
    finally:
        sim.set_config(tokens_per_second=2000)
    assert len(deltas) == 251
    assert 0.45 <= elapsed <= 1.5, elapsed  # 249 gaps at 500 tok/s = 0.5 s, plus ttft


@pytest.mark.parametrize(
    "model, extra",
    [
        (SWITCH, {}),
        (SWITCH, {"enable_thinking": True}),
        (ALWAYS, {}),
        (ALWAYS, {"enable_thinking": False}),
    ],
)
def test_reasoning_streams_first(sim, token, model, extra):
    deltas, last = stream_deltas(
        sim, token, model=model, messages=user("why?"), extra_body=extra or None
    )
    kinds = ["r" if r else "c" for r, c in deltas if r or c]
    assert kinds[0] == "r" and "c" in kinds
    first_c = kinds.index("c")
    assert set(kinds[first_c:]) == {"c"}  # all reasoning before any content
    reasoning_deltas = [d for d in deltas if d[0]]
    assert {c for _, c in reasoning_deltas} == {"", None}  # both forms of "unused"
    content_deltas = [d for d in deltas if d[1]]
    assert {r for r, _ in content_deltas} == {"", None}
    assert "".join(r for r, _ in reasoning_deltas).startswith("Let me think about")
    assert last.usage.completion_tokens_details.reasoning_tokens == len(reasoning_deltas)


def test_thinking_switch_off_and_budget(sim, token):
    deltas, _ = stream_deltas(
        sim, token, model=SWITCH, messages=user("hi"), extra_body={"enable_thinking": False}
    )
    assert not any(r for r, _ in deltas)
    deltas, _ = stream_deltas(
        sim, token, model=SWITCH, messages=user("hi"), extra_body={"thinking_budget": 5}
    )
    assert len([r for r, _ in deltas if r]) == 5
    deltas, _ = stream_deltas(sim, token, model=CHAT, messages=user("hi"))
    assert not any(r for r, _ in deltas)


def test_thinking_non_stream_is_400(sim, token):
    c = client(sim, token)
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model=SWITCH, messages=user("hi"))
    assert wire.MSG_THINKING_NON_STREAM in str(exc.value)
    r = chat_post(sim, token, {"model": SWITCH, "messages": user("hi"), "enable_thinking": True})
    assert r.status_code == 400 and r.json()["error"]["message"] == wire.MSG_THINKING_NON_STREAM
    ok = c.chat.completions.create(
        model=SWITCH, messages=user("hi"), max_tokens=1, extra_body={"enable_thinking": False}
    )
    assert ok.usage.completion_tokens == 1


def test_chat_bad_requests(sim, token):
    for body in (
        {"model": CHAT},
        {"model": CHAT, "messages": []},
        {"messages": user("hi")},
        {"model": CHAT, "messages": user("hi"), "max_tokens": 0},
        {"model": CHAT, "messages": [{"role": "system", "content": "only system"}]},
    ):
        r = chat_post(sim, token, body)
        assert r.status_code == 400 and r.json()["error"]["message"], body
    r = requests.post(
        sim.base_url + wire.CHAT_COMPLETIONS_PATH, data="not json", headers=auth(token)
    )
    assert r.status_code == 400


# ---- vision -----------------------------------------------------------------------------------
def test_vision_needs_an_image(sim, token):
    r = chat_post(sim, token, {"model": VISION, "messages": user("what is this?")})
    assert r.status_code == 400 and "image_url" in r.json()["error"]["message"]


def test_vision_describes_data_url_and_http_url(sim, token):
    c = client(sim, token)
    content = [
        {"type": "image_url", "image_url": {"url": png_data_url((230, 20, 20))}},
        {"type": "text", "text": "What colour is it?"},
    ]
    r = c.chat.completions.create(model=VISION, messages=[{"role": "user", "content": content}])
    text = r.choices[0].message.content
    assert "PNG image of 64x48 pixels, mostly red" in text and "What colour is it?" in text
    content = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "https://example.com/pics/cat.jpg?x=1"}},
    ]
    deltas, _ = stream_deltas(
        sim, token, model=VISION, messages=[{"role": "user", "content": content}]
    )
    assert "cat.jpg" in "".join(c or "" for _, c in deltas)
    # the image may be in an earlier user turn
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": png_data_url((20, 20, 230))}}],
        },
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and now?"},
    ]
    r = c.chat.completions.create(model=VISION, messages=messages)
    assert "mostly blue" in r.choices[0].message.content


def test_text_model_rejects_images(sim, token):
    content = [{"type": "image_url", "image_url": {"url": png_data_url((0, 255, 0))}}]
    r = chat_post(sim, token, {"model": CHAT, "messages": [{"role": "user", "content": content}]})
    assert r.status_code == 400


def test_vision_refuses_a_picture_over_2048_a_side_in_the_real_words(sim, token):
    """The real service: 400 input size exceed limit 2048x2048,current input:(1080,2376)."""
    big = png_data_url((90, 90, 90), size=(1080, 2376))
    content = [{"type": "image_url", "image_url": {"url": big}}, {"type": "text", "text": "What is it?"}]
    r = chat_post(sim, token, {"model": VISION, "messages": [{"role": "user", "content": content}]})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "input size exceed limit 2048x2048,current input:(1080,2376)"
    assert r.json()["error"]["code"] == "invalid_parameter_error"
    assert wire.RATELIMIT_REQUESTS_REMAINING in r.headers  # counted like any 400
    # an earlier user turn's picture counts too; the openai SDK sees a BadRequestError
    messages = [{"role": "user", "content": content[:1]}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "and now?"}]
    with pytest.raises(openai.BadRequestError) as info:
        client(sim, token).chat.completions.create(model=VISION, messages=messages)
    assert "current input:(1080,2376)" in str(info.value)
    # exactly 2048 a side is fine
    fits = [{"type": "image_url", "image_url": {"url": png_data_url((90, 90, 90), size=(931, 2048))}},
            {"type": "text", "text": "What is it?"}]
    r = chat_post(sim, token, {"model": VISION, "messages": [{"role": "user", "content": fits}]})
    assert r.status_code == 200 and "931x2048 pixels" in r.json()["choices"][0]["message"]["content"]


def test_edit_refuses_a_picture_over_2048_a_side(sim, token):
    r = submit(sim, token, {"model": EDIT, "prompt": "add a hat",
                            "image_url": [png_data_url((1, 2, 3)), png_data_url((9, 9, 9), size=(2376, 1080))]})
    assert r.status_code == 400
    assert r.json()["errors"]["message"] == "input size exceed limit 2048x2048,current input:(2376,1080)"
    r = submit(sim, token, {"model": EDIT, "prompt": "add a hat",
                            "image_url": png_data_url((9, 9, 9), size=(2048, 931))})
    assert r.status_code == 200, r.text


# ---- images -----------------------------------------------------------------------------------
def test_async_header_required(sim, token):
    r = submit(sim, token, async_mode=False)
    assert r.status_code == 400 and r.json()["errors"]["message"] == wire.MSG_ASYNC_REQUIRED
    assert wire.RATELIMIT_REQUESTS_REMAINING in r.headers


MAX = 2**31 - 1
FLUX = "black-forest-labs/FLUX.1-Krea-dev"
ZIMG = "Tongyi-MAI/Z-Image-Turbo"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"


@pytest.mark.parametrize(
    "body, ok, field",
    [
        ({"prompt": "p" * 1999}, True, "prompt"),
        ({"prompt": "p" * 2000}, False, "prompt"),
        ({"prompt": ""}, False, "prompt"),
        ({"prompt": "   "}, False, "prompt"),
        ({"prompt": None}, False, "prompt"),
        ({"negative_prompt": "n" * 1999}, True, "negative_prompt"),
        ({"negative_prompt": "n" * 2000}, False, "negative_prompt"),
        ({"size": "64x64"}, True, "size"),
        ({"size": "63x64"}, False, "size"),
        ({"size": "1664x1664"}, True, "size"),
        ({"size": "1665x1664"}, False, "size"),
        ({"size": "16:9"}, False, "size"),
        ({"size": "1024*1024"}, False, "size"),
        ({"size": 1024}, False, "size"),
        ({"model": FLUX, "size": "1024x1024"}, True, "size"),
        ({"model": FLUX, "size": "1025x1024"}, False, "size"),
        ({"model": ZIMG, "size": "512x512"}, True, "size"),
        ({"model": ZIMG, "size": "511x512"}, False, "size"),
        ({"model": ZIMG, "size": "2048x2048"}, True, "size"),
        ({"model": SDXL, "size": "2048x2048"}, True, "size"),
        ({"model": SDXL, "size": "2049x2048"}, False, "size"),
        ({"seed": 0}, True, "seed"),
        ({"seed": -1}, False, "seed"),
        ({"seed": MAX}, True, "seed"),
        ({"seed": MAX + 1}, False, "seed"),
        ({"seed": 1.5}, False, "seed"),
        ({"steps": 1}, True, "steps"),
        ({"steps": 0}, False, "steps"),
        ({"steps": 100}, True, "steps"),
        ({"steps": 101}, False, "steps"),
        ({"guidance": 1.5}, True, "guidance"),
        ({"guidance": 1.49}, False, "guidance"),
        ({"guidance": 20}, True, "guidance"),
        ({"guidance": 20.01}, False, "guidance"),
        ({"loras": "someone/my-lora"}, True, "loras"),
        ({"loras": ""}, False, "loras"),
        ({"loras": {f"u/l{i}": 1 / 6 for i in range(6)}}, True, "loras"),
        ({"loras": {f"u/l{i}": 1 / 7 for i in range(7)}}, False, "loras"),
        ({"loras": {"a/x": 0.6, "b/y": 0.4 + 1e-7}}, True, "loras"),
        ({"loras": {"a/x": 0.6, "b/y": 0.41}}, False, "loras"),
        ({"loras": {"": 1.0}}, False, "loras"),
        ({"loras": {}}, False, "loras"),
        ({"image_url": "https://example.com/a.png"}, True, "image_url"),
        (
            {"image_url": ["https://example.com/a.png", "data:image/png;base64,AAAA"]},
            True,
            "image_url",
        ),
        ({"image_url": "ftp://example.com/a.png"}, False, "image_url"),
        ({"image_url": []}, False, "image_url"),
        ({"model": EDIT}, False, "image_url"),
        ({"model": EDIT, "image_url": "https://example.com/a.png"}, True, "image_url"),
        ({"model": ""}, False, "model"),
    ],
)
def test_image_validation_boundaries(sim, token, body, ok, field):
    r = submit(sim, token, body)
    if ok:
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["task_status"] == wire.STATUS_SUCCEED and data["task_id"].isdigit()
        assert uuid.UUID(data["request_id"])
    else:
        assert r.status_code == 400, r.text
        assert field in r.json()["errors"]["message"]


def test_task_type_header_and_owner_required(sim, token):
    task_id = submit(sim, token).json()["task_id"]
    r = poll(sim, token, task_id, task_type=False)
    assert r.status_code == 404 and wire.MSG_TASK_NOT_FOUND in r.json()["errors"]["message"]
    r = poll(sim, "ms-test-someone-else", task_id)
    assert r.status_code == 404 and wire.MSG_TASK_NOT_FOUND in r.text
    assert poll(sim, token, "999999999999").status_code == 404
    assert poll(sim, token, task_id).status_code == 200


def test_status_progression_and_result(sim, token):
    r = submit(sim, token, {"size": "128x96"})
    task_id = r.json()["task_id"]
    first = poll(sim, token, task_id).json()
    assert first["task_status"] == wire.STATUS_PENDING and first["outputs"] == {}
    assert sim.task_finished_at(task_id) is None
    done, seen = wait_task(sim, token, task_id)
    assert seen[0] == "PENDING" and seen[-1] == "SUCCEED"
    assert "RUNNING" in seen and set(seen) <= {"PENDING", "RUNNING", "PROCESSING", "SUCCEED"}
    assert seen.index("RUNNING") < seen.index("SUCCEED")
    assert done["output_images"][0].startswith(sim.base_url + "_sim/files/")
    assert done["time_taken"] >= TASK_SECONDS * 1000 and done["task_id"] == ""
    used = done["input"]
    assert used["size"] == "128x96" and 0 <= used["seed"] <= MAX
    assert used["steps"] >= 1 and used["prompt"] == "a red fox in snow"
    finished = sim.task_finished_at(task_id)
    assert finished is not None and finished <= time.time()
    img = requests.get(done["output_images"][0])
    assert img.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(img.content)).size == (128, 96)


def test_png_is_deterministic(sim, token):
    body = {"prompt": "lighthouse at dusk", "seed": 42, "size": "256x128"}
    a_done, a = generate(sim, token, body)
    _, b = generate(sim, token, body)
    _, c = generate(sim, token, {**body, "seed": 43})
    assert a_done["input"]["seed"] == 42
    assert a == b and a != c
    assert a.startswith(b"\x89PNG")


def test_big_image_is_quick(sim, token):
    t0 = time.monotonic()
    _, png = generate(sim, token, {"model": SDXL, "size": "2048x2048", "seed": 1})
    assert Image.open(io.BytesIO(png)).size == (2048, 2048)
    assert time.monotonic() - t0 < TASK_SECONDS + 1.5


def test_edit_derives_from_input(sim, token):
    data_url = png_data_url((250, 250, 0), size=(96, 64))
    # a fixed seed: with a random one, a random shape may cover any single pixel
    done, png = generate(
        sim, token, {"model": EDIT, "prompt": "add a hat", "image_url": data_url, "seed": 3}
    )
    assert done["input"]["size"] == "96x64"  # defaults to the input's size
    assert done["input"]["image_url"].startswith("data:image/png;base64,...")
    im = Image.open(io.BytesIO(png)).convert("RGB")
    r, g, b = ImageStat.Stat(im).median
    assert r > 150 and g > 150 and b < r - 60  # still mostly yellow
    # a URL served by the simulator itself works as input too
    done2, png2 = generate(
        sim, token, {"model": EDIT, "prompt": "x", "image_url": done["output_images"][0], "seed": 5}
    )
    assert done2["input"]["size"] == "96x64"


# ---- faults -------------------------------------------------------------------------------------
def test_fault_names():
    assert set(FAULTS) == {
        "500",
        "502",
        "429",
        "slow_first_token",
        "stream_cut",
        "malformed_chunk",
        "task_failed",
        "spurious_failed",
        "task_never_finishes",
        "image_404",
        "task_not_found",
        "task_canceled",
        "task_unknown",
        "task_failed_flat",
        "task_failed_error",
        "hollow_reply",
        "hollow_chunks",
        "thinking_alt_wording",
        "unbound_inner_id",
        "bare_400",
        "no_quota_headers",
    }


def test_fault_500_and_502(sim, token):
    body = {"model": CHAT, "messages": user("hi"), "max_tokens": 1}
    sim.inject("500")
    r = chat_post(sim, token, body)
    assert r.status_code == 500 and r.json()["errors"]["message"] == wire.MSG_SERVER_BUSY
    assert chat_post(sim, token, body).status_code == 200  # one-shot
    sim.inject("502", scope="chat")
    r = chat_post(sim, token, body)
    assert r.status_code == 502 and "<html>" in r.text
    sim.inject("502", scope="images")
    assert chat_post(sim, token, body).status_code == 200  # scope: not chat
    r = submit(sim, token)
    assert r.status_code == 502 and r.json()["errors"]["message"] == wire.MSG_SERVER_BUSY
    sim.inject("500", scope="task")
    assert poll(sim, token, "1").status_code == 500
    sim.inject("500", scope="models")
    assert requests.get(sim.base_url + wire.MODELS_PATH).status_code == 500
    with pytest.raises(openai.InternalServerError):
        client(sim, token).chat.completions.create(
            model=CHAT, messages=user("hi"), extra_headers={"X-Sim-Fault": "500"}
        )


def test_fault_token_times_and_forever(sim, token):
    body = {"model": CHAT, "messages": user("hi"), "max_tokens": 1}
    sim.inject("429", token=token, times=2)
    assert chat_post(sim, "ms-test-bystander", body).status_code == 200
    assert [chat_post(sim, token, body).status_code for _ in range(3)] == [429, 429, 200]
    sim.inject("500", times=None, scope="chat")
    assert [chat_post(sim, token, body).status_code for _ in range(3)] == [500] * 3
    sim.clear_faults()
    assert chat_post(sim, token, body).status_code == 200
    with pytest.raises(ValueError):
        sim.inject("explode")
    with pytest.raises(ValueError):
        sim.inject("500", scope="everywhere")


def test_unknown_header_fault_is_400(sim, token):
    r = chat_post(sim, token, {"model": CHAT, "messages": user("hi")}, **{"X-Sim-Fault": "boom"})
    assert r.status_code == 400 and "boom" in r.text


def test_fault_slow_first_token(sim, token):
    sim.inject("slow_first_token")
    t0 = time.monotonic()
    stream = client(sim, token).chat.completions.create(
        model=CHAT, messages=user("hi"), stream=True
    )
    next(iter(stream))
    assert time.monotonic() - t0 >= 0.55  # slow_ttft=0.6
    stream.close()
    t0 = time.monotonic()
    stream_deltas(sim, token, model=CHAT, messages=user("hi"), max_tokens=3)
    assert time.monotonic() - t0 < 0.4


def test_fault_stream_cut(sim, token):
    sim.inject("stream_cut")
    got = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for chunk in client(sim, token).chat.completions.create(
            model=CHAT, messages=user("hi"), stream=True, max_tokens=40
        ):
            got.append(chunk)
    assert 10 <= len(got) <= 30
    with pytest.raises(httpx.HTTPError):
        stream_raw(
            sim, token, {"model": CHAT, "messages": user("hi")}, **{"X-Sim-Fault": "stream_cut"}
        )


def test_fault_malformed_chunk(sim, token):
    payloads = stream_raw(
        sim,
        token,
        {"model": CHAT, "messages": user("hi"), "max_tokens": 20},
        **{"X-Sim-Fault": "malformed_chunk"},
    )
    bad = []
    for p in payloads[:-1]:
        try:
            json.loads(p)
        except ValueError:
            bad.append(p)
    assert len(bad) == 1 and payloads[-1] == "[DONE]"
    assert 5 < payloads.index(bad[0]) < 15
    sim.inject("malformed_chunk")
    with pytest.raises(ValueError):
        stream_deltas(sim, token, model=CHAT, messages=user("hi"), max_tokens=20)


def test_fault_task_failed(sim, token):
    sim.inject("task_failed")
    done, seen = wait_task(sim, token, submit(sim, token).json()["task_id"])
    assert done["task_status"] == wire.STATUS_FAILED and "RUNNING" in seen
    assert done["errors"] == {"code": 422, "message": wire.MSG_INAPPROPRIATE}
    assert uuid.UUID(done["request_id"])


def test_fault_spurious_failed(sim, token):
    task_id = submit(sim, token, **{"X-Sim-Fault": "spurious_failed"}).json()["task_id"]
    assert poll(sim, token, task_id).json()["task_status"] == wire.STATUS_FAILED
    done, _ = wait_task(sim, token, task_id)
    assert done["task_status"] == wire.STATUS_SUCCEED


def test_fault_task_never_finishes(sim, token):
    sim.inject("task_never_finishes", scope="images")
    task_id = submit(sim, token).json()["task_id"]
    time.sleep(TASK_SECONDS + 0.1)
    assert poll(sim, token, task_id).json()["task_status"] == wire.STATUS_RUNNING
    assert sim.task_finished_at(task_id) is None


def test_fault_image_404(sim, token):
    sim.inject("image_404")
    done, _ = wait_task(sim, token, submit(sim, token).json()["task_id"])
    url = done["output_images"][0]
    assert requests.get(url).status_code == 404
    assert requests.get(url).status_code == 404  # that task's image stays gone
    done, png = generate(sim, token)  # the next task is fine
    sim.inject("image_404", scope="download")
    assert requests.get(done["output_images"][0]).status_code == 404
    assert requests.get(done["output_images"][0]).content == png


def test_fault_task_not_found(sim, token):
    task_id = submit(sim, token).json()["task_id"]
    sim.inject("task_not_found")
    r = poll(sim, token, task_id)
    assert r.status_code == 404 and wire.MSG_TASK_NOT_FOUND in r.text
    assert poll(sim, token, task_id).status_code == 200
    r = poll(sim, token, task_id, **{"X-Sim-Fault": "task_not_found"})
    assert r.status_code == 404


# ---- admin, log, concurrency ------------------------------------------------------------------
def test_admin_http_endpoints(sim, token):
    base = sim.base_url + "_sim/"
    health = requests.get(base + "health").json()
    assert health["ok"] and health["test_tokens"]["unbound"] == "ms-test-unbound"
    assert requests.post(base + "faults", json={"fault": "500", "scope": "chat"}).ok
    assert requests.post(base + "faults", json={"fault": "nope"}).status_code == 400
    assert chat_post(sim, token, {"model": CHAT, "messages": user("hi")}).status_code == 500
    requests.post(base + "faults", json={"fault": "429", "times": None})
    assert len(requests.get(base + "faults").json()["faults"]) == 1
    assert requests.delete(base + "faults").ok
    assert requests.get(base + "faults").json()["faults"] == []
    assert requests.post(base + "tokens", json={"token": "admin-added", "behavior": "ok"}).ok
    assert (
        chat_post(
            sim, "admin-added", {"model": CHAT, "messages": user("x"), "max_tokens": 1}
        ).status_code
        == 200
    )
    r = requests.post(base + "config", json={"task_seconds": 0.2})
    assert r.ok and r.json()["config"]["task_seconds"] == 0.2 and sim.config.task_seconds == 0.2
    assert requests.post(base + "config", json={"bogus": 1}).status_code == 400
    sim.set_config(task_seconds=TASK_SECONDS)
    task_id = submit(sim, token).json()["task_id"]
    assert requests.get(base + f"tasks/{task_id}").json()["finished_at"] is None
    log = requests.get(base + "log", params={"token": "admin-added"}).json()["requests"]
    assert [e["path"] for e in log] == ["/" + wire.CHAT_COMPLETIONS_PATH]
    assert requests.delete(base + "log").ok
    assert requests.get(base + "log").json()["requests"] == []
    assert sim.log == []


def test_log_keeps_fingerprints_only(sim):
    secret = "ms-test-" + uuid.uuid4().hex
    sim.clear_log()
    client(sim, secret).chat.completions.create(model=CHAT, messages=user("hi"), max_tokens=1)
    done, _ = generate(sim, secret, {"seed": 3, "size": "64x64"})
    requests.get(sim.base_url + "_sim/health")  # admin calls are not logged
    log = sim.log
    paths = [e.path for e in log]
    assert paths[0] == "/" + wire.CHAT_COMPLETIONS_PATH and "/_sim/health" not in paths
    assert any(p.startswith("/_sim/files/") for p in paths)  # downloads are logged
    first = log[0]
    assert first.method == "POST" and first.status == 200
    assert first.token_fingerprint == fingerprint(secret)
    assert first.headers["Authorization"] == "Bearer " + fingerprint(secret)
    assert first.json["messages"] == user("hi") and first.json["max_tokens"] == 1
    assert secret not in repr(log)
    assert secret not in requests.get(sim.base_url + "_sim/log").text
    assert len(sim.requests(path_contains="images", token=secret)) == 1
    assert len(sim.requests(token=secret)) == len(log) - 1  # all but the download
    assert sim.requests(token="ms-test-nobody") == []


def test_32_concurrent_streams_and_tasks(sim, token):
    def one_stream(i):
        deltas, last = stream_deltas(sim, token, model=CHAT, messages=user(f"q{i}"), max_tokens=50)
        return "".join(c or "" for _, c in deltas), last.usage.completion_tokens

    def one_task(i):
        done, png = generate(sim, token, {"seed": i, "size": "64x64"})
        return done["input"]["seed"], len(png)

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        streams = [pool.submit(one_stream, i) for i in range(32)]
        tasks = [pool.submit(one_task, i) for i in range(32)]
        results = [f.result(timeout=20) for f in streams]
        seeds = sorted(f.result(timeout=20)[0] for f in tasks)
    for i, (text, n) in enumerate(results):
        assert f'"q{i}"' in text and n == 50
    assert seeds == list(range(32))


def test_command_line_simulator():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelscope_api.simulator", "--port", "0", "--task-seconds", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "running at http://127.0.0.1:" in line
        base = line.split()[-1]
        assert requests.get(base + "_sim/health", timeout=5).json()["ok"]
        r = requests.post(base + "_sim/config", json={"ttft": 0}, timeout=5)
        assert r.json()["config"]["task_seconds"] == 0.1
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
