"""The Chat tab: its handler called directly, and the public `/chat` endpoint through
gradio_client against the launched studio + simulator (fixtures in conftest.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.exceptions import ValidationError as RefusedAtTheDoor

from modelscope_api.config import fingerprint
from ui import chat_tab
from ui.context import AppContext, ServerTokenGuard

TOKEN = "ms-test-chat-alice"
INSTRUCT = "Qwen/Qwen2.5-72B-Instruct"  # never thinks
ALWAYS = "Qwen/QwQ-32B"  # always thinks
SWITCH = "Qwen/Qwen3-32B"  # thinks when enable_thinking is on


def client(studio, token: str | None = TOKEN, lang: str = "en") -> Client:
    headers = {"accept-language": "zh-CN,zh;q=0.9" if lang == "zh" else "en-US,en;q=0.9"}
    if token:
        headers["X-ModelScope-Token"] = token
    return Client(studio.url, headers=headers, verbose=False, download_files=False)


def chat(c: Client, message: str, model: str = INSTRUCT, *, system_prompt: str = "",
         temperature: float = 0.7, top_p: float = 0.8, max_tokens: int = 0, enable_thinking: bool = False,
         **protocol):
    """/chat as programs call it; `protocol=...` only when given, as older callers never send it."""
    return c.submit(message, model, system_prompt, temperature, top_p, max_tokens, enable_thinking,
                    api_name="/chat", **protocol)


def chat_requests(sim) -> list:
    return [e for e in sim.log if e.path.endswith("/chat/completions")]


def messages_requests(sim) -> list:
    """Requests to the Anthropic-compatible endpoint."""
    return [e for e in sim.log if e.path.endswith("/v1/messages")]


def answer_text(messages: list) -> str:
    return "".join(m["content"] for m in messages if not (m.get("metadata") or {}).get("title"))


def error_text(messages: list) -> str:
    """The text of the error note(s): errors are shown in the chat (and a toast), not raised."""
    return " ".join(m["content"] for m in messages if (m.get("metadata") or {}).get("title", "").startswith("❌"))


def handler_error(outputs: list) -> str:
    """The error note of a handler run called directly (its last yield's messages)."""
    return error_text(outputs[-1][0])


# --------------------------------------------------------------------------- streaming


def test_chat_streams_growing_partial_outputs(clean_studio):
    sim = clean_studio.sim
    sim.set_config(tokens_per_second=150)
    try:
        job = chat(client(clean_studio), "Tell me about pandas")
        outputs = list(job)
    finally:
        sim.set_config(tokens_per_second=3000)
    answers = [answer_text(o[0]) for o in outputs if o[0]]
    assert len(answers) >= 3, answers
    for shorter, longer in zip(answers, answers[1:]):
        assert longer.startswith(shorter)
    assert len(answers[-1]) > len(answers[0])
    final, quota, code = job.result()
    assert answer_text(final) == answers[-1] and "pandas" in answers[-1]
    assert "Calls left today" in quota
    assert "chat.completions.create" in code and TOKEN not in code


def test_updates_are_coalesced_to_about_20_a_second(simulator):
    simulator.set_config(tokens_per_second=2000)
    try:
        ctx = AppContext(base_url=simulator.base_url)
        req = chat_tab.ChatRequest(model=INSTRUCT, messages=[{"role": "user", "content": "hi"}], max_tokens=400)
        start = time.monotonic()
        turns = [len(t.content) for t in chat_tab.stream_turn(ctx, req, TOKEN, "header", "s")]
        elapsed = time.monotonic() - start
    finally:
        simulator.set_config(tokens_per_second=3000)
    assert len(turns) <= elapsed * 20 + 3, (len(turns), elapsed)
    assert turns[-1] > 0  # the final state always comes


def test_thinking_model_gives_a_separate_thinking_message(clean_studio):
    final, _, _ = chat(client(clean_studio), "Why is the sky blue?", ALWAYS).result()
    assert len(final) == 2
    thinking, answer = final
    assert thinking["metadata"]["title"].endswith("Thinking")
    assert thinking["metadata"]["status"] == "done"
    assert thinking["content"] and answer["content"]
    assert thinking["content"] not in answer["content"]
    assert not answer.get("metadata")


def test_thinking_switch_sends_enable_thinking(clean_studio):
    sim = clean_studio.sim
    off, _, _ = chat(client(clean_studio), "2+2?", SWITCH, enable_thinking=False).result()
    assert len(off) == 1 and not off[0].get("metadata")
    assert chat_requests(sim)[-1].json["enable_thinking"] is False
    on, _, _ = chat(client(clean_studio), "2+2?", SWITCH, enable_thinking=True).result()
    assert on[0]["metadata"]["title"].endswith("Thinking")
    assert chat_requests(sim)[-1].json["enable_thinking"] is True
    chat(client(clean_studio), "2+2?", INSTRUCT, enable_thinking=True).result()
    assert "enable_thinking" not in chat_requests(sim)[-1].json  # not a switch model


def test_parameters_reach_the_wire(clean_studio):
    chat(client(clean_studio), "hello", INSTRUCT, system_prompt="Be brief.", temperature=0.3,
         top_p=0.5, max_tokens=7).result()
    body = chat_requests(clean_studio.sim)[-1].json
    assert body["model"] == INSTRUCT and body["stream"] is True
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["temperature"] == 0.3 and body["top_p"] == 0.5 and body["max_tokens"] == 7
    chat(client(clean_studio), "hello", INSTRUCT, max_tokens=0).result()
    assert "max_tokens" not in chat_requests(clean_studio.sim)[-1].json


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, "No ModelScope token"),
        ("ms-invalid-token", "token was refused (401)"),
        ("ms-test-unbound", "Alibaba Cloud"),
        ("ms-test-unverified", "real-name verification"),
        ("ms-test-quota", "quota is used up"),
    ],
)
def test_account_errors_are_explained(clean_studio, token, expected):
    # The public endpoint raises (programs get an exception); the browser gets a note.
    with pytest.raises(AppError) as info:
        chat(client(clean_studio, token), "hello").result()
    assert expected in str(info.value)


