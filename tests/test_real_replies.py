"""The replies the real service sends (protocol page, "More from real captures"), played by the
simulator, and what the API module, the CLI and the studio make of each.

Each test names the item of issue 9 it shows. Studio tests go through gradio_client against
the launched app (conftest `clean_studio`), the way a program or the browser calls it.
"""

from __future__ import annotations

import io
import time

import pytest
import requests
from gradio_client import Client
from gradio_client.exceptions import AppError

from modelscope_api import catalog, config, wire
from modelscope_api import errors as E
from modelscope_api.chat import ChatClient, ChatRequest
from modelscope_api.cli import main as cli_main
from modelscope_api.images import ImageClient, ImageRequest, failure_reason, parse_task, task_error
from modelscope_api.models import ModelList, parse_model_ids
from modelscope_api.quota import Quota
from ui import header
from ui.context import AppContext
from ui.explain import explain
from ui.shared import format_quota

INSTRUCT = "Qwen/Qwen2.5-72B-Instruct"
HYBRID = "Qwen/Qwen3-8B"  # takes the enable_thinking switch and thinks by default
VL = "Qwen/Qwen2.5-VL-7B-Instruct"
PIC_URL = "https://example.com/cat.png"


def hi(model: str = INSTRUCT) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}])


def client(url: str, token: str | None) -> Client:
    headers = {"accept-language": "en-US,en;q=0.9"}
    if token:
        headers["X-ModelScope-Token"] = token
    return Client(url, headers=headers, verbose=False, download_files=False)


def chat(c: Client, message: str):
    """(answer messages, quota line, code) from the public /chat endpoint."""
    return c.submit(message, INSTRUCT, "", 0.7, 0.8, 0, False, api_name="/chat").result()


def run_cli(monkeypatch, sim, *argv, token="ms-test-cli-replies", base_url=None):
    monkeypatch.setenv("MODELSCOPE_ACCESS_TOKEN", token)
    monkeypatch.setenv("MODELSCOPE_BASE_URL", base_url or sim.base_url)
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def sim(clean_studio):
    return clean_studio.sim


# --------------------------------------------------------------------------- 1. task states


@pytest.mark.parametrize("word", ["PENDING", "RUNNING", "PROCESSING"])
def test_1_only_three_words_mean_keep_polling(word):
    assert parse_task({"task_status": word}).running
    assert parse_task({"task_status": word.lower()}).running


@pytest.mark.parametrize("word, cls", [
    ("CANCELED", E.TaskCanceledByServerError), ("CANCEL", E.TaskCanceledByServerError),
    ("UNKNOWN", E.TaskStatusUnknownError), ("QUEUED_FOREVER", E.TaskStatusUnknownError),
    ("", E.TaskStatusUnknownError), ("FAILED", E.TaskFailedError),
])
def test_1_every_other_word_ends_the_wait_with_its_own_error(word, cls):
    state = parse_task({"task_status": word})
    assert not state.running and not state.done
    err = task_error(state, "4242", "req-1")
    assert type(err) is cls and err.task_id == "4242" and err.request_id == "req-1"
    assert "4242" in explain(err) and "None" not in explain(err)


@pytest.mark.parametrize("body", [
    {"task_status": "FAILED", "errors": {"code": 422, "message": "bad words"}, "request_id": "r"},
    {"task_status": "FAILED", "error": {"code": "X", "message": "bad words", "request_id": "r"}},
    {"task_status": "FAILED", "error_message": "bad words", "request_id": "r"},
    {"task_status": "FAILED", "error": "bad words", "request_id": "r"},
])
def test_1_the_failure_reason_is_read_from_every_shape(body):
    reason, _code, request_id = failure_reason(body)
    assert reason == "bad words" and request_id == "r"
    state = parse_task(body)
    assert state.error_message == "bad words" and state.request_id == "r"


@pytest.mark.parametrize("fault, cls, words", [
    ("task_canceled", E.TaskCanceledByServerError, "cancelled by the server"),
    ("task_unknown", E.TaskStatusUnknownError, "status UNKNOWN"),
    ("task_failed_flat", E.TaskFailedError, wire.MSG_INAPPROPRIATE),
    ("task_failed_error", E.TaskFailedError, wire.MSG_INAPPROPRIATE),
])
def test_1_client_ends_at_once_with_the_task_named(sim, fault, cls, words):
    sim.inject(fault)
    start = time.monotonic()
    with pytest.raises(cls) as info:
        ImageClient("ms-test-states", sim.base_url, timeout=300).generate(
            ImageRequest(model="Qwen/Qwen-Image", prompt="a kite", width=256, height=256))
    took = time.monotonic() - start
    assert took < 10, f"waited {took:.1f} s for a task that had ended"  # was: 300 s
    err = info.value
    assert words in err.message and err.task_id and err.request_id
    assert err.quota is not None  # the submit's headers: that call spent the quota


