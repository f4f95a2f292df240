"""Proof: a known token used through every tab appears nowhere it could leak.

`python app.py` runs as a subprocess against the simulator in two variants — the token sent in
the `X-ModelScope-Token` header, and the same token as the server's MODELSCOPE_ACCESS_TOKEN —
and is driven through gradio_client (chat, vision by URL and by upload, images; successes,
server errors, cut streams, bad input). Then we search, for the token and its base64 forms:
the app's stdout/stderr, the simulator's log, `/`, `/config`, `/gradio_api/info`, the run
history routes, every file under the outputs dir and Gradio's cache (images, sidecars, PNG
text chunks), everything the endpoints returned (including the show-code snippets). In-process:
the token check (a private event) at the handler level, the session-token path of every tab,
what Gradio hands its run-history recorder, and which events are public.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import gradio as gr
import pytest
import requests
from gradio_client import Client, handle_file
from proof_fixtures import free_port, outcome

from modelscope_api import storage
from modelscope_api.config import TOKEN_ENV_VARS, fingerprint
from ui import chat_tab, header, images_tab, vision_tab
from ui import images_logic as L
from ui.context import AppContext
from ui.images_handlers import ImageHandlers

REPO = Path(__file__).resolve().parents[1]
SECRET = "ms-test-SECRET-" + secrets.token_hex(12)  # unique to this run
INSTRUCT = "Qwen/Qwen2.5-72B-Instruct"
VL = "Qwen/Qwen2.5-VL-7B-Instruct"
IMAGE_MODEL = "Qwen/Qwen-Image"
PIC = REPO / "assets" / "red_circle.png"


# --------------------------------------------------------------------------- the needles


def needles(token: str) -> list[bytes]:
    """The token, its unique tail, and its base64 (std and url-safe) at all three alignments.

    (Its URL-encoded form is the token itself: `ms-test-SECRET-<hex>` has only unreserved chars.)
    """
    raw = token.encode()
    out = {raw, raw.lower(), token.rsplit("-", 1)[-1].encode()}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + raw)
        core = enc[4 if k else 0: -4]  # the part that does not depend on the neighbours
        out |= {core, core.replace(b"+", b"-").replace(b"/", b"_")}
    return sorted(out)


NEEDLES = needles(SECRET)


def test_the_search_would_find_a_leak():
    """Negative control: each form of the token is found, wherever it sits in a larger text."""
    for prefix in (b"", b"a", b"ab"):
        blob = base64.b64encode(prefix + b"Authorization: Bearer " + SECRET.encode() + b"\r\n")
        assert leaks("b64", b"xx" + blob + b"yy")
        assert leaks("b64url", base64.urlsafe_b64encode(prefix + SECRET.encode() + b"?"))
    assert leaks("plain", f"token={SECRET}&x=1")
    assert leaks("upper", SECRET.upper())
    assert leaks("json", {"headers": {"authorization": f"Bearer {SECRET}"}})
    assert not leaks("fingerprint", fingerprint(SECRET)) and not leaks("other", "ms-test-SECRET-other")


def leaks(where: str, data) -> list[str]:
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    elif not isinstance(data, (bytes, bytearray)):
        data = json.dumps(data, default=str, ensure_ascii=False).encode()
    low = bytes(data).lower()
    return [f"{where}: {n[:12]!r}…" for n in NEEDLES if n.lower() in low]


def scan_tree(root: Path) -> tuple[list[str], list[Path]]:
    found, files = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        files.append(path)
        data = path.read_bytes()
        found += leaks(str(path), data)
        if data.startswith(b"\x89PNG"):
            found += leaks(f"{path} (PNG text)", storage.png_text(data))
    return found, files


# --------------------------------------------------------------------------- the subprocess app


class RunningApp:
    def __init__(self, name: str, root: Path, sim, server_token: str | None):
        self.name, self.root = name, root
        self.stopped: tuple[bytes, bytes] | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.outputs, self.cache, cwd = root / "outputs", root / "gradio-cache", root / "cwd"
        for d in (self.outputs, self.cache, cwd):
            d.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if k not in TOKEN_ENV_VARS and not k.startswith("STUDIO_")}
        env.update(MODELSCOPE_BASE_URL=sim.base_url, STUDIO_OUTPUTS_DIR=str(self.outputs),
                   GRADIO_TEMP_DIR=str(self.cache), PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False",
                   STUDIO_IMAGE_TIMEOUT="20")
        if server_token:
            env["MODELSCOPE_ACCESS_TOKEN"] = server_token
        self.out_path, self.err_path = root / "stdout.txt", root / "stderr.txt"
        self._out, self._err = open(self.out_path, "wb"), open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(self.port)],
                                     cwd=cwd, env=env, stdout=self._out, stderr=self._err)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} app exited: {self.err_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "config", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} app did not start in {timeout} s")

    def stop(self) -> tuple[bytes, bytes]:
        if self.stopped is not None:
            return self.stopped
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        self._err.close()
        self.stopped = self.out_path.read_bytes(), self.err_path.read_bytes()
        return self.stopped


PAGES = ["", "config", "gradio_api/info", "gradio_api/info?all_endpoints=true", "gradio_api/openapi.json",
         "gradio_api/runs", "gradio_api/run-history/records?bucket=someone/runs",
         "gradio_api/run-history/buckets", "?view=api"]


def drive(url: str, sim, token_in_header: bool, full: bool = True) -> list:
    """Use every tab, with successes and failures; returns everything the endpoints gave back,
    then every page a visitor could fetch."""
    headers = {"accept-language": "en-US,en;q=0.9"}
    if token_in_header:
        headers["X-ModelScope-Token"] = SECRET
    c = Client(url, headers=headers, verbose=False, download_files=False)
    got: list = []

    def call(*args, api_name, fault=None, scope=None, expect_error=False, **kw):
        if fault:
            sim.inject(fault, token=SECRET, times=None if fault in ("500", "429") else 1, scope=scope)
        try:
            result, err = outcome(lambda: c.predict(*args, api_name=api_name, **kw))
        finally:
            sim.clear_faults()
        assert (err is not None) == expect_error, (api_name, fault, err, result)
        got.append((result, err))

    chat = ("Tell me a secret about owls", INSTRUCT, "Be brief.", 0.7, 0.8, 0, False)
    call(*chat, api_name="/chat")
    if not full:
        call("", handle_file(str(PIC)), "What shape?", VL, api_name="/vision")
        call(api_name="/generate_image", model=IMAGE_MODEL, prompt="a kite", width=256, height=256)
        return got
    call(*chat, api_name="/chat", fault="500", scope="chat", expect_error=True)
    call(*chat, api_name="/chat", fault="stream_cut", scope="chat")
    call("", INSTRUCT, "", 0.7, 0.8, 0, False, api_name="/chat", expect_error=True)
    call("hi", "nobody/no-such-model", "", 0.7, 0.8, 0, False, api_name="/chat", expect_error=True)
    call("https://example.com/cat.png", None, "What is this?", VL, api_name="/vision")
    call("", handle_file(str(PIC)), "What shape?", VL, api_name="/vision")
    call("", None, "And the colour?", VL, api_name="/vision", fault="429", scope="chat", expect_error=True)
    img = dict(model=IMAGE_MODEL, prompt="a lighthouse at dusk", width=256, height=256, seed=11)
    call(api_name="/generate_image", **img)
    call(api_name="/generate_image", fault="task_failed", expect_error=True, **img)
    call(api_name="/generate_image", expect_error=True, **{**img, "steps": 0})
    for page in PAGES:
        r = requests.get(url + page, timeout=30)
        got.append((page, r.status_code, r.text))
    return got


def check_session(got: list, sim) -> None:
    """The session really used the token and got code back (else the search proves nothing)."""
    used = {e.path for e in sim.log if e.token_fingerprint == fingerprint(SECRET)}
    assert any("chat" in p for p in used) and any("images" in p for p in used) and any("tasks" in p for p in used)
    assert "chat.completions" in json.dumps(got, default=str), "no chat code came back"


@pytest.fixture(scope="module")
def server_app(simulator, tmp_path_factory):
    """`python app.py` with the token as its MODELSCOPE_ACCESS_TOKEN, started when the module
    starts so that its (slow) start-up overlaps the in-process tests; the last test uses it."""
    app = RunningApp("server", tmp_path_factory.mktemp("secrecy"), simulator, SECRET)
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module", autouse=True)
def _boot_early(server_app):
    yield


# --------------------------------------------------------------------------- in-process


def fake(token: str | None = None, session: str = "secrecy"):
    headers = {"accept-language": "en-US,en;q=0.9"}
    if token:
        headers["x-modelscope-token"] = token
    return types.SimpleNamespace(headers=headers, session_hash=session)


def test_only_token_free_events_are_public(simulator):
    """Every event that takes the token box or the remembered-token store is private (never
    recorded as a run, never callable as an API); the public ones are the three documented
    endpoints; the server's token is in neither the page config nor the API info."""
    import app

    ctx = AppContext(base_url=simulator.base_url, server_token=SECRET)
    demo = app.build_app(ctx)
    secret_inputs = {bid for bid, b in demo.blocks.items()
                     if (isinstance(b, gr.BrowserState) and b.storage_key == header.BROWSER_KEY)
                     or (isinstance(b, gr.Textbox) and b.type == "password")}
    assert len(secret_inputs) == 2, "the token box and the browser store should exist"
    public, touching = {}, []
    for fn in demo.fns.values():
        if {b._id for b in fn.inputs} & secret_inputs:
            touching.append(fn.name)
            assert fn.api_visibility == "private", (fn.name, fn.api_visibility)
        if fn.api_visibility == "public" and fn.fn is not None:
            public[fn.api_name] = fn
    assert len(touching) >= 2  # set_token, load_remembered
    assert set(public) == {"chat", "vision", "generate_image"}, sorted(public)
    for name, fn in public.items():
        for b in fn.inputs:
            assert not (isinstance(b, gr.Textbox) and b.type == "password"), name
            assert not isinstance(b, gr.BrowserState), name
    assert not leaks("config", demo.get_config_file())
    assert not leaks("api info", demo.get_api_info())


