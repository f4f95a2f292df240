"""Proof: bad input gets a clear message naming the field and its range, and — for everything
the app can check itself — the simulator's log shows that **zero** requests were sent.

Driven through gradio_client against the launched studio (conftest `clean_studio`): the public
/chat, /vision and /generate_image endpoints. The browser-only image generator (private) is
checked at the handler level for its upload cases.
"""

from __future__ import annotations

import types
import warnings

import gradio as gr
import pytest
import requests
from gradio_client import Client, handle_file
from PIL import Image
from proof_fixtures import error_notes, error_text

from modelscope_api import catalog
from modelscope_api.errors import ValidationError
from ui import images_logic as L
from ui import images_tab
from ui.context import AppContext
from ui.images_handlers import OUT_STATUS, ImageHandlers

TOKEN = "ms-test-bad-input"
INSTRUCT = "Qwen/Qwen2.5-72B-Instruct"
VL = "Qwen/Qwen2.5-VL-7B-Instruct"
QWEN, FLUX, ZIT, SDXL = ("Qwen/Qwen-Image", "black-forest-labs/FLUX.1-Krea-dev", "Tongyi-MAI/Z-Image-Turbo",
                         "stabilityai/stable-diffusion-xl-base-1.0")
EDIT = "Qwen/Qwen-Image-Edit"
NOTHING_SENT = "Nothing was sent"

def api_requests(sim) -> list:
    return [r for r in sim.log if not r.path.startswith("/_sim/")]


@pytest.fixture
def app_studio(clean_studio, tmp_path):
    old = clean_studio.ctx.outputs_dir
    clean_studio.ctx.outputs_dir = str(tmp_path / "outputs")
    yield clean_studio
    clean_studio.ctx.outputs_dir = old