def test_1_cli_says_which_task_was_cancelled(monkeypatch, sim):
    sim.inject("task_canceled")
    start = time.monotonic()
    code, out, err = run_cli(monkeypatch, sim, "image", "a kite", "--size", "256x256", "--out",
                             str(sim_tmp(monkeypatch)))
    assert code == 1 and time.monotonic() - start < 10
    assert "cancelled by the server" in err and "hint: The server cancelled" in err
    assert "Traceback" not in err and out == ""


def sim_tmp(monkeypatch):
    import tempfile

    return tempfile.mkdtemp(prefix="real-replies-")


def test_1_studio_names_the_task_and_does_not_wait(clean_studio):
    clean_studio.sim.inject("task_canceled")
    c = client(clean_studio.url, "ms-test-states-studio")
    start = time.monotonic()
    with pytest.raises(AppError) as info:
        c.predict(model="Qwen/Qwen-Image", prompt="a kite", width=256, height=256, seed=1,
                  api_name="/generate_image")
    assert time.monotonic() - start < 15
    text = str(info.value)
    assert "The server cancelled the image task (status CANCELED)" in text and "(task " in text


# --------------------------------------------------------------------------- 2. hollow replies


def test_2_hollow_chunks_are_skipped_and_the_answer_arrives(sim):
    sim.inject("hollow_chunks")
    events = list(ChatClient("ms-test-hollow", sim.base_url).stream(hi()))
    done = events[-1]
    assert done.content.startswith('You asked: "hi"') and done.finish_reason == "stop"
    assert done.usage and done.usage["total_tokens"] > 0  # read from a chunk with no choices


@pytest.mark.parametrize("streamed", [True, False])
def test_2_a_reply_carrying_nothing_is_no_answer(sim, streamed):
    sim.inject("hollow_reply")
    c = ChatClient("ms-test-hollow", sim.base_url)
    with pytest.raises(E.EmptyAnswerError) as info:
        list(c.stream(hi())) if streamed else c.complete(hi())
    assert "no answer" in explain(info.value) and "没有返回任何回答" in explain(info.value, "zh")


def test_2_token_check_on_a_hollow_reply_says_the_token_works(sim, fake_request):
    sim.inject("hollow_reply")
    ctx = AppContext(base_url=sim.base_url)
    *_, check_token = header.make_handlers(ctx)
    status, _quota = check_token("ms-test-hollow-check", fake_request())
    assert status.startswith("✅") and "returned no answer" in status


def test_2_cli_prints_no_answer_not_a_traceback(monkeypatch, sim):
    sim.inject("hollow_reply")
    code, out, err = run_cli(monkeypatch, sim, "chat", "hi", "--model", INSTRUCT)
    assert code == 1 and "The model returned no answer." in err and "Traceback" not in err
    sim.inject("hollow_reply")
    code, out, err = run_cli(monkeypatch, sim, "check")
    assert code == 0 and "returned no answer" in out


def test_2_studio_shows_no_answer_never_a_blank_bubble(clean_studio):
    clean_studio.sim.inject("hollow_reply")
    c = client(clean_studio.url, "ms-test-hollow-studio")
    with pytest.raises(AppError) as info:
        chat(c, "hello?")
    assert "The model returned no answer" in str(info.value)
    messages, _quota, _code = chat(c, "hello again?")  # the next call works
    assert messages[-1]["role"] == "assistant" and str(messages[-1]["content"]).strip()
    assert not (messages[-1].get("metadata") or {}).get("title")


# --------------------------------------------------------------------------- 3. errors


def test_3_request_id_inside_the_error_object():
    body = {"error": {"message": wire.MSG_ALIYUN_NOT_BOUND, "request_id": "in-1"}}
    err = E.error_from_response(401, body)
    assert isinstance(err, E.AccountNotBoundError) and err.request_id == "in-1"
    top = E.error_from_response(401, {"error": {"message": "x", "request_id": "in"}, "request_id": "top"})
    assert top.request_id == "top"


