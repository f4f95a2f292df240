"""The chat client with the real openai SDK against the simulator."""

import base64
import io

import pytest
from PIL import Image

from modelscope_api import errors
from modelscope_api.chat import (
    ChatClient,
    ChatDone,
    ChatRequest,
    ContentDelta,
    ReasoningDelta,
    vision_message,
)
from modelscope_api.simulator import SimConfig, Simulator

TOKEN = "ms-test-chat-client"
PLAIN = "Qwen/Qwen2.5-72B-Instruct"
HYBRID = "Qwen/Qwen3-32B"
REASONER = "Qwen/QwQ-32B"
VL = "Qwen/Qwen2.5-VL-72B-Instruct"


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(task_seconds=0.3, ttft=0.01, tokens_per_second=5000, slow_ttft=0.5)) as s:
        yield s


pytestmark = pytest.mark.usefixtures("fresh_sim")  # conftest: no faults, empty log per test


def ask(text, model=PLAIN, **kw):
    return ChatRequest(model, [{"role": "user", "content": text}], **kw)


def run(sim, req, token=TOKEN, **kw):
    return list(ChatClient(token, sim.base_url, **kw).stream(req))


def test_stream_yields_answer_then_done(sim):
    events = run(sim, ask("What is a quicksort?"))
    deltas = [e for e in events if isinstance(e, ContentDelta)]
    done = events[-1]
    assert isinstance(done, ChatDone) and len(deltas) > 3
    assert done.content == "".join(d.text for d in deltas)
    assert "quicksort" in done.content.lower()
    assert done.finish_reason == "stop" and done.usage["completion_tokens"] > 0
    assert done.quota and done.quota.requests_remaining is not None
    assert not any(isinstance(e, ReasoningDelta) for e in events)


def test_max_tokens_gives_exactly_that_many(sim):
    done = run(sim, ask("count", max_tokens=50))[-1]
    assert done.finish_reason == "length" and done.usage["completion_tokens"] == 50


@pytest.mark.parametrize("model,thinking", [(REASONER, None), (HYBRID, True), (HYBRID, None)])
def test_reasoning_comes_first_and_apart(sim, model, thinking):
    events = run(sim, ask("Why is the sky blue?", model=model, enable_thinking=thinking))
    kinds = [type(e).__name__ for e in events]
    assert "ReasoningDelta" in kinds and "ContentDelta" in kinds
    assert kinds.index("ContentDelta") > kinds.index("ReasoningDelta")
    done = events[-1]
    assert done.reasoning and done.content and done.reasoning not in done.content


def test_thinking_switched_off(sim):
    events = run(sim, ask("hi", model=HYBRID, enable_thinking=False))
    assert not any(isinstance(e, ReasoningDelta) for e in events)
    body = [r for r in sim.log if r.path.endswith("/chat/completions")][0].json
    assert body["enable_thinking"] is False


def test_non_streaming_hybrid_model_works(sim):
    result = ChatClient(TOKEN, sim.base_url).complete(ask("hi", model=HYBRID))
    assert result.content


def test_check_token(sim):
    assert ChatClient(TOKEN, sim.base_url).check_token().quota is not None
    body = sim.log[-1].json
    assert body["max_tokens"] == 1 and body["stream"] is False
    with pytest.raises(errors.AuthenticationError):
        ChatClient("wrong", sim.base_url).check_token()


@pytest.mark.parametrize("token,cls", [
    ("not-a-token", errors.AuthenticationError),
    ("ms-test-unbound", errors.AccountNotBoundError),
    ("ms-test-unverified", errors.PermissionDeniedError),
    ("ms-test-quota", errors.RateLimitError),
])
def test_account_errors(sim, token, cls):
    with pytest.raises(cls) as info:
        run(sim, ask("hi"), token=token, max_retries=0)
    assert info.value.message and info.value.status


def test_unknown_model(sim):
    with pytest.raises(errors.InvalidRequestError) as info:
        run(sim, ask("hi", model="nobody/nothing"))
    assert "has no provider supported" in info.value.message


@pytest.mark.parametrize("fault,cls", [("500", errors.ServerError), ("502", errors.ServerError),
                                       ("429", errors.RateLimitError)])
def test_server_faults_map_to_classes(sim, fault, cls):
    sim.inject(fault, scope="chat", times=1)
    with pytest.raises(cls):
        run(sim, ask("hi"), max_retries=0)
    assert run(sim, ask("hi"))[-1].content  # the next request works


def test_one_transient_fault_is_retried_by_the_sdk(sim):
    sim.inject("502", scope="chat", times=1)
    assert run(sim, ask("hi"), max_retries=1)[-1].content


@pytest.mark.parametrize("fault", ["stream_cut", "malformed_chunk"])
def test_broken_stream_keeps_the_partial_answer(sim, fault):
    sim.inject(fault, scope="chat", times=1)
    got = []
    with pytest.raises(errors.IncompleteStreamError) as info:
        for event in ChatClient(TOKEN, sim.base_url).stream(ask("tell me a long story", max_tokens=200)):
            got.append(event)
    partial = info.value.partial_content
    assert partial and partial == "".join(e.text for e in got if isinstance(e, ContentDelta))


def test_slow_first_token_still_answers(sim):
    sim.inject("slow_first_token", scope="chat", times=1)
    assert run(sim, ask("hi"))[-1].content


def test_closing_the_generator_stops_early(sim):
    gen = ChatClient(TOKEN, sim.base_url).stream(ask("long", max_tokens=2000))
    first = next(gen)
    assert isinstance(first, ContentDelta)
    gen.close()  # must not hang reading the rest of a 2000-token answer


def red_png():
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (220, 20, 20)).save(buf, "PNG")
    return buf.getvalue()


def test_vision_with_an_upload_and_a_follow_up(sim):
    first = vision_message("What colour is this?", red_png())
    assert first["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    done = run(sim, ChatRequest(VL, [first]))[-1]
    assert "red" in done.content.lower() and "64x48" in done.content
    history = [first, {"role": "assistant", "content": done.content},
               {"role": "user", "content": "And its size?"}]
    assert run(sim, ChatRequest(VL, history))[-1].content
    sent = sim.log[0].json["messages"][0]["content"][0]["image_url"]["url"]
    assert base64.b64decode(sent.split(",", 1)[1]) == red_png()


def test_vision_with_a_url(sim):
    done = run(sim, ChatRequest(VL, [vision_message("what is it?", "https://example.com/photos/cat.png")]))[-1]
    assert "cat.png" in done.content


def test_vision_without_an_image_is_refused(sim):
    with pytest.raises(errors.InvalidRequestError):
        run(sim, ask("what is in the picture?", model=VL))