def test_account_errors_in_chinese(clean_studio):
    with pytest.raises(AppError) as info:
        chat(client(clean_studio, "ms-test-unbound", lang="zh"), "你好").result()
    assert "阿里云" in str(info.value)


def test_the_browser_gets_errors_as_a_note_in_the_conversation(simulator, fake_request):
    respond = chat_tab.make_respond(AppContext(base_url=simulator.base_url))
    outputs = list(respond("hello", [], INSTRUCT, "", 0.7, 0.8, 0, False, "ms-test-unverified",
                           fake_request(lang="zh")))
    final, quota, code = outputs[-1]
    assert len(final) == 1 and final[0]["metadata"]["title"].startswith("❌ 没有")
    assert "实名认证" in final[0]["content"]
    assert "chat.completions.create" in code
    assert chat_tab.history_to_messages([{"role": "user", "content": "hello"}, *final]) == [
        {"role": "user", "content": "hello"}]  # the note is never sent back to a model


def test_server_error_is_explained_and_history_kept(clean_studio):
    sim = clean_studio.sim
    c = client(clean_studio)
    chat(c, "first question").result()
    sim.inject("500", times=None, scope="chat")
    try:
        with pytest.raises(AppError) as info:
            chat(c, "second question").result()
    finally:
        sim.clear_faults()
    assert "busy" in str(info.value)
    chat(c, "third question").result()
    sent = chat_requests(sim)[-1].json["messages"]
    text = json.dumps(sent)
    assert "first question" in text and "third question" in text
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]


@pytest.mark.parametrize("fault", ["stream_cut", "malformed_chunk"])
def test_broken_stream_keeps_the_partial_answer(clean_studio, fault):
    clean_studio.sim.inject(fault, scope="chat")
    final, _, _ = chat(client(clean_studio), "Tell me a long story", max_tokens=60).result()
    titles = [(m.get("metadata") or {}).get("title", "") for m in final]
    assert any("cut off" in t for t in titles), final
    assert answer_text(final).strip()  # the part that arrived is kept


def test_bad_input_is_stopped_before_sending(simulator, fake_request):
    ctx = AppContext(base_url=simulator.base_url)
    respond = chat_tab.make_respond(ctx)
    before = len(simulator.log)
    for args, field in [(("", [], INSTRUCT, "", 0.7, 0.8, 0, False), "message"),
                        (("hi", [], INSTRUCT, "", 5.0, 0.8, 0, False), "temperature"),
                        (("hi", [], INSTRUCT, "", 0.7, 0.8, -3, False), "max_tokens"),
                        (("hi", [], "  ", "", 0.7, 0.8, 0, False), "model")]:
        note = handler_error(list(respond(*args, TOKEN, fake_request())))
        assert field in note and "Nothing was sent" in note
    assert len(simulator.log) == before


# --------------------------------------------------------------------------- tokens & sessions


def test_header_token_is_used(clean_studio):
    chat(client(clean_studio, "ms-test-header-bob"), "hi").result()
    assert chat_requests(clean_studio.sim)[-1].token_fingerprint == fingerprint("ms-test-header-bob")


