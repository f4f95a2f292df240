"""The header (token box, remember, check, quota), the composition root (arguments, i18n,
threads, private events) and `python app.py --offline` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pytest
import requests
from gradio_client import Client

import app
from modelscope_api import catalog
from modelscope_api.config import fingerprint
from ui import header
from ui.context import AppContext, ServerTokenGuard

ROOT = Path(__file__).resolve().parent.parent
SKIP = gr.skip()


def handlers(ctx):
    return header.make_handlers(ctx)


# --------------------------------------------------------------------------- handlers


def test_set_token_keeps_it_in_state_and_never_echoes_it(fake_request):
    set_token, *_ = handlers(AppContext(base_url="http://127.0.0.1:9/"))
    token, stored, status, _quota = set_token("  ms-test-secret-1234  ", False, fake_request())
    assert token == "ms-test-secret-1234" and stored == SKIP
    assert "own token" in status and "secret" not in status and "1234" not in status
    token, stored, status, _quota = set_token("ms-test-secret-1234", True, fake_request())
    assert stored == "ms-test-secret-1234"
    token, _, status, _quota = set_token("sk-openai-like", False, fake_request(lang="zh"))
    assert "ms-" in status and "sk-openai" not in status  # a gentle format warning, in Chinese
    assert "令牌" in status
    token, _, status, _quota = set_token("", False, fake_request())
    assert token is None and "no token" in status


def test_clearing_the_box_falls_back_to_the_class_token(fake_request):
    set_token, *_ = handlers(AppContext(base_url="http://127.0.0.1:9/", server_token="ms-test-class"))
    token, _, status, _quota = set_token(" ", False, fake_request())
    assert token is None and "shared class token" in status and "ms-test-class" not in status


def test_remember_and_load(fake_request):
    _, set_remember, load_remembered, _ = handlers(AppContext(base_url="http://127.0.0.1:9/"))
    stored, status = set_remember(True, "ms-test-keep", fake_request())
    assert stored == "ms-test-keep" and "remembered" in status
    stored, status = set_remember(False, "ms-test-keep", fake_request())
    assert stored is None and "no longer" in status
    token, remember, status, student = load_remembered("ms-test-keep", None, fake_request())
    assert token == "ms-test-keep" and remember is True and "ms-test-keep" not in status
    assert isinstance(student, str) and len(student) >= 16  # a new browser gets a student id
    assert load_remembered(None, student, fake_request()) == (SKIP, SKIP, SKIP, SKIP)  # id kept as is


@pytest.mark.parametrize(("token", "expected"), [
    ("ms-test-good", "✅ The token works"),
    ("ms-test-unbound", "Alibaba Cloud"),
    ("ms-test-unverified", "real-name"),
    ("ms-invalid-token", "refused"),
    (None, "No ModelScope token"),
])
def test_check_token_makes_a_real_completion(simulator, fake_request, token, expected):
    *_, check = handlers(AppContext(base_url=simulator.base_url))
    before = len(simulator.log)
    status, quota = check(token, fake_request())
    assert expected in status
    if token:
        sent = simulator.log[before:]
        assert [e.path for e in sent] == ["/v1/chat/completions"]
        assert sent[0].token_fingerprint == fingerprint(token) and sent[0].json["max_tokens"] == 1
    if token == "ms-test-good":
        assert "Calls left today" in quota


def test_check_token_on_the_class_token_counts_against_the_cap(simulator, fake_request):
    ctx = AppContext(base_url=simulator.base_url, server_token="ms-test-class",
                     guard=ServerTokenGuard(session_limit=1))
    *_, check = handlers(ctx)
    status, quota = check(None, fake_request())
    assert "shared class token works" in status and "ms-test-class" not in status
    assert "class token: **0**" in quota
    status, _ = check(None, fake_request())
    assert "1 requests on the shared token" in status
    status, _ = check("ms-test-mine", fake_request())  # a personal token is never capped
    assert "✅" in status


def test_check_token_that_never_reached_the_server_is_not_counted(fake_request):
    ctx = AppContext(base_url="http://127.0.0.1:9/", server_token="ms-test-class",
                     guard=ServerTokenGuard(session_limit=1))
    *_, check = handlers(ctx)
    status, _ = check(None, fake_request())
    assert status.startswith("❌") and "Could not reach" in status
    assert ctx.guard.remaining("s1")["session"] == 1


def test_browser_state_key_never_puts_the_configured_value_in_the_page(monkeypatch):
    monkeypatch.delenv(header.BROWSER_SECRET_ENV, raising=False)
    assert header.browser_state_key() is None  # Gradio's random key per start
    monkeypatch.setenv(header.BROWSER_SECRET_ENV, "ms-oops-an-admin-used-a-real-secret")
    key = header.browser_state_key()
    assert key and "oops" not in key and key == header.browser_state_key()  # stable across restarts


def test_initial_status_says_where_the_token_comes_from():
    assert header.initial_status_key(AppContext(base_url="http://x/")) == "header.no_token"
    assert header.initial_status_key(AppContext(base_url="http://x/", server_token="t")) == "header.server_token"
    assert header.initial_status_key(AppContext(base_url="http://x/", offline=True)) == "header.offline_token"
    help_en = header.STRINGS["en"]["header.help"]
    for step in ("modelscope.cn/my/myaccesstoken", "Alibaba Cloud", "real-name"):
        assert step in help_en


# --------------------------------------------------------------------------- the launched app


def _config(studio) -> dict:
    return requests.get(studio.url + "config", timeout=10).json()


def test_only_chat_vision_and_images_are_public(clean_studio):
    api = Client(clean_studio.url, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/chat", "/vision", "/generate_image"}
    assert not api["unnamed_endpoints"]


def test_the_token_box_feeds_only_private_events(clean_studio):
    config = _config(clean_studio)
    secret_ids = {c["id"] for c in config["components"]
                  if c.get("props", {}).get("type") == "password" or c.get("props", {}).get("storage_key") == header.BROWSER_KEY}
    assert len(secret_ids) == 2
    for dep in config["dependencies"]:
        if set(dep["inputs"]) & secret_ids:
            assert dep["api_visibility"] == "private", dep.get("api_name")


def test_every_label_key_is_translated(clean_studio):
    found = set()

    def walk(value):
        if isinstance(value, dict):
            if value.get("__type__") == "translation_metadata" or value.get("_type") == "translation_metadata":
                found.add(value["key"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value.startswith("__i18n__"):
            found.add(json.loads(value[len("__i18n__"):])["key"])

    config = _config(clean_studio)
    walk(config["components"])
    ours = {k for k in found if k.split(".")[0] in ("chat", "vision", "header", "app", "common", "img")}
    assert {"header.token_label", "chat.tab", "vision.tab", "app.tab_images"} <= ours
    translations = config.get("i18n_translations") or {}
    for lang in ("en", "zh"):
        missing = ours - set(translations.get(lang, {}))
        assert not missing, (lang, sorted(missing))


def test_threads_cover_every_io_bound_event(clean_studio):
    demo, ctx = clean_studio.demo, clean_studio.ctx
    kwargs = app.launch_kwargs(demo, ctx)
    io_groups = {fn.concurrency_id for fn in demo.fns.values() if fn.concurrency_limit == ctx.concurrency}
    assert len(io_groups) >= 4  # chat UI, chat API, vision, images, check token...
    assert kwargs["max_threads"] >= ctx.concurrency * len(io_groups)
    assert demo.max_threads == kwargs["max_threads"]
    public = [fn for fn in demo.fns.values() if fn.api_visibility == "public"]
    assert {fn.api_name for fn in public} == {"chat", "vision", "generate_image"}
    assert all(fn.concurrency_limit == ctx.concurrency for fn in public)


def test_run_history_is_off_unless_the_owner_opts_in(clean_studio, monkeypatch):
    """A shared classroom laptop must not show the next student the last one's runs."""
    monkeypatch.delenv("GRADIO_RUN_HISTORY", raising=False)
    assert app.launch_kwargs(clean_studio.demo, clean_studio.ctx)["run_history"] is False
    assert requests.get(clean_studio.url.rstrip("/") + "/gradio_api/runs", timeout=10).status_code == 404
    assert "runs" not in clean_studio.demo.footer_links
    monkeypatch.setenv("GRADIO_RUN_HISTORY", "true")
    assert app.launch_kwargs(clean_studio.demo, clean_studio.ctx)["run_history"] is True