def test_3_unbound_with_inner_id_from_the_simulator(sim):
    sim.inject("unbound_inner_id")
    with pytest.raises(E.AccountNotBoundError) as info:
        ChatClient("ms-test-inner", sim.base_url, max_retries=0).complete(hi())
    assert info.value.request_id and info.value.request_id in explain(info.value)
    assert "Alibaba Cloud" in explain(info.value)


def test_3_a_bare_400_points_at_the_aliyun_binding(sim):
    sim.inject("bare_400")
    with pytest.raises(E.UnexplainedRefusalError) as info:
        ChatClient("ms-test-bare", sim.base_url, max_retries=0).complete(hi())
    text = explain(info.value)
    assert "without saying why" in text and E.ACCOUNT_PAGE in text and "HTTP 400" not in text


def _quota(remaining: int | None, model_remaining: int | None) -> dict:
    h = {}
    if remaining is not None:
        h |= {wire.RATELIMIT_REQUESTS_LIMIT: "2000", wire.RATELIMIT_REQUESTS_REMAINING: str(remaining)}
    if model_remaining is not None:
        h |= {wire.RATELIMIT_MODEL_REQUESTS_LIMIT: "500",
              wire.RATELIMIT_MODEL_REQUESTS_REMAINING: str(model_remaining)}
    return h


@pytest.mark.parametrize("body", [
    {"errors": {"message": wire.MSG_RATE_LIMIT}},
    {"error": {"code": "too_many_requests", "message": "AppId:1 达到使用量上限", "type": "rate_limit_error"}},
])
@pytest.mark.parametrize("headers, cls, words", [
    (_quota(1500, 300), E.TooManyRequestsError, "Too many requests right now"),
    (_quota(0, 0), E.QuotaExhaustedError, "Today's free quota is used up"),
    (_quota(1500, 0), E.QuotaExhaustedError, "This model's free quota for today is used up"),
    ({}, E.RateLimitError, "refusing calls for now"),
])
def test_3_a_429_is_worded_by_the_headers_not_the_status(body, headers, cls, words):
    err = E.error_from_response(429, body, headers)
    assert type(err) is cls
    assert words in explain(err)
    if cls is E.TooManyRequestsError:
        assert "used up" not in explain(err).replace("not used up", "")


def test_3_429_while_calls_are_left_and_when_none_are(sim):
    sim.inject("429", times=None, scope="chat")  # the SDK retries a 429 once
    try:
        with pytest.raises(E.TooManyRequestsError) as info:
            ChatClient("ms-test-burst", sim.base_url).complete(hi())
    finally:
        sim.clear_faults()
    assert info.value.quota.requests_remaining > 0
    with pytest.raises(E.QuotaExhaustedError):
        ChatClient("ms-test-quota", sim.base_url).complete(hi())


@pytest.mark.parametrize("alt", [False, True])
def test_3_both_thinking_without_stream_wordings_mean_one_thing(sim, alt):
    if alt:
        sim.inject("thinking_alt_wording")
    resp = requests.post(sim.base_url + wire.CHAT_COMPLETIONS_PATH, timeout=10,
                         headers={"Authorization": "Bearer ms-test-think"},
                         json={"model": HYBRID, "messages": [{"role": "user", "content": "hi"}], "stream": False})
    assert resp.status_code == 400
    err = E.error_from_response(resp.status_code, resp.json(), resp.headers)
    assert type(err) is E.ThinkingNeedsStreamError
    assert (wire.MSG_THINKING_NON_STREAM_ALT if alt else wire.MSG_THINKING_NON_STREAM) in err.message
    assert "streamed answer" in explain(err)


def test_3_a_model_without_provider_says_pick_another(sim):
    with pytest.raises(E.ModelNotServedError) as info:
        ChatClient("ms-test-provider", sim.base_url).complete(hi("Someone/Retired-Model"))
    text = explain(info.value)
    assert "Pick another model from the list" in text and "Someone/Retired-Model" in text
    assert "请从列表中另选一个模型" in explain(info.value, "zh")


# --------------------------------------------------------------------------- 5. models