@pytest.fixture(scope="module")
def client(studio):
    """One gradio_client for the module (bad input never needs a fresh session)."""
    return Client(studio.url, headers={"X-ModelScope-Token": TOKEN}, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-input-files")
    (d / "notes.png").write_text("this is text, not a picture", encoding="utf-8")
    Image.new("RGB", (2100, 2000), "red").save(d / "big.bmp")  # ~12.6 MB: over the 10 MB image limit
    return d


def image_call(**kw):
    args = dict(model=QWEN, prompt="a paper boat", width=512, height=512)
    args.update(kw)
    return lambda c, files: c.predict(api_name="/generate_image", **args)


def chat_call(message="hello", model=INSTRUCT, temperature=0.7, top_p=0.8, max_tokens=0):
    return lambda c, files: c.predict(message, model, "", temperature, top_p, max_tokens, False, api_name="/chat")


def vision_call(question="what is it?", image_url="https://example.com/cat.png", upload=None, model=VL):
    return lambda c, files: c.predict(image_url, handle_file(str(files / upload)) if upload else None,
                                      question, model, api_name="/vision")


def _side_cases():
    out = []
    for model, fam in ((QWEN, catalog.QWEN_IMAGE), (FLUX, catalog.FLUX), (ZIT, catalog.Z_IMAGE_TURBO),
                       (SDXL, catalog.SD)):
        rng = f"{fam.min_side} to {fam.max_side} pixels for {fam.name}"
        below = fam.min_side - 16
        above = fam.max_side + 16
        out.append((f"width-below-{fam.name}", image_call(model=model, width=below, height=fam.min_side),
                    ["width", rng, NOTHING_SENT]))
        out.append((f"height-above-{fam.name}", image_call(model=model, width=fam.max_side, height=above),
                    ["height", rng, NOTHING_SENT]))
    return out


# (id, call, words the message must contain) — all checked before anything is sent
CLIENT_SIDE = [
    ("chat-empty-message", chat_call(message=""), ["message", NOTHING_SENT]),
    ("chat-blank-message", chat_call(message="   \n "), ["message", NOTHING_SENT]),
    ("chat-temperature-5", chat_call(temperature=5.0), ["temperature", "from 0 to 2"]),
    ("chat-max-tokens-negative", chat_call(max_tokens=-3), ["max_tokens", "from 0 to 16384"]),
    ("image-empty-prompt", image_call(prompt=""), ["prompt", "non-empty", NOTHING_SENT]),
    ("image-2000-char-prompt", image_call(prompt="猫" * 2000), ["prompt", "fewer than 2000", NOTHING_SENT]),
    ("image-2000-char-negative", image_call(negative_prompt="x" * 2000),
     ["negative_prompt", "fewer than 2000", NOTHING_SENT]),
    *_side_cases(),
    ("image-non-numeric-width", image_call(width="abc"), ["width", "64 to 1664", NOTHING_SENT]),
    ("image-non-numeric-height", image_call(height="wide"), ["height", "64 to 1664", NOTHING_SENT]),
    ("image-seed-minus-1", image_call(seed=-1), ["seed", "0 to 2147483647", NOTHING_SENT]),
    ("image-seed-2^31", image_call(seed=2**31), ["seed", "0 to 2147483647", NOTHING_SENT]),
    ("image-steps-0", image_call(steps=0), ["steps", "1 to 100", NOTHING_SENT]),
    ("image-steps-101", image_call(steps=101), ["steps", "1 to 100", NOTHING_SENT]),
    ("image-guidance-1.4", image_call(guidance=1.4), ["guidance", "1.5 to 20.0", NOTHING_SENT]),
    ("image-guidance-20.1", image_call(guidance=20.1), ["guidance", "1.5 to 20.0", NOTHING_SENT]),
    ("image-7-loras", image_call(loras={f"owner/lora{i}": 1 / 7 for i in range(7)}),
     ["loras", "7 LoRAs", "at most 6", NOTHING_SENT]),
    ("image-lora-weights-sum-0.9", image_call(loras={"a/one": 0.5, "b/two": 0.4}),
     ["loras", "summing to 0.9", "sum to 1.0", NOTHING_SENT]),
    ("image-lora-negative-weight", image_call(loras={"a/one": -0.2, "b/two": 1.2}),
     ["loras[a/one].weight", "-0.2", "more than 0", NOTHING_SENT]),
    ("image-lora-empty-id", image_call(loras=[["", 0.5], ["b/two", 0.5]]),
     ["loras", "a LoRA repo id for every weight", NOTHING_SENT]),
    ("image-lora-bad-id", image_call(loras="just-a-name"), ["loras", "owner/name", NOTHING_SENT]),
    ("image-malformed-image-url", image_call(model=EDIT, image_url="htp:/not a url"),
     ["image_url", "http(s) URL", NOTHING_SENT]),
    ("image-edit-without-image", image_call(model=EDIT), ["image_url", "at least one image", NOTHING_SENT]),
    ("vision-empty-question", vision_call(question=" "), ["question", NOTHING_SENT]),
    ("vision-no-image", vision_call(image_url=""), ["image URL", NOTHING_SENT]),
    ("vision-malformed-image-url", vision_call(image_url="ftp//example.com/cat.png"),
     ["image_url", "http(s) URL", NOTHING_SENT]),
    ("vision-upload-over-10MB", vision_call(image_url="", upload="big.bmp"), ["image", "at most 10 MB", NOTHING_SENT]),
    ("vision-non-image-upload", vision_call(image_url="", upload="notes.png"), ["image", "PNG, JPEG", NOTHING_SENT]),
]


def _params(cases):
    return [c if hasattr(c, "marks") else pytest.param(*c, id=c[0]) for c in cases]


@pytest.mark.parametrize(("name", "call", "words"), _params(CLIENT_SIDE))
def test_bad_input_is_explained_and_nothing_is_sent(app_studio, client, files, name, call, words):
    msg = error_text(lambda: call(client, files))
    for w in words:
        assert w in msg, f"{name}: {w!r} not in {msg!r}"
    assert "Traceback" not in msg and "upstream Gradio app" not in msg
    assert api_requests(app_studio.sim) == [], name


def test_at_least_twenty_client_side_cases():
    assert len(CLIENT_SIDE) >= 20


def test_upload_over_the_server_limit_is_refused_before_the_app(app_studio, files, tmp_path):
    """Over launch's max_file_size (20 MB): gradio_client refuses it, and so does the upload route."""
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(21 * 1024 * 1024)
    c = Client(app_studio.url, headers={"X-ModelScope-Token": TOKEN}, verbose=False, download_files=False)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        c.predict("", handle_file(str(huge)), "what is it?", VL, api_name="/vision")
    with open(huge, "rb") as f:
        r = requests.post(app_studio.url + "gradio_api/upload", files={"files": ("huge.png", f, "image/png")},
                          timeout=60)
    assert r.status_code == 413 and "maximum" in r.text.lower() and "size" in r.text.lower()
    assert api_requests(app_studio.sim) == []
    # the app still serves a normal request afterwards
    chatbot, *_ = c.predict("https://example.com/cat.png", None, "what is it?", VL, api_name="/vision")
    assert chatbot[-1]["role"] == "assistant"


@pytest.mark.parametrize(("endpoint", "call"), [
    ("chat", chat_call(model="nobody/no-such-chat-model")),
    ("vision", vision_call(model="nobody/no-such-vl-model")),
    ("image", image_call(model="nobody/no-such-image-model")),
])
def test_unknown_model_shows_the_servers_400(app_studio, client, files, endpoint, call):
    msg = error_text(lambda: call(client, files))
    assert "has no provider supported" in msg and "nobody/no-such" in msg, msg
    assert "does not serve this model" in msg and "Pick another model" in msg
    sent = api_requests(app_studio.sim)
    assert len(sent) == 1 and sent[0].status == 400  # one request, answered 400, not retried


# --------------------------------------------------------------------------- handler level


def test_non_numeric_size_is_named_by_the_request_builder():
    """The check the public endpoint reaches when a program sends text for a number."""
    for kw, field in ((dict(width="abc", height=512), "width"), (dict(width=512, height="wide"), "height")):
        with pytest.raises(ValidationError) as info:
            L.request_from_api(QWEN, "a boat", **kw)
        assert info.value.field == field and "64 to 1664" in str(info.value)


@pytest.mark.parametrize(("name", "content", "words"), [
    ("notes.txt", b"plain text", ["upload notes.txt", "PNG, JPEG"]),
    ("empty.png", b"", ["upload empty.png", "empty file"]),
    ("big.bmp", None, ["upload big.bmp", "at most 10 MB"]),
])
def test_browser_generator_refuses_bad_uploads_without_sending(simulator, tmp_path, files, uploaded, name,
                                                               content, words):
    simulator.clear_log()
    path = uploaded(files / name if content is None else content, name)
    h = ImageHandlers(AppContext(base_url=simulator.base_url, outputs_dir=str(tmp_path / "out")),
                      images_tab.STRINGS)
    req = types.SimpleNamespace(headers={"accept-language": "en-US", "x-modelscope-token": TOKEN},
                                session_hash="bad-upload")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = list(h.generate("make it blue", "", EDIT, 512, 512, True, 30, 3.5, 1, False,
                               L.loras_table(None), "", [str(path)], None, [], request=req))
    status = outs[-1][OUT_STATUS]
    for w in words:
        assert w in status, status
    assert NOTHING_SENT in status and any(NOTHING_SENT in str(w.message) for w in caught)
    assert all(o[1] == gr.skip() for o in outs)  # the gallery is untouched
    assert api_requests(simulator) == []


def test_chat_handler_blank_message_sends_nothing(simulator, fake_request):
    from ui import chat_tab

    simulator.clear_log()
    respond = chat_tab.make_respond(AppContext(base_url=simulator.base_url))
    try:
        outs = list(respond("\t", [{"role": "user", "content": "earlier"}], INSTRUCT, "", 0.7, 0.8, 0, False,
                            TOKEN, fake_request()))
        msg = "\n".join(error_notes(outs[-1][0]))
    except gr.Error as err:  # (the tab may fail the event or show a note: either is fine)
        msg = err.message
    assert "message" in msg and NOTHING_SENT in msg, msg
    assert api_requests(simulator) == []
