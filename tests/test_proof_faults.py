"""Proof: every simulator fault gives a clear message, the app keeps serving, nothing is lost.

Driven through gradio_client against the launched studio (conftest `clean_studio`), the way a
program or the browser calls it; the private browser-only image generator is driven at the
handler level for the "gallery keeps the earlier images" check. After each fault the next
normal request succeeds.
"""

from __future__ import annotations

import json
import re
import time
import types
import warnings

import gradio as gr
import pytest
import requests
from gradio_client import Client
from gradio_client.exceptions import AppError
from proof_fixtures import error_notes, error_text, free_port

from ui import images_logic as L
from ui import images_tab, vision_tab
from ui.context import AppContext
from ui.images_handlers import OUT_GALLERY, OUT_HISTORY, OUT_STATUS, ImageHandlers

INSTRUCT = "Qwen/Qwen2.5-72B-Instruct"
VL = "Qwen/Qwen2.5-VL-7B-Instruct"
IMAGE_MODEL = "Qwen/Qwen-Image"
PIC_URL = "https://example.com/cat.png"


# --------------------------------------------------------------------------- helpers


def client(url: str, token: str | None) -> Client:
    headers = {"accept-language": "en-US,en;q=0.9"}
    if token:
        headers["X-ModelScope-Token"] = token
    return Client(url, headers=headers, verbose=False, download_files=False)


def chat(c: Client, message: str, max_tokens: int = 0):
    """(answer messages, quota line, code) from the public /chat endpoint."""
    return c.submit(message, INSTRUCT, "", 0.7, 0.8, max_tokens, False, api_name="/chat").result()


def vision(c: Client, question: str, image_url: str = ""):
    """(chatbot, question box, quota line, code) from the public /vision endpoint."""
    return c.predict(image_url, None, question, VL, api_name="/vision")


def generate(c: Client, prompt: str = "a red kite", **kw):
    return c.predict(model=IMAGE_MODEL, prompt=prompt, width=256, height=256, seed=3,
                     api_name="/generate_image", **kw)


def api_calls(sim, part: str) -> list:
    return [e for e in sim.log if part in e.path and not e.path.startswith("/_sim/")]


def sent_texts(sim) -> list[str]:
    """The message texts of the last chat request the simulator received."""
    return [str(m["content"]).strip() for m in api_calls(sim, "/chat/completions")[-1].json["messages"]]


def task_ids(sim) -> list[str]:
    return [e.path.rsplit("/", 1)[-1] for e in sim.log if "/v1/tasks/" in e.path]


def answer(messages: list) -> str:
    return "".join(str(m["content"]) for m in messages if not (m.get("metadata") or {}).get("title"))


def titles(messages: list) -> list[str]:
    return [(m.get("metadata") or {}).get("title") or "" for m in messages]


@pytest.fixture
def app_studio(clean_studio, tmp_path):
    """The shared app_studio, with saved images going to a temp dir (restored afterwards)."""
    old = clean_studio.ctx.outputs_dir
    clean_studio.ctx.outputs_dir = str(tmp_path / "outputs")
    yield clean_studio
    clean_studio.ctx.outputs_dir = old


# --------------------------------------------------------------------------- chat


CHAT_FAULTS = {
    "500": ["busy", "try again"],
    "502": ["busy", "502"],
    "429": ["Too many requests right now", "Wait a moment", "not used up"],  # calls left: a burst
}


@pytest.mark.parametrize("fault", list(CHAT_FAULTS))
def test_chat_http_fault_is_explained_history_kept_and_next_call_works(app_studio, fault):
    sim, token = app_studio.sim, f"ms-test-fault-chat-{fault}"
    c = client(app_studio.url, token)
    first, _, _ = chat(c, "first question about owls")
    sim.inject(fault, token=token, times=None, scope="chat")  # times=None: the SDK retries once
    try:
        msg = error_text(lambda: chat(c, "second question about bats"))
    finally:
        sim.clear_faults()
    for words in CHAT_FAULTS[fault]:
        assert words in msg, msg
    assert "<html" not in msg.lower() and "Traceback" not in msg
    final, _, _ = chat(c, "third question about cats")
    assert answer(final).strip()
    # nothing lost: the session's history still holds the first exchange and the failed question
    sent = sent_texts(sim)
    assert "first question about owls" in sent[0] and answer(first).strip() in sent
    assert "second question about bats" in sent[-1] and "third question about cats" in sent[-1]
    assert not any(msg[:25] in t for t in sent)  # the error shown is never sent back to the model