def test_5_model_list_parsing_and_kinds():
    ids = parse_model_ids({"data": [{"id": "a/B"}, {"id": "a/B"}, {"id": 3}, {"x": 1}, {"id": " c/D "}]})
    assert ids == ["a/B", "c/D"]
    with pytest.raises(E.ModelScopeError):
        parse_model_ids({"object": "list"})
    assert catalog.kind_of("black-forest-labs/FLUX.1-Kontext-dev") == catalog.KIND_EDIT
    assert catalog.image_family("black-forest-labs/FLUX.1-Kontext-dev") is catalog.FLUX
    assert catalog.is_edit_model("black-forest-labs/FLUX.1-Kontext-dev")
    assert catalog.kind_of("Qwen/Qwen-Image-2512") == catalog.KIND_IMAGE
    assert catalog.image_family("Qwen/Qwen-Image-2512") is catalog.QWEN_IMAGE
    assert catalog.kind_of("Qwen/Qwen3-VL-8B-Instruct") == catalog.KIND_VISION
    assert catalog.kind_of("Qwen/Qwen3-Embedding-8B") == catalog.KIND_OTHER
    assert catalog.kind_of("moonshotai/Kimi-K2-Instruct") == catalog.KIND_CHAT
    for model in ("Qwen/Qwen-Image-2512", "Qwen/Qwen-Image-Edit-2509", "Tongyi-MAI/Z-Image-Turbo"):
        assert model in catalog.IMAGE_MODELS + catalog.EDIT_MODELS


def test_5_curated_first_service_models_added_failures_keep_the_last_list():
    calls = []

    def fetch(base_url, token):
        calls.append(token)
        if len(calls) == 2:
            raise E.ServerError("busy", status=500)
        return ["zeta/New-Chat-7B", catalog.CHAT_MODELS[0], "Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen-Image-2512"]

    models = ModelList("http://127.0.0.1:9/", "ms-test-owner", fetch=fetch)
    assert models.chat() == list(catalog.CHAT_MODELS)  # before any fetch: the curated list
    assert models.refresh()
    chat = models.chat()
    assert chat[: len(catalog.CHAT_MODELS)] == list(catalog.CHAT_MODELS) and chat[-1] == "zeta/New-Chat-7B"
    assert "Qwen/Qwen3-VL-4B-Instruct" in models.vision() and "Qwen/Qwen-Image-2512" not in chat
    assert not models.refresh() and "busy" in models.last_error
    assert models.chat() == chat  # the last good list stays


def test_5_background_refresh_and_never_on_a_request_path(clean_studio):
    sim, ctx = clean_studio.sim, clean_studio.ctx
    sim.set_config(extra_models=("zeta/Fresh-Chat-9B",))
    try:
        models = ModelList(sim.base_url, max_age=0.2)
        models.start()
        deadline = time.monotonic() + 10
        while "zeta/Fresh-Chat-9B" not in models.chat() and time.monotonic() < deadline:
            time.sleep(0.05)
        models.stop()
        assert "zeta/Fresh-Chat-9B" in models.chat()
        # the studio's page load reads the cache: no model-list call on anyone's path
        old, ctx.models = ctx.models, models
        sim.clear_log()
        loader = next(fn for fn in clean_studio.demo.fns.values() if getattr(fn.fn, "__name__", "") == "fresh_models")
        update = loader.fn()
        chat_choices = [c[0] if isinstance(c, (list, tuple)) else c for c in update[0]["choices"]]
        assert "zeta/Fresh-Chat-9B" in chat_choices
        chat(client(clean_studio.url, "ms-test-models"), "hi")
        assert not [e for e in sim.log if e.path.endswith(wire.MODELS_PATH)]
    finally:
        sim.set_config(extra_models=())
        ctx.models = old if "old" in locals() else ctx.models


def test_5_a_failing_list_leaves_the_curated_one(sim):
    sim.inject("500", scope="models", times=None)
    try:
        models = ModelList(sim.base_url)
        assert not models.refresh()
        assert models.chat() == list(catalog.CHAT_MODELS)
    finally:
        sim.clear_faults()


def test_5_cli_models_live(monkeypatch, sim):
    sim.set_config(extra_models=("zeta/Live-Chat-3B",))
    try:
        code, out, _ = run_cli(monkeypatch, sim, "models", "--kind", "chat", "--live")
    finally:
        sim.set_config(extra_models=())
    assert code == 0 and out.splitlines()[0] == catalog.CHAT_MODELS[0] and "zeta/Live-Chat-3B" in out
    code, out, _ = run_cli(monkeypatch, sim, "models", "--kind", "edit")
    assert "black-forest-labs/FLUX.1-Kontext-dev" in out


# --------------------------------------------------------------------------- 6. both hosts