def test_session_token_state_beats_server_token(simulator, fake_request):
    ctx = AppContext(base_url=simulator.base_url, server_token="ms-test-server")
    respond = chat_tab.make_respond(ctx)
    list(respond("hi", [], INSTRUCT, "", 0.7, 0.8, 0, False, "ms-test-personal", fake_request()))
    assert simulator.log[-1].token_fingerprint == fingerprint("ms-test-personal")
    list(respond("hi", [], INSTRUCT, "", 0.7, 0.8, 0, False, None, fake_request()))
    assert simulator.log[-1].token_fingerprint == fingerprint("ms-test-server")


def test_sessions_are_isolated(clean_studio):
    sim = clean_studio.sim
    alice, bob = client(clean_studio, "ms-test-alice"), client(clean_studio, "ms-test-bob")
    chat(alice, "My secret word is aubergine.").result()
    chat(bob, "What is my secret word?").result()
    bob_req = chat_requests(sim)[-1]
    assert bob_req.token_fingerprint == fingerprint("ms-test-bob")
    assert "aubergine" not in json.dumps(bob_req.json)
    chat(alice, "Say it again.").result()
    alice_req = chat_requests(sim)[-1]
    assert alice_req.token_fingerprint == fingerprint("ms-test-alice")
    assert "aubergine" in json.dumps(alice_req.json) and "secret word?" not in json.dumps(alice_req.json)


def test_parallel_chats_do_not_queue(clean_studio):
    sim, ttft = clean_studio.sim, 1.5
    clients = [client(clean_studio, f"ms-test-par-{i}") for i in range(4)]
    sim.set_config(ttft=ttft)
    try:
        jobs = [chat(c, f"q{i}") for i, c in enumerate(clients)]
        results = [job.result(timeout=60) for job in jobs]
    finally:
        sim.set_config(ttft=0.01)
    assert len(results) == 4
    arrivals = sorted(e.time for e in chat_requests(sim))
    assert len(arrivals) == 4
    # Each answer takes at least `ttft`; every request reached the server before the first
    # one could have been answered, so none waited in Gradio's queue for another.
    assert arrivals[-1] - arrivals[0] < ttft, arrivals


def test_server_token_caps_apply_and_personal_tokens_are_not_capped(clean_studio):
    clean_studio.ctx.server_token = "ms-test-classroom"
    clean_studio.ctx.guard = ServerTokenGuard(session_limit=2)
    shared = client(clean_studio, token=None)
    chat(shared, "one").result()
    _, quota, _ = chat(shared, "two").result()
    assert "class token: **0**" in quota
    with pytest.raises(AppError) as info:
        chat(shared, "three").result()
    assert "2 requests on the shared token" in str(info.value)
    assert chat_requests(clean_studio.sim)[-1].token_fingerprint == fingerprint("ms-test-classroom")
    assert len(chat_requests(clean_studio.sim)) == 2
    own = client(clean_studio, "ms-test-own")
    for _ in range(3):
        chat(own, "mine").result()
    assert chat_requests(clean_studio.sim)[-1].token_fingerprint == fingerprint("ms-test-own")


def test_env_caps_guard_the_server_token(simulator, monkeypatch, fake_request):
    monkeypatch.setenv("MODELSCOPE_ACCESS_TOKEN", "ms-test-env-class")
    monkeypatch.setenv("STUDIO_SERVER_TOKEN_DAILY_LIMIT", "1")
    ctx = AppContext.from_env(base_url=simulator.base_url)
    respond = chat_tab.make_respond(ctx)
    list(respond("hi", [], INSTRUCT, "", 0.7, 0.8, 0, False, None, fake_request("a")))
    note = handler_error(list(respond("hi", [], INSTRUCT, "", 0.7, 0.8, 0, False, None, fake_request("b"))))
    assert "today's 1 requests" in note
    list(respond("hi", [], INSTRUCT, "", 0.7, 0.8, 0, False, "ms-test-mine", fake_request("b")))


def test_unreachable_server_gives_the_call_back(monkeypatch, fake_request):
    ctx = AppContext(base_url="http://127.0.0.1:9/", server_token="ms-test-x",
                     guard=ServerTokenGuard(session_limit=1))
    respond = chat_tab.make_respond(ctx)
    note = handler_error(list(respond("hi", [], INSTRUCT, "", 0.7, 0.8, 0, False, None, fake_request())))
    assert "Could not reach" in note
    assert ctx.guard.remaining("s1")["session"] == 1