@pytest.mark.parametrize("fault", ["stream_cut", "malformed_chunk"])
def test_chat_broken_stream_keeps_the_partial_answer_marked(app_studio, fault):
    sim, token = app_studio.sim, f"ms-test-fault-chat-{fault}"
    c = client(app_studio.url, token)
    sim.inject(fault, token=token, scope="chat")
    final, _, _ = chat(c, "tell me a long story about a lighthouse", max_tokens=80)
    assert any("cut off" in t for t in titles(final)), final
    partial = answer(final)
    assert partial.strip()
    note = next(m for m in final if "cut off" in titles([m])[0])
    assert "try again" in str(note["content"]).lower()
    nxt, _, _ = chat(c, "and the ending?")
    assert answer(nxt).strip() and not any("cut off" in t for t in titles(nxt))
    sent = sent_texts(sim)
    assert partial.strip() in sent  # the kept partial answer is part of the conversation
    assert not any("cut off" in t.lower() for t in sent)  # the marker is shown, never sent back


def test_slow_first_token_keeps_the_app_serving_and_the_answer_arrives(app_studio):
    sim = app_studio.sim
    old = sim.config.slow_ttft
    sim.set_config(slow_ttft=2.0)
    slow_token = "ms-test-fault-slow"
    sim.inject("slow_first_token", token=slow_token, scope="chat")
    try:
        start = time.monotonic()
        job = client(app_studio.url, slow_token).submit("hi", INSTRUCT, "", 0.7, 0.8, 0, False, api_name="/chat")
        quick, _, _ = chat(client(app_studio.url, "ms-test-fault-quick"), "are you there?")
        assert answer(quick).strip()
        assert not job.done(), "another user's answer waited for the slow one"
        slow, _, _ = job.result(timeout=30)
        assert time.monotonic() - start >= 2.0
    finally:
        sim.set_config(slow_ttft=old)
    assert answer(slow).strip() and not any("cut off" in t for t in titles(slow))


def test_vision_fault_is_explained_and_the_conversation_survives(app_studio):
    fault, words = "429", ["Too many requests", "not used up"]
    sim, token = app_studio.sim, f"ms-test-fault-vision-{fault}"
    c = client(app_studio.url, token)
    shown, _, _, _ = vision(c, "what animal is this?", PIC_URL)
    assert shown[-1]["role"] == "assistant"
    sim.inject(fault, token=token, times=None, scope="chat")
    try:
        msg = error_text(lambda: vision(c, "what colour is it?"))
    finally:
        sim.clear_faults()
    assert all(w in msg for w in words), msg
    shown, _, _, _ = vision(c, "how old is it?")  # a follow-up: the image is still there
    sent = api_calls(sim, "/chat/completions")[-1].json["messages"]
    assert sent[0]["content"][0]["image_url"]["url"] == PIC_URL
    assert "what animal is this?" in json.dumps(sent) and sent[-1]["content"] == "how old is it?"
    assert shown[-1]["role"] == "assistant" and answer(shown[-1:]).strip()


def test_vision_handler_restores_the_previous_conversation_on_error(simulator, fake_request):
    """At the handler level: after a failure the chatbot goes back to what it showed."""
    ask = vision_tab.make_ask(AppContext(base_url=simulator.base_url))
    token = "ms-test-fault-vision-handler"
    outs = list(ask(PIC_URL, None, "what is it?", VL, None, token, fake_request()))
    before = outs[-1][1]
    assert isinstance(before, dict) and before["display"][-1]["role"] == "assistant"
    simulator.inject("502", token=token, times=None, scope="chat")
    yielded, raised = [], None
    try:
        for out in ask("", None, "and the colour?", VL, before, token, fake_request()):
            yielded.append(out)
    except gr.Error as err:  # (the tab may fail the event or show a note: either is fine)
        raised = err.message
    finally:
        simulator.clear_faults()
    msg = raised or "\n".join(error_notes(yielded[-1][0]))
    assert "busy" in msg, msg
    shown = yielded[-1][0]
    assert shown[: len(before["display"])] == before["display"]  # the earlier conversation is still shown
    assert all(y[1] == gr.skip() for y in yielded)  # …and still the one a follow-up continues
    assert all(y[2] == gr.skip() for y in yielded)  # the question stays in its box


# --------------------------------------------------------------------------- images (public endpoint)


IMAGE_FAULTS = [
    # (fault, scope, words in the message, message names the task id)
    ("500", "images", ["busy"], False),
    ("502", "images", ["busy"], False),
    ("429", "images", ["Too many requests", "not used up"], False),
    ("task_failed", None, ["failed on the server", "inappropriate content"], True),
    ("image_404", None, ["download", "404", "again"], True),
    ("task_not_found", "task", ["task not found", "again"], True),
]


@pytest.mark.parametrize(("fault", "scope", "words", "names_task"), IMAGE_FAULTS,
                         ids=[f[0] for f in IMAGE_FAULTS])