AI = "https://api-inference.modelscope.ai/"


def test_6_the_site_goes_with_the_host(monkeypatch):
    monkeypatch.setenv(config.BASE_URL_ENV_VAR, AI)
    assert config.resolve_base_url() == AI
    assert config.site_for(AI).token_page == "https://modelscope.ai/my/myaccesstoken"
    assert config.site_for(wire.DEFAULT_BASE_URL).token_page == E.TOKEN_PAGE
    assert config.site_for("http://127.0.0.1:8000/").home == "https://modelscope.cn"
    assert config.site_for("https://evilmodelscope.ai.example.com/").home == "https://modelscope.cn"


def test_6_messages_and_help_link_the_matching_site(fake_request):
    ctx = AppContext(base_url=AI)
    *_, check_token = header.make_handlers(ctx)
    status, _ = check_token(None, fake_request())  # no token: nothing is sent
    assert "https://modelscope.ai/my/myaccesstoken" in status and "modelscope.cn" not in status
    zh, _ = check_token(None, fake_request(lang="zh"))
    assert "https://modelscope.ai/my/myaccesstoken" in zh
    assert header.help_key(ctx.site) == "header.help_ai"
    help_ai = header.STRINGS["en"]["header.help_ai"]
    assert "modelscope.ai/my/account" in help_ai and "modelscope.cn" not in help_ai
    bare = explain(E.UnexplainedRefusalError("HTTP 400", status=400), "en", ctx.site)
    assert "https://modelscope.ai/my/account" in bare


def test_6_cli_hint_links_the_matching_site(monkeypatch, sim):
    monkeypatch.delenv("MODELSCOPE_ACCESS_TOKEN", raising=False)
    for name in config.TOKEN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELSCOPE_BASE_URL", AI)
    err = io.StringIO()
    code = cli_main(["chat", "hi"], stdout=io.StringIO(), stderr=err)
    assert code == 2 and "https://modelscope.ai/my/myaccesstoken" in err.getvalue()


# --------------------------------------------------------------------------- 7. quota


def test_7_a_reply_without_headers_makes_the_quota_unknown(fake_request):
    ctx = AppContext(base_url="http://127.0.0.1:9/")
    req = fake_request(session="q1")
    shown = format_quota(ctx, Quota(2000, 1999, 500, 499), "session", req, answered=True)
    assert "1999/2000" in shown
    unknown = format_quota(ctx, None, "session", req, answered=True)
    assert "unknown" in unknown and "1999" not in unknown
    assert "未知" in format_quota(ctx, None, "session", req, "zh", answered=True)
    assert format_quota(ctx, None, "session", req, answered=False) == ""  # nothing was answered


def test_7_studio_quota_line_says_unknown_when_the_reply_has_no_headers(clean_studio):
    c = client(clean_studio.url, "ms-test-quota-unknown")
    _, line, _ = chat(c, "first")
    assert "Calls left today" in line
    clean_studio.sim.inject("no_quota_headers")
    _, line, _ = chat(c, "second")
    assert "unknown" in line and "Calls left today" not in line


def test_7_switching_token_clears_the_old_numbers(fake_request):
    ctx = AppContext(base_url="http://127.0.0.1:9/")
    req = fake_request(session="q2")
    format_quota(ctx, Quota(2000, 10, 500, 5), "session", req, answered=True)
    assert "10/2000" in ctx.quota_line("q2")
    set_token, *_ = header.make_handlers(ctx)
    _token, _stored, _status, quota = set_token("ms-test-other-token", False, req)
    assert quota == "" and ctx.quota_line("q2") == ""


def test_7_cli_check_says_unknown(monkeypatch, sim):
    sim.inject("no_quota_headers")
    code, out, _ = run_cli(monkeypatch, sim, "check")
    assert code == 0 and "quota: unknown" in out


# --------------------------------------------------------------------------- 8. /vision


def test_8_vision_with_just_image_url_and_question(clean_studio):
    c = client(clean_studio.url, "ms-test-vision-min")
    shown, *_ = c.predict(image_url=PIC_URL, question="What is in it?", api_name="/vision")
    assert shown[-1]["role"] == "assistant" and "cat.png" in str(shown[-1]["content"])
    params = {p["parameter_name"]: p for p in c.view_api(print_info=False, return_format="dict")
              ["named_endpoints"]["/vision"]["parameters"]}
    assert all(p["parameter_has_default"] for p in params.values()), params
