"""The Anthropic-compatible endpoint (beta): simulator wire and AnthropicChatClient with the
real anthropic SDK."""

import json

import httpx
import pytest

from modelscope_api import AnthropicChatClient, errors
from modelscope_api.chat import ChatDone, ChatRequest, ContentDelta
from modelscope_api.config import fingerprint
from modelscope_api.simulator import SimConfig, Simulator

TOKEN = "ms-test-anthropic-client"
MODEL = "Qwen/Qwen2.5-72B-Instruct"
QUESTION = "Why is the sky blue?"


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(ttft=0.01, tokens_per_second=3000)) as s:
        yield s


pytestmark = pytest.mark.usefixtures("fresh_sim")  # conftest: no faults, empty log per test


def client(sim, token=TOKEN, **kw):
    return AnthropicChatClient(token, sim.base_url, **kw)


def req(model=MODEL, **kw):
    return ChatRequest(model=model, messages=[{"role": "user", "content": QUESTION}], **kw)


def messages_url(sim):
    return sim.base_url + "v1/messages"


def body(**kw):
    return {"model": MODEL, "max_tokens": 64,
            "messages": [{"role": "user", "content": QUESTION}], **kw}


def test_stream_yields_growing_text_then_done(sim):
    events = list(client(sim).stream(req(system_prompt="Be brief.")))
    deltas = [e for e in events if isinstance(e, ContentDelta)]
    assert len(deltas) > 5 and isinstance(events[-1], ChatDone)
    done = events[-1]
    assert done.content == "".join(d.text for d in deltas)
    assert QUESTION in done.content
    assert done.finish_reason == "end_turn" and done.reasoning == ""
    assert done.usage["output_tokens"] == len(deltas)
    assert done.quota is not None and done.quota.requests_remaining is not None
    sent = sim.requests("/v1/messages")[-1].json
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 1024 and sent["stream"] is True


def test_complete_and_max_tokens(sim):
    result = client(sim).complete(req())
    assert QUESTION in result.content and result.finish_reason == "end_turn"
    assert result.usage["input_tokens"] > 0 and result.quota is not None
    short = client(sim).complete(req(max_tokens=3))
    assert short.finish_reason == "max_tokens" and short.usage["output_tokens"] == 3


