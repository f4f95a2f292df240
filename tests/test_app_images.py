"""The Images tab: handlers called directly with a fake request, and the public
`/generate_image` endpoint through gradio_client against a launched app + the simulator."""

from __future__ import annotations

import json
import threading
import time
import types
import warnings
from pathlib import Path

import gradio as gr
import pytest
import requests
from PIL import Image

from modelscope_api import catalog, wire
from ui import images_logic as L
from ui import images_tab
from ui.context import AppContext, ServerTokenGuard
from ui.images_handlers import (
    OUT_CODE,
    OUT_FILES,
    OUT_GALLERY,
    OUT_HISTORY,
    OUT_QUOTA,
    OUT_RECORD,
    OUT_SEED,
    OUT_STATUS,
    ImageHandlers,
)

TOKEN = "ms-test-images-tab"
SKIP = gr.skip()


def skipped(value) -> bool:
    return value == SKIP


# --------------------------------------------------------------------------- fixtures
# `simulator`, `clean_studio` and `fake_request` come from conftest.py.


@pytest.fixture
def sim(simulator):
    simulator.clear_faults()
    simulator.clear_log()
    yield simulator
    simulator.clear_faults()


@pytest.fixture
def ctx(sim, tmp_path):
    return AppContext(base_url=sim.base_url, outputs_dir=str(tmp_path / "outputs"))


@pytest.fixture
def tab(ctx, fake_request):
    """The tab's handlers on a fresh context, a request factory, and `run(**controls)`."""
    handlers = ImageHandlers(ctx, images_tab.STRINGS)

    def run_(request=None, handlers_=None, **kw):
        return run(handlers_ or handlers, request or fake_request(), **kw)

    return types.SimpleNamespace(h=handlers, req=fake_request, run=run_, ctx=ctx)


def controls(**kw):
    """The browser generator's inputs as a dict (defaults: a small Qwen-Image, fixed seed)."""
    base = dict(
        prompt="一只金色的猫", negative_prompt="", model="Qwen/Qwen-Image", width=256, height=256,
        use_defaults=True, steps=30, guidance=3.5, seed=7, randomize_seed=False,
        lora_table=L.loras_table(None), image_urls_text="", uploads=None, token_state=TOKEN, history=[],
    )
    base.update(kw)
    return base