def test_image_fault_is_explained_and_the_next_image_works(app_studio, fault, scope, words, names_task):
    sim, token = app_studio.sim, f"ms-test-fault-img-{fault}"
    c = client(app_studio.url, token)
    sim.inject(fault, token=token, scope=scope)
    with pytest.raises(AppError) as info:
        generate(c)
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert "<?xml" not in msg and "<html" not in msg.lower()
    if names_task:
        assert task_ids(sim) and task_ids(sim)[0] in msg, msg
    images, record = generate(c, "a blue kite")
    assert len(images) == 1 and record["task_id"] and record["saved"]


def test_never_finishing_task_times_out_naming_the_task(app_studio, monkeypatch):
    monkeypatch.setenv("STUDIO_IMAGE_TIMEOUT", "1.2")
    sim, token = app_studio.sim, "ms-test-fault-img-never"
    c = client(app_studio.url, token)
    sim.inject("task_never_finishes", token=token)
    start = time.monotonic()
    with pytest.raises(AppError) as info:
        generate(c)
    assert time.monotonic() - start < 10
    msg = str(info.value)
    (task,) = set(task_ids(sim))
    assert "did not finish in time" in msg and task in msg, msg
    images, record = generate(c, "a green kite")
    assert images and record["task_id"] != task


def test_transient_task_faults_are_absorbed(app_studio):
    """An early spurious FAILED is re-checked and a 502 on a poll is retried: the image arrives."""
    sim, token = app_studio.sim, "ms-test-fault-absorb"
    sim.inject("spurious_failed", token=token)
    sim.inject("502", token=token, scope="task")
    images, record = generate(client(app_studio.url, token))
    assert images and record["task_id"]
    assert [e.status for e in sim.log if "/v1/tasks/" in e.path].count(502) == 1


# --------------------------------------------------------------------------- images (browser handler)


def run_generate(h: ImageHandlers, history: list, session: str, prompt: str):
    req = types.SimpleNamespace(headers={"accept-language": "en-US", "x-modelscope-token": "ms-test-fault-gallery"},
                                session_hash=session)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = list(h.generate(prompt, "", IMAGE_MODEL, 256, 256, True, 30, 3.5, 9, False,
                               L.loras_table(None), "", None, None, history, request=req))
    return outs, [str(w.message) for w in caught]


def test_gallery_keeps_earlier_images_after_a_failed_generate(simulator, tmp_path):
    ctx = AppContext(base_url=simulator.base_url, outputs_dir=str(tmp_path / "outputs"))
    h = ImageHandlers(ctx, images_tab.STRINGS)
    outs, _ = run_generate(h, [], "gal", "first kite")
    history = outs[-1][OUT_HISTORY]
    assert len(history) == 1
    for fault, scope in [("500", "images"), ("task_failed", None), ("image_404", None)]:
        simulator.inject(fault, token="ms-test-fault-gallery", scope=scope)
        outs, toasts = run_generate(h, history, "gal", "second kite")
        assert all(o[OUT_GALLERY] == gr.skip() and o[OUT_HISTORY] == gr.skip() for o in outs), fault
        assert outs[-1][OUT_STATUS].startswith("❌") and toasts and toasts[-1] in outs[-1][OUT_STATUS]
    outs, _ = run_generate(h, history, "gal", "third kite")
    new_history = outs[-1][OUT_HISTORY]
    assert len(new_history) == 2 and new_history[1] == history[0]
    assert [g[0] for g in outs[-1][OUT_GALLERY]][1] == history[0]["image"]


# --------------------------------------------------------------------------- connection refused


def test_connection_refused_is_explained_and_the_app_keeps_serving(simulator, tmp_path):
    import app

    closed = free_port()  # bound and released: nothing listens there
    ctx = AppContext(base_url=f"http://127.0.0.1:{closed}/", outputs_dir=str(tmp_path / "outputs"))
    demo = app.build_app(ctx)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                ssr_mode=False, **app.launch_kwargs(demo, ctx))
    url = f"http://127.0.0.1:{port}/"
    try:
        c = client(url, "ms-test-fault-refused")
        for call in (lambda: chat(c, "hello?"), lambda: vision(c, "what is it?", PIC_URL), lambda: generate(c)):
            msg = error_text(call)
            assert "Could not reach the server" in msg and "network" in msg, msg
            assert "Traceback" not in msg
        assert requests.get(url, timeout=10).status_code == 200  # still serving pages
        ctx.base_url = simulator.base_url  # the network is back
        final, _, _ = chat(c, "now?")
        assert answer(final).strip()
        images, record = generate(c)
        assert images and re.fullmatch(r"[\w-]+", record["task_id"])
    finally:
        demo.close()


def test_simulator_faults_all_covered():
    """Every fault the simulator can inject is exercised in this file or, for the replies
    quoted from real captures, in test_real_replies.py."""
    from pathlib import Path

    from modelscope_api.simulator import FAULTS

    here = "".join(open(Path(__file__).with_name(name), encoding="utf-8").read()
                   for name in ("test_proof_faults.py", "test_real_replies.py"))
    missing = [f for f in FAULTS if f'"{f}"' not in here]
    assert not missing, missing