def test_raw_sse_event_order_and_bearer(sim):
    with httpx.stream("POST", messages_url(sim), json=body(stream=True),
                      headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["modelscope-ratelimit-requests-remaining"]
        names, datas = [], []
        for line in r.iter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            elif line.startswith("data: "):
                datas.append(json.loads(line[6:]))
    assert [d["type"] for d in datas] == names
    head = ["message_start", "content_block_start", "ping"]
    tail = ["content_block_stop", "message_delta", "message_stop"]
    assert names[:3] == head and names[-3:] == tail
    assert set(names[3:-3]) == {"content_block_delta"}
    text = "".join(d["delta"]["text"] for d in datas[3:-3])
    assert QUESTION in text
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"
    assert datas[-2]["usage"]["output_tokens"] == len(names) - 6


def test_x_api_key_accepted_and_nonstream_shape(sim):
    r = httpx.post(messages_url(sim), json=body(),
                   headers={"x-api-key": TOKEN, "anthropic-version": "2023-06-01"})
    assert r.status_code == 200
    msg = r.json()
    assert msg["id"].startswith("msg_") and msg["type"] == "message"
    assert msg["role"] == "assistant" and msg["model"] == MODEL
    assert msg["content"][0]["type"] == "text" and QUESTION in msg["content"][0]["text"]
    assert msg["stop_sequence"] is None and msg["stop_reason"] in ("end_turn", "max_tokens")
    assert set(msg["usage"]) == {"input_tokens", "output_tokens"}


def test_missing_or_bad_max_tokens_is_400(sim):
    for bad in ({k: v for k, v in body().items() if k != "max_tokens"}, body(max_tokens=0),
                body(messages=[])):
        r = httpx.post(messages_url(sim), json=bad, headers={"x-api-key": TOKEN})
        assert r.status_code == 400
        err = r.json()
        assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
        assert err["request_id"]


def test_unknown_token_is_401(sim):
    with pytest.raises(errors.AuthenticationError) as info:
        client(sim, token="not-a-real-token").complete(req())
    assert info.value.status == 401
    r = httpx.post(messages_url(sim), json=body(), headers={"x-api-key": "nope"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_unbound_quota_and_unknown_model(sim):
    with pytest.raises(errors.AccountNotBoundError):
        list(client(sim, token="ms-test-unbound").stream(req()))
    with pytest.raises(errors.RateLimitError) as info:
        client(sim, token="ms-test-quota").complete(req())
    assert info.value.status == 429
    with pytest.raises(errors.InvalidRequestError) as info:
        client(sim).complete(req(model="nobody/no-such-model"))
    assert "has no provider supported" in str(info.value)


def test_injected_500_is_server_error(sim):
    sim.inject("500", scope="chat")
    with pytest.raises(errors.ServerError) as info:
        client(sim, max_retries=0).complete(req())
    assert info.value.status == 500


def test_stream_cut_keeps_partial_text(sim):
    sim.inject("stream_cut", scope="chat")
    got = []
    with pytest.raises(errors.IncompleteStreamError) as info:
        for event in client(sim, max_retries=0).stream(req()):
            got.append(event)
    assert got and all(isinstance(e, ContentDelta) for e in got)
    assert info.value.partial_content == "".join(e.text for e in got)
    assert info.value.partial_content.startswith("You asked")


def test_log_holds_fingerprints_never_the_token(sim):
    secret = "ms-test-anthropic-secret-1234567890"
    client(sim, token=secret).complete(req())  # anthropic 2.x: Bearer; older SDKs: x-api-key
    r = httpx.post(messages_url(sim), json=body(), headers={"x-api-key": secret})
    assert r.status_code == 200
    entries = sim.requests("/v1/messages", token=secret)
    assert len(entries) == 2
    assert all(e.token_fingerprint == fingerprint(secret) for e in entries)
    assert entries[1].headers["x-api-key"] == fingerprint(secret)
    for entry in entries:
        assert secret not in json.dumps(entry.to_dict(), default=str)
    assert secret not in httpx.get(sim.base_url + "_sim/log").text


def test_sampling_settings_reach_the_wire_through_extra_body(sim):
    # anthropic 2.x's messages.stream() takes no temperature/top_p arguments: they travel in
    # extra_body, and the JSON body carries them where the Anthropic API reads them.
    events = list(client(sim).stream(req(temperature=0.3, top_p=0.5, max_tokens=20)))
    assert isinstance(events[-1], ChatDone)
    sent = sim.requests("/v1/messages")[-1].json
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.5 and sent["max_tokens"] == 20
    assert "extra_body" not in sent


# --------------------------------------------------------------------------- protocols


def test_check_protocol_takes_the_two_names_only():
    from modelscope_api.protocols import ANTHROPIC, OPENAI, check_protocol

    assert check_protocol(OPENAI) == "openai" and check_protocol(ANTHROPIC) == "anthropic"
    for bad in ("claude", "OpenAI", " openai", "", None, 1, ["openai"], {"openai": 1}):
        with pytest.raises(errors.ValidationError) as info:
            check_protocol(bad)
        assert info.value.field == "protocol" and "openai or anthropic" in str(info.value)


def test_protocol_picks_the_client_and_its_request():
    from modelscope_api.anthropic_chat import messages_kwargs
    from modelscope_api.chat import ChatClient
    from modelscope_api.protocols import chat_client, request_kwargs

    r = req(system_prompt="Be brief.", enable_thinking=True)
    assert isinstance(chat_client("anthropic", TOKEN, "http://127.0.0.1:9/"), AnthropicChatClient)
    assert isinstance(chat_client("openai", TOKEN, "http://127.0.0.1:9/"), ChatClient)
    assert request_kwargs(r, "anthropic") == messages_kwargs(r)
    assert "enable_thinking" not in json.dumps(request_kwargs(r, "anthropic"))
    assert request_kwargs(r, "openai") == r.create_kwargs(stream=True)
    with pytest.raises(errors.ValidationError):
        chat_client("claude", TOKEN)
    with pytest.raises(errors.ValidationError):
        request_kwargs(r, "claude")