def test_token_never_reaches_a_page(clean_studio):
    secret, personal = "ms-test-very-secret-server-token", "ms-test-very-secret-personal"
    clean_studio.ctx.server_token = secret
    chat(client(clean_studio, personal), "hi").result()
    chat(client(clean_studio, None), "hi").result()
    for path in ("", "config", "gradio_api/info", "gradio_api/openapi.json"):
        r = requests.get(clean_studio.url + path, timeout=10)
        assert secret not in r.text and personal not in r.text, path


# --------------------------------------------------------------------------- export & helpers


def test_export_markdown_and_json(fake_request):
    history = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "thinking...", "metadata": {"title": "🤔 Thinking"}},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
    ]
    md, js = chat_tab.export_files(history, fake_request())
    assert Path(md).suffix == ".md" and Path(js).suffix == ".json"
    text = Path(md).read_text(encoding="utf-8")
    assert "你好" in text and "Hello!" in text and "> thinking..." in text
    data = json.loads(Path(js).read_text(encoding="utf-8"))
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "assistant"]
    assert data["messages"][1]["note"] == "🤔 Thinking"
    assert chat_tab.export_files([], fake_request()) == []


def test_history_to_messages_drops_notes_and_merges_runs():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "a"}]},
        {"role": "assistant", "content": "t", "metadata": {"title": "Thinking", "status": "done"}},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "user", "content": "d"},
        {"role": "assistant", "content": {"path": "/tmp/x.png"}},
    ]
    assert chat_tab.history_to_messages(history) == [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c\n\nd"},
    ]


def test_toast_escapes_server_text_and_links_urls():
    from modelscope_api.errors import AuthenticationError, ServerError

    assert "<b>" not in chat_tab.toast(ServerError("<b>boom</b>"), "en")
    assert '<a href="https://modelscope.cn/my/myaccesstoken"' in chat_tab.toast(AuthenticationError("x"), "en")


# --------------------------------------------------------------------------- Anthropic protocol


def test_anthropic_protocol_streams_an_answer_over_v1_messages(clean_studio):
    sim = clean_studio.sim
    sim.set_config(tokens_per_second=150)
    try:
        job = chat(client(clean_studio, "ms-test-chat-anthropic"), "Tell me about pandas",
                   system_prompt="Be brief.", temperature=0.3, top_p=0.5, max_tokens=60, protocol="anthropic")
        outputs = list(job)
    finally:
        sim.set_config(tokens_per_second=3000)
    answers = [answer_text(o[0]) for o in outputs if o[0]]
    assert len(answers) >= 3, answers  # it streamed
    for shorter, longer in zip(answers, answers[1:]):
        assert longer.startswith(shorter)
    final, quota, code = job.result()
    assert "pandas" in answer_text(final) and not any(m.get("metadata") for m in final)
    # one POST /v1/messages, nothing on the OpenAI-compatible path
    assert chat_requests(sim) == []
    [entry] = messages_requests(sim)
    assert entry.method == "POST" and entry.token_fingerprint == fingerprint("ms-test-chat-anthropic")
    assert entry.json["system"] == "Be brief." and entry.json["stream"] is True
    assert entry.json["max_tokens"] == 60 and entry.json["temperature"] == 0.3 and entry.json["top_p"] == 0.5
    assert entry.json["messages"] == [{"role": "user", "content": "Tell me about pandas"}]
    # Show code: the anthropic SDK script, base URL without /v1, token from the environment only
    assert "anthropic.Anthropic(" in code and "client.messages.stream(" in code
    assert f'base_url="{clean_studio.sim.base_url.rstrip("/")}"' in code
    assert "ms-test-chat-anthropic" not in code and 'os.environ["MODELSCOPE_ACCESS_TOKEN"]' in code
    # the quota line comes from the Anthropic reply's headers, and moves with each call
    assert "Calls left today: **1999/2000**" in quota
    _, quota, _ = chat(client(clean_studio, "ms-test-chat-anthropic"), "again", protocol="anthropic").result()
    assert "Calls left today: **1998/2000**" in quota


def test_openai_stays_the_default_protocol(clean_studio):
    sim = clean_studio.sim
    _, _, code = chat(client(clean_studio), "hi").result()  # a call written before the protocol existed
    assert len(chat_requests(sim)) == 1 and messages_requests(sim) == []
    assert "chat.completions.create" in code and "anthropic" not in code
    chat(client(clean_studio), "hi", protocol="openai").result()
    assert len(chat_requests(sim)) == 2 and messages_requests(sim) == []
    [endpoint] = [p for p in client(clean_studio).view_api(print_info=False, return_format="dict")
                  ["named_endpoints"]["/chat"]["parameters"] if p["parameter_name"] == "protocol"]
    assert endpoint["parameter_default"] == "openai" and endpoint["type"]["enum"] == ["openai", "anthropic"]