def run(h, request, **kw):
    """All yields of one generate call, and the warnings (toasts) it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = list(h.generate(**controls(**kw), request=request))
    return outs, [str(w.message) for w in caught if w.category is UserWarning]  # gr.Warning toasts


def final(outs, index):
    """The last value yielded for one output (skips are 'unchanged')."""
    values = [o[index] for o in outs if o[index] != SKIP]
    return values[-1] if values else SKIP


def submits(sim):
    return [e for e in sim.log if e.method == "POST" and e.path.endswith(wire.IMAGES_PATH)]


def png(path: Path, size=(8, 8)) -> Path:
    Image.new("RGB", size, "red").save(path)
    return path


# --------------------------------------------------------------------------- the happy path


def test_generate_with_two_loras_streams_status_saves_and_writes_back_the_seed(tab, sim, ctx):
    table = [["owner/lora-a", 0.6], ["owner/lora-b", 0.4], ["", None]]
    # long enough that a running status is relayed even on a loaded machine (updates ≤ 5/s)
    sim.set_config(task_seconds=1.5)
    try:
        outs, toasts = tab.run(lora_table=table, randomize_seed=True)
    finally:
        sim.set_config(task_seconds=0.3)
    assert not toasts
    statuses = [o[OUT_STATUS] for o in outs if o[OUT_STATUS] != SKIP]
    seen = " ".join(statuses)
    assert "SUBMITTED" in seen and "SUCCEED" in seen
    assert any(s in seen for s in ("PENDING", "RUNNING", "PROCESSING"))
    task_lines = [s for s in statuses if "Task `" in s]
    task_id = final(outs, OUT_RECORD)["task_id"]
    assert all(task_id in s for s in task_lines)  # the task id is shown while it runs

    body = submits(sim)[0].json
    assert body["loras"] == {"owner/lora-a": 0.6, "owner/lora-b": 0.4}
    assert "steps" not in body and "guidance" not in body  # model defaults
    sent_seed = body["seed"]  # randomized: a fresh seed was sent…
    assert final(outs, OUT_SEED) == sent_seed  # …and written back to the seed control
    record = final(outs, OUT_RECORD)
    assert record["seed"] == sent_seed and record["size"] == "256x256"

    gallery = final(outs, OUT_GALLERY)
    assert len(gallery) == 1 and f"seed {sent_seed}" in gallery[0][1] and "Qwen/Qwen-Image" in gallery[0][1]
    assert Path(gallery[0][0]).is_file()
    saved = sorted(Path(ctx.outputs_dir).iterdir())
    assert [p.suffix for p in saved] == [".json", ".png"]
    meta = json.loads(saved[0].read_text())
    assert meta["task_id"] == task_id and meta["seed"] == sent_seed
    assert {Path(f).suffix for f in final(outs, OUT_FILES)} == {".png", ".json"}
    assert "Calls left today" in final(outs, OUT_QUOTA)
    code = final(outs, OUT_CODE)
    assert "owner/lora-a" in code and TOKEN not in code
    for o in outs:  # the token never reaches any output
        assert TOKEN not in repr(o)


def test_status_in_chinese_for_a_chinese_browser(tab):
    outs, _ = tab.run(request=tab.req(lang="zh"))
    assert "任务" in final(outs, OUT_STATUS)


def test_newest_first_and_reuse_settings_restores_every_control(tab):
    table = [["owner/lora-a", 0.5], ["owner/lora-b", 0.5]]
    first, _ = tab.run(prompt="first", seed=11)
    history = final(first, OUT_HISTORY)
    second, _ = tab.run(prompt="second", negative_prompt="blurry", model="black-forest-labs/FLUX.1-Krea-dev",
                    width=512, height=768, use_defaults=False, steps=12, guidance=5.5, seed=99,
                    lora_table=table, history=history)
    history = final(second, OUT_HISTORY)
    assert [e["settings"]["prompt"] for e in history] == ["second", "first"]
    assert final(second, OUT_GALLERY)[1][1].startswith("seed 11")

    got = tab.h.reuse(history, 1, tab.req())
    assert got[0] == "first" and got[8] == 11 and got[9] is False
    (prompt, negative, model, width, height, use_defaults, steps, guidance, seed, randomize, loras,
     urls, edit) = tab.h.reuse(history, 0, tab.req())
    assert (prompt, negative, model) == ("second", "blurry", "black-forest-labs/FLUX.1-Krea-dev")
    assert width["value"] == 512 and height["value"] == 768 and width["maximum"] == 1024
    assert (use_defaults, steps, guidance, seed, randomize) == (False, 12, 5.5, 99, False)
    assert L.table_loras(loras) == [("owner/lora-a", 0.5), ("owner/lora-b", 0.5)]
    assert urls == "" and edit["visible"] is False
    assert tab.h.reuse_seed(history, tab.req()) == (99, False)


def test_reuse_restores_image_urls_of_an_edit(tab, sim):
    outs, toasts = tab.run(model="Qwen/Qwen-Image-Edit", image_urls_text="https://example.com/cat.png\n")
    assert not toasts, toasts
    assert submits(sim)[0].json["image_url"] == "https://example.com/cat.png"
    got = tab.h.reuse(final(outs, OUT_HISTORY), None, tab.req())
    assert got[2] == "Qwen/Qwen-Image-Edit" and got[11] == "https://example.com/cat.png"
    assert got[12]["visible"] is True


def test_uploads_become_data_urls_for_edit_models(tab, sim, tmp_path, uploaded):
    outs, toasts = tab.run(model="Qwen/Qwen-Image-Edit-2509", uploads=[uploaded(png(tmp_path / "a.png"))])
    assert not toasts, toasts
    assert submits(sim)[0].json["image_url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(("lang", "words"), [("en", "was shrunk from 1080×2376 to 931×2048"),
                                             ("zh", "从 1080×2376 缩小到 931×2048")])
def test_a_big_upload_to_edit_is_shrunk_and_said_under_the_status(tab, sim, uploaded, lang, words):
    """A 1080x2376 phone photo would be refused (400 input size exceed limit 2048x2048): it
    is sent as 931x2048, and every status line, the final one included, says so."""
    import base64
    import io

    buf = io.BytesIO()
    Image.linear_gradient("L").resize((1080, 2376)).convert("RGB").save(buf, "JPEG", quality=92)
    small = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(small, "PNG")
    uploads = [uploaded(buf.getvalue(), "phone.jpg"), uploaded(small.getvalue(), "dot.png")]
    outs, toasts = tab.run(model="Qwen/Qwen-Image-Edit-2509", request=tab.req(lang=lang), uploads=uploads)
    assert not toasts, toasts
    status = final(outs, OUT_STATUS)
    assert "SUCCEED" in status and words in status and "`phone.jpg`" in status
    assert "dot.png" not in status  # a picture that fits is not mentioned
    assert all(words in o[OUT_STATUS] for o in outs if not skipped(o[OUT_STATUS]))
    big, small = submits(sim)[0].json["image_url"]
    assert big.startswith("data:image/jpeg;base64,") and small.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(big.split(",", 1)[1]))) as sent:
        assert sent.size == (931, 2048)


# --------------------------------------------------------------------------- controls


def test_model_change_sets_the_family_range_and_clamps(tab):
    h, req = tab.h, tab.req()
    w, hh, edit, note = h.on_model_change("black-forest-labs/FLUX.1-Krea-dev", 1664, 512, req)
    assert (w["minimum"], w["maximum"], w["value"], hh["value"]) == (64, 1024, 1024, 512)
    assert edit["visible"] is False and "FLUX" in note
    w, hh, _, _ = h.on_model_change("Tongyi-MAI/Z-Image-Turbo", 1024, 256, req)
    assert (w["minimum"], w["maximum"], hh["value"]) == (512, 2048, 512)
    w, _, edit, _ = h.on_model_change("Qwen/Qwen-Image-Edit", 2048, 2048, req)
    assert w["maximum"] == 1664 and w["value"] == 1664 and edit["visible"] is True
    w, _, _, _ = h.on_model_change("someone/custom-sd-model", 2048, 64, req)  # unknown → SD range
    assert (w["maximum"], w["value"]) == (2048, 2048)


@pytest.mark.parametrize("family", catalog.FAMILIES, ids=lambda f: f.name)
def test_presets_fit_the_family_and_swap(family):
    for ratio, (a, b) in L.RATIOS.items():
        w, h = L.preset_size(family, ratio)
        assert family.min_side <= w <= family.max_side and family.min_side <= h <= family.max_side
        assert w % 16 == 0 and h % 16 == 0
        assert abs(w / h - a / b) < 0.08, (ratio, w, h)
    model = {"SD": "x/sd", "FLUX": "black-forest-labs/FLUX.1-Krea-dev", "Qwen-Image": "Qwen/Qwen-Image",
             "Z-Image-Turbo": "Tongyi-MAI/Z-Image-Turbo"}[family.name]
    hnd = ImageHandlers(AppContext(base_url="http://127.0.0.1:9/"), images_tab.STRINGS)
    w, h = hnd.preset(model, "16:9")
    assert w > h and hnd.swap(model, w, h) == (h, w)


def test_normalise_weights_and_bad_cells(tab):
    rows = tab.h.normalise([["a/b", 3], ["c/d", "1"], ["", None]], tab.req())
    assert L.table_loras(rows) == [("a/b", 0.75), ("c/d", 0.25)]
    with pytest.warns(UserWarning, match="weight"):
        assert tab.h.normalise([["a/b", "lots"]], tab.req()) == SKIP


# --------------------------------------------------------------------------- validation: nothing sent


def _big(uploaded):
    path = Path(uploaded(b"", "huge.png"))
    with open(path, "wb") as f:
        f.truncate(11 * 1024 * 1024)
    return [str(path)]


def _text(uploaded):
    return [uploaded(b"not an image", "notes.png")]


EDIT = "Qwen/Qwen-Image-Edit"
INVALID = {
    "empty prompt": (dict(prompt="   "), "prompt"),
    "prompt too long": (dict(prompt="猫" * 2000), "fewer than 2000"),
    "negative too long": (dict(negative_prompt="x" * 2000), "negative_prompt"),
    "width above FLUX": (dict(model="black-forest-labs/FLUX.1-Krea-dev", width=1200), "64 to 1024"),
    "height below Z-Image": (dict(model="Tongyi-MAI/Z-Image-Turbo", width=512, height=256), "512 to 2048"),
    "seed negative": (dict(seed=-1), "seed"),
    "seed too big": (dict(seed=2**31), "2147483647"),
    "steps": (dict(use_defaults=False, steps=0), "steps"),
    "guidance": (dict(use_defaults=False, guidance=30), "guidance"),
    "lora weight not a number": (dict(lora_table=[["a/b", "heavy"]]), "weight"),
    "lora weights sum": (dict(lora_table=[["a/b", 0.5], ["c/d", 0.2]]), "normalise"),
    "seven loras": (dict(lora_table=[[f"o/l{i}", 1 / 7] for i in range(7)]), "at most 6"),
    "weight without id": (dict(lora_table=[["", 0.5], ["a/b", 0.5]]), "repo id"),
    "malformed lora id": (dict(lora_table=[["no-slash", None]]), "owner/name"),
    "malformed image url": (dict(model=EDIT, image_urls_text="htp:/nope"), "image_url"),
    "edit without image": (dict(model=EDIT), "image to edit"),
    "non-image upload": (dict(model=EDIT, uploads="text"), "PNG, JPEG"),
    "huge upload": (dict(model=EDIT, uploads="big"), "at most 10 MB"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_bad_input_is_stopped_before_sending(tab, sim, uploaded, case):
    kw, expected = INVALID[case]
    if kw.get("uploads") == "text":
        kw = {**kw, "uploads": _text(uploaded)}
    if kw.get("uploads") == "big":
        kw = {**kw, "uploads": _big(uploaded)}
    outs, toasts = tab.run(**kw)
    assert len(outs) == 1
    status = outs[0][OUT_STATUS]
    assert status.startswith("⚠️") and expected in status and "Nothing was sent" in status
    assert toasts == [status.removeprefix("⚠️ ")]  # the same words as a toast
    assert outs[0][OUT_GALLERY] == SKIP and outs[0][OUT_HISTORY] == SKIP  # work kept
    assert sim.log == []


# --------------------------------------------------------------------------- server faults


FAULTS = {  # fault → words the student reads
    "task_failed": "failed on the server: Output data may contain inappropriate content",
    "image_404": "could not be downloaded (HTTP 404",
    "task_never_finishes": "did not finish in time",
    "500": "busy",
    "429": "Too many requests right now",  # the headers still show calls left: not the quota
    "task_not_found": "(task not found)",
    "task_canceled": "The server cancelled the image task (status CANCELED)",
    "task_unknown": "The server lost track of the image task (status UNKNOWN)",
    "task_failed_flat": "failed on the server: Output data may contain inappropriate content",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_server_faults_are_explained_and_the_next_request_works(tab, sim, ctx, fault):
    # only the never-finishing task should meet the timeout, however loaded the machine
    ctx.image_timeout = 1.0 if fault == "task_never_finishes" else 60.0
    history = [{"image": "earlier.png", "caption": "an earlier image", "settings": {}, "record": {}, "files": []}]
    sim.inject(fault, scope="download" if fault == "image_404" else None)
    outs, toasts = tab.run(history=history)
    status = final(outs, OUT_STATUS)
    assert status.startswith("❌ ") and FAULTS[fault] in status, status
    polled = [e.path.rsplit("/", 1)[-1] for e in sim.log if "/tasks/" in e.path]
    if fault not in ("500", "429"):  # failed after submit: the task is named
        assert f"task {polled[-1]}" in status
    assert toasts and toasts[-1] in status
    assert final(outs, OUT_GALLERY) == SKIP and final(outs, OUT_HISTORY) == SKIP  # gallery intact
    again, toasts = tab.run(history=history)
    assert not toasts and len(final(again, OUT_HISTORY)) == 2


@pytest.mark.parametrize("token, words", [("ms-wrong", "token was refused"), ("ms-test-quota", "quota"),
                                          ("ms-test-unbound", "Aliyun"), ("ms-test-unverified", "403")])
def test_account_problems_in_plain_words(tab, token, words):
    outs, toasts = tab.run(token_state=token)
    assert words in final(outs, OUT_STATUS) and toasts


def test_no_token_and_class_cap(tab, sim, tmp_path):
    outs, _ = tab.run(token_state=None)
    assert "No ModelScope token" in final(outs, OUT_STATUS) and sim.log == []
    ctx = AppContext(base_url=sim.base_url, server_token="ms-test-class", outputs_dir=str(tmp_path),
                     guard=ServerTokenGuard(session_limit=1))
    h = ImageHandlers(ctx, images_tab.STRINGS)
    tab.run(handlers_=h, token_state=None, prompt="   ")  # invalid: not counted
    ok, _ = tab.run(handlers_=h, token_state=None)
    assert final(ok, OUT_HISTORY) and "your share of the class token: **0**" in final(ok, OUT_QUOTA)
    capped, _ = tab.run(handlers_=h, token_state=None)
    assert "You have used your 1 requests" in final(capped, OUT_STATUS)
    assert len(submits(sim)) == 1


def test_cancel_stops_polling_at_once(tab, sim):
    sim.inject("task_never_finishes")
    req = tab.req("canceller")
    other = tab.req("bystander")
    gen = tab.h.generate(**controls(), request=req)
    seen = []

    def consume():
        for o in gen:
            seen.append(o[OUT_STATUS])

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 5
    while not any("RUNNING" in str(s) or "PENDING" in str(s) for s in seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "Nothing is running" in tab.h.cancel(other)  # another session cannot cancel it
    message = tab.h.cancel(req)
    assert "Cancelled" in message
    t.join(2)
    assert not t.is_alive()
    assert "Cancelled" in seen[-1]
    polls = len([e for e in sim.log if e.method == "GET" and "/tasks/" in e.path])
    time.sleep(0.8)
    assert len([e for e in sim.log if e.method == "GET" and "/tasks/" in e.path]) == polls


def test_connection_refused_is_explained(tab, tmp_path):
    h = ImageHandlers(AppContext(base_url="http://127.0.0.1:9/", outputs_dir=str(tmp_path)), images_tab.STRINGS)
    outs, toasts = tab.run(handlers_=h)
    assert "Could not reach the server" in final(outs, OUT_STATUS) and toasts


def test_two_sessions_keep_their_own_galleries(tab):
    a, _ = tab.run(request=tab.req("alice"), prompt="alice's cat")
    b, _ = tab.run(request=tab.req("bob"), prompt="bob's dog", token_state="ms-test-bob")
    ga, gb = final(a, OUT_GALLERY), final(b, OUT_GALLERY)
    assert len(ga) == len(gb) == 1 and ga[0][0] != gb[0][0]
    assert final(b, OUT_HISTORY)[0]["settings"]["prompt"] == "bob's dog"


# --------------------------------------------------------------------------- the launched app


_CLIENTS: dict = {}


@pytest.fixture
def app(clean_studio, tmp_path, monkeypatch):
    """The whole studio (conftest), saving into a temporary outputs_dir."""
    from gradio_client import Client

    monkeypatch.setattr(clean_studio.ctx, "outputs_dir", str(tmp_path / "outputs"))

    def client(token=TOKEN):  # one Client per token for the whole run (each costs a config fetch)
        key = (clean_studio.url, token)
        if key not in _CLIENTS:
            headers = {"X-ModelScope-Token": token} if token else None
            _CLIENTS[key] = Client(clean_studio.url, headers=headers, verbose=False)
        return _CLIENTS[key]

    return types.SimpleNamespace(url=clean_studio.url, ctx=clean_studio.ctx, sim=clean_studio.sim, client=client)


def test_generate_image_endpoint(app):
    sim = app.sim
    client = app.client()
    images, record = client.predict(model="Qwen/Qwen-Image", prompt="a cat", width=256, height=256, seed=5,
                                    loras={"a/b": 0.6, "c/d": 0.4}, api_name="/generate_image")
    assert len(images) == 1 and Path(images[0]["image"]).read_bytes().startswith(b"\x89PNG")
    assert record["task_id"] and record["seed"] == 5 and record["size"] == "256x256"
    assert record["saved"] and Path(record["saved"][0]).is_file()
    (post,) = submits(sim)
    assert post.json["loras"] == {"a/b": 0.6, "c/d": 0.4}
    # outputs_dir itself is not served: only Gradio's content-hashed cache copy is
    assert requests.get(f"{app.url}gradio_api/file={record['saved'][0]}", timeout=10).status_code == 403


def test_generate_image_endpoint_errors(app):
    sim = app.sim
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="64 to 1024"):
        app.client().predict(model="black-forest-labs/FLUX.1-Krea-dev", prompt="a cat", width=2048,
                             height=512, api_name="/generate_image")
    with pytest.raises(AppError, match="No ModelScope token"):
        app.client(token=None).predict(model="Qwen/Qwen-Image", prompt="a cat", api_name="/generate_image")
    assert sim.log == []
    sim.inject("task_failed")
    with pytest.raises(AppError, match="inappropriate content"):
        app.client().predict(model="Qwen/Qwen-Image", prompt="a cat", width=256, height=256,
                             api_name="/generate_image")


def test_generate_image_is_public_and_the_rest_of_the_tab_is_not(app):
    info = app.client().view_api(print_info=False, return_format="dict")
    private = {"/generate", "/on_model_change", "/normalise", "/reuse", "/reuse_seed", "/cancel", "/swap",
               "/select", "/lambda"}
    assert "/generate_image" in info["named_endpoints"] and not private & set(info["named_endpoints"])
    assert not info["unnamed_endpoints"]
    params = [p["parameter_name"] for p in info["named_endpoints"]["/generate_image"]["parameters"]]
    assert params == ["model", "prompt", "negative_prompt", "width", "height", "seed", "steps", "guidance",
                      "loras", "image_url", "randomize_seed"]


def test_timeout_comes_from_ctx_or_environment(monkeypatch):
    from ui.images_handlers import TIMEOUT_ENV, image_timeout

    ctx = AppContext(base_url="http://127.0.0.1:9/")
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert image_timeout(ctx) == 300.0
    monkeypatch.setenv(TIMEOUT_ENV, "42")
    assert image_timeout(ctx) == 42.0
    ctx.image_timeout = 5
    assert image_timeout(ctx) == 5.0