def test_token_check_and_session_token_path_leak_nothing(simulator, tmp_path, capsys, caplog):
    """The header's private events (set token, check token), and every tab's handler fed the
    token through the session State: their outputs, saved files and logs carry no token."""
    caplog.set_level("DEBUG")
    simulator.clear_log()
    ctx = AppContext(base_url=simulator.base_url, outputs_dir=str(tmp_path / "outputs"), server_token=SECRET)
    set_token, _remember, _load, check_token = header.make_handlers(ctx)
    outs: list = []
    state, _stored, status, _quota = set_token(SECRET, True, fake())
    assert state == SECRET  # the server-side State holds it …
    outs.append(status)  # … the status shown to the page does not
    outs.append(check_token(None, fake()))  # server token
    outs.append(check_token(SECRET, fake()))  # session token
    outs.append(check_token(None, fake(SECRET)))  # header
    simulator.inject("500", token=SECRET, times=None, scope="chat")
    try:
        outs.append(check_token(SECRET, fake()))
    finally:
        simulator.clear_faults()
    assert any("works" in str(o) for o in outs) and any("busy" in str(o) for o in outs)

    respond = chat_tab.make_respond(ctx)
    outs += list(respond("hello", [], INSTRUCT, "", 0.7, 0.8, 0, False, SECRET, fake()))
    ask = vision_tab.make_ask(ctx)
    outs += list(ask("", str(PIC), "What shape?", VL, None, SECRET, fake()))
    h = ImageHandlers(ctx, images_tab.STRINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs += list(h.generate("a kite", "", IMAGE_MODEL, 256, 256, True, 30, 3.5, 5, False,
                                L.loras_table(None), "", None, SECRET, [], request=fake()))
    assert any("images/generations" in str(o) for o in outs), "no image code came back"
    assert sum(1 for e in simulator.log if e.token_fingerprint == fingerprint(SECRET)) >= 5

    captured = capsys.readouterr()
    found = leaks("handler outputs", [o for o in outs if not isinstance(o, type(gr.skip()))])
    found += leaks("stdout", captured.out) + leaks("stderr", captured.err) + leaks("logging", caplog.text)
    found += scan_tree(tmp_path / "outputs")[0]
    assert not found, found


def test_header_token_session_in_process(clean_studio, monkeypatch, tmp_path, capfd, caplog):
    """The launched studio, token in the header: returned values, pages, saved files, the
    process's own output (fd level), the simulator's log and what Gradio hands its run-history
    recorder (browser or bucket) for each public call."""
    from gradio import history

    caplog.set_level("DEBUG")
    records: list[dict] = []
    monkeypatch.setattr(history, "schedule_record_run",
                        lambda app, **kw: records.append({k: kw.get(k) for k in ("inputs", "outputs", "api_name")}))
    sim = clean_studio.sim
    old_outputs = clean_studio.ctx.outputs_dir
    clean_studio.ctx.outputs_dir = str(tmp_path / "outputs")
    try:
        got = drive(clean_studio.url, sim, token_in_header=True)
        clean_studio.ctx.server_token = SECRET  # and once on the server's token
        got.append(Client(clean_studio.url, verbose=False).predict("hi", INSTRUCT, "", 0.7, 0.8, 0, False,
                                                                   api_name="/chat"))
    finally:
        clean_studio.ctx.outputs_dir = old_outputs
        clean_studio.ctx.server_token = None
    check_session(got, sim)
    assert {r["api_name"] for r in records} >= {"chat", "vision", "generate_image"}, records
    out, err = capfd.readouterr()
    found, files = scan_tree(tmp_path / "outputs")
    assert any(p.suffix == ".png" for p in files) and any(p.suffix == ".json" for p in files)
    found += leaks("run-history records", records)
    found += leaks("stdout", out) + leaks("stderr", err) + leaks("logging", caplog.text)
    found += leaks("simulator log", [e.to_dict() for e in sim.log])
    for i, item in enumerate(got):
        found += leaks(f"returned value {i}", item)
    assert not found, found


# --------------------------------------------------------------------------- the subprocess


def test_server_secret_app_subprocess(server_app, simulator):
    """`python app.py` with MODELSCOPE_ACCESS_TOKEN set: a session on the shared token, then one
    with the same token in the header; then its stdout/stderr, its outputs and cache dirs, its
    pages and the simulator's log hold no trace of the token."""
    server_app.wait_ready()
    simulator.clear_faults()
    simulator.clear_log()
    got = drive(server_app.url, simulator, token_in_header=False)
    got += drive(server_app.url, simulator, token_in_header=True, full=False)
    check_session(got, simulator)
    sim_log = [e.to_dict() for e in simulator.log]
    stdout, stderr = server_app.stop()
    assert b"Running on" in stdout + stderr

    found, out_files = scan_tree(server_app.outputs)
    assert any(p.suffix == ".png" for p in out_files) and any(p.suffix == ".json" for p in out_files)
    found += scan_tree(server_app.cache)[0]
    found += scan_tree(server_app.root / "cwd")[0]
    found += leaks("stdout", stdout) + leaks("stderr", stderr)
    found += leaks("simulator log", sim_log)
    for i, item in enumerate(got):
        found += leaks(f"returned value {i}", item)
    assert not found, found