@pytest.mark.parametrize("model", [SWITCH, ALWAYS])
def test_anthropic_protocol_never_sends_enable_thinking(clean_studio, model):
    final, _, code = chat(client(clean_studio), "2+2?", model, enable_thinking=True, protocol="anthropic").result()
    [entry] = messages_requests(clean_studio.sim)
    assert "enable_thinking" not in entry.json and "thinking" not in entry.json
    assert len(final) == 1 and not final[0].get("metadata")  # no Thinking box
    assert "enable_thinking" not in code


@pytest.mark.parametrize("bad", ["claude", "OpenAI", "", None, 7])
def test_a_bad_protocol_is_refused_before_anything_is_sent(clean_studio, bad):
    # A value the Radio cannot hold is refused at the queue's door (ui/door.py), before the
    # queue; None (which the Radio takes) by the handler's own check.
    with pytest.raises((RefusedAtTheDoor, AppError)) as info:
        chat(client(clean_studio), "hello", protocol=bad).result()
    text = str(info.value)
    assert "protocol" in text and "openai or anthropic" in text and "Nothing was sent" in text, text
    assert clean_studio.sim.log == []


def test_a_bad_protocol_over_raw_http_is_refused_in_the_users_language(clean_studio):
    base = clean_studio.url.rstrip("/")
    r = requests.post(f"{base}/gradio_api/call/chat", timeout=10,
                      json={"data": ["你好", INSTRUCT, "", 0.7, 0.8, 0, False, "claude"], "session_hash": "raw-p"},
                      headers={"accept-language": "zh-CN,zh;q=0.9", "X-ModelScope-Token": TOKEN})
    assert r.status_code == 422
    text = json.dumps(r.json(), ensure_ascii=False)
    assert "protocol" in text and "请求未发送" in text, text
    assert clean_studio.sim.log == []


def test_a_bad_protocol_in_the_handler_is_a_validation_note(simulator, fake_request):
    respond = chat_tab.make_respond(AppContext(base_url=simulator.base_url))
    before = len(simulator.log)
    for bad, lang, words in [("claude", "en", "Nothing was sent"), (None, "zh", "请求未发送")]:
        outputs = list(respond("hi", [], INSTRUCT, "", 0.7, 0.8, 0, False, TOKEN, fake_request(lang=lang),
                               protocol=bad))
        note = handler_error(outputs)
        assert "protocol" in note and "openai or anthropic" in note and words in note
    assert len(simulator.log) == before


@pytest.mark.parametrize(
    ("token", "lang", "expected"),
    [
        ("ms-invalid-token", "en", "token was refused (401)"),
        ("ms-test-unbound", "zh", "阿里云"),
        ("ms-test-unverified", "en", "real-name verification"),
        ("ms-test-quota", "en", "quota is used up"),
    ],
)
def test_anthropic_errors_are_explained_like_openai_ones(clean_studio, token, lang, expected):
    with pytest.raises(AppError) as info:
        chat(client(clean_studio, token, lang=lang), "hello", protocol="anthropic").result()
    assert expected in str(info.value)
    assert chat_requests(clean_studio.sim) == [] and len(messages_requests(clean_studio.sim)) >= 1


def test_anthropic_broken_stream_keeps_the_partial_answer(clean_studio):
    clean_studio.sim.inject("stream_cut", scope="chat")
    final, _, _ = chat(client(clean_studio), "Tell me a long story", protocol="anthropic").result()
    titles = [(m.get("metadata") or {}).get("title", "") for m in final]
    assert any("cut off" in t for t in titles), final
    assert "Tell me a long story" in answer_text(final)


def test_thinking_controls_follow_model_and_protocol():
    def shown(model, protocol):
        return tuple(u["visible"] for u in chat_tab.thinking_controls(model, protocol))

    # (checkbox, "always thinks" note, "no thinking over Anthropic" note)
    assert shown(SWITCH, "openai") == (True, False, False)
    assert shown(ALWAYS, "openai") == (False, True, False)
    assert shown(INSTRUCT, "openai") == (False, False, False)
    assert shown(SWITCH, "anthropic") == (False, False, True)
    assert shown(ALWAYS, "anthropic") == (False, False, True)
    assert shown(INSTRUCT, "anthropic") == (False, False, False)
    assert shown(None, "anthropic") == (False, False, False)  # a stranger's value breaks nothing