def test_arguments_default_from_the_spaces_environment(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    args = app.parse_args([])
    assert (args.host, args.port, args.offline, args.mcp, args.share) == ("0.0.0.0", 7861, False, False, False)
    assert app.parse_args(["--port", "9000", "--offline"]).port == 9000


def test_mcp_without_the_extra_says_how_to_install(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("mcp") is not None:
        pytest.skip("the mcp extra is installed here")
    with pytest.raises(SystemExit) as info:
        app.main(["--mcp"])
    assert "gradio[mcp]" in str(info.value)


def test_offline_mode_starts_and_serves(tmp_path):
    from conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELSCOPE_", "GRADIO_"))}
    env["STUDIO_OUTPUTS_DIR"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "app.py", "--offline", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "config", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the offline app did not come up"
            time.sleep(0.3)
        page = requests.get(url, timeout=10).text
        config = requests.get(url + "config", timeout=10).text
        assert "app.offline_banner" in config and "ms-offline-" not in config + page
        c = Client(url, verbose=False, download_files=False)
        final, quota, code = c.predict("你好", catalog.CHAT_MODELS[-1], "", 0.7, 0.8, 16, False, api_name="/chat")
        assert final and final[-1]["content"] and "ms-offline-" not in json.dumps(final) + code
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
