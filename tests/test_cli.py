"""The CLI against Simulators started here.

Every run in RUNS is made once (module fixture) and the tests read their own run's result.
Runs marked `sub=True` are real `python -m modelscope_api …` processes (a few at a time: each
spends about a second importing the openai SDK); the rest of the matrix calls `cli.main()`
in this process with the same environment, which is the same code minus the process start.
Each run has its own token, so faults injected for it (token-scoped) touch no other run, and
the simulators' logs can be read per run. Bad-input runs go to a second simulator whose log
must stay empty.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from PIL import Image

from modelscope_api import catalog, wire
from modelscope_api.simulator import SimConfig, Simulator
from modelscope_api.storage import iter_png_chunks, read_png_parameters

ROOT = Path(__file__).resolve().parents[1]


def png(colour=(200, 40, 40), size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def phone_photo(size=(1080, 2376)) -> bytes:
    """A phone-shaped JPEG, taller than the service's 2048 px a side."""
    buf = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def cli_env(base_url: str | None, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSCOPE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    if base_url is not None:
        env["MODELSCOPE_BASE_URL"] = base_url
    if token is not None:
        env["MODELSCOPE_ACCESS_TOKEN"] = token
    return env


def popen(args: list[str], *, base_url: str | None, token: str | None, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "modelscope_api", *args], cwd=cwd, env=cli_env(base_url, token),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )


@dataclass
class Run:
    args: list[str]
    token: str | None
    quiet: bool = False  # against the simulator that must see no request at all
    setup: list[tuple] = field(default_factory=list)  # (fault, scope, times) injected for token
    base_url: str | None = None  # overrides the simulator's
    files: dict[str, bytes] = field(default_factory=dict)  # written into cwd first
    sub: bool = False  # True: a real `python -m modelscope_api` process; False: cli.main() here
    # filled in by the fixture
    code: int | None = None
    out: str = ""
    err: str = ""
    cwd: Path | None = None


LONG = "猫" * 2000

RUNS: dict[str, Run] = {
    # --- happy paths
    "acceptance": Run(["image", "一只金色的猫", "--lora", "a/b:0.6", "--lora", "c/d:0.4", "--seed", "7"],
                      "ms-test-cli-1", sub=True),
    "image_all_options": Run(["image", "a red fox", "--model", "black-forest-labs/FLUX.1-Krea-dev",
                              "--size", "1024x768", "--steps", "20", "--guidance", "3.5",
                              "--negative-prompt", "blurry", "--lora", "owner/solo", "--out", "pics"],
                             "ms-test-cli-2"),
    "image_edit_local": Run(["image", "make it blue", "--image-url", "in.png",
                             "--image-url", "https://example.com/x.png"], "ms-test-cli-3",
                            files={"in.png": png()}),
    "image_poll_500_recovers": Run(["image", "a cat"], "ms-test-cli-4", setup=[("500", "task", 1)]),
    "image_spurious_failed": Run(["image", "a cat"], "ms-test-cli-5", setup=[("spurious_failed", None, 1)]),
    "chat": Run(["chat", "hello there, simulator"], "ms-test-cli-6"),
    "chat_thinking": Run(["chat", "why is the sky blue", "--model", "Qwen/Qwen3-8B", "--thinking",
                          "--system", "Be brief.", "--max-tokens", "30", "--temperature", "0.5"],
                         "ms-test-cli-7", sub=True),
    "chat_vision_local": Run(["chat", "What colour is this?", "--image-url", "photo.png"], "ms-test-cli-8",
                             files={"photo.png": png()}),
    "chat_anthropic": Run(["chat", "hello over anthropic", "--protocol", "anthropic", "--system", "Be brief.",
                           "--max-tokens", "40", "--temperature", "0.5"], "ms-test-cli-a1", sub=True),
    "chat_anthropic_thinking_model": Run(["chat", "2+2?", "--protocol", "anthropic", "--model", "Qwen/QwQ-32B"],
                                         "ms-test-cli-a2"),
    "chat_vision_big": Run(["chat", "What is in this photo?", "--image-url", "phone.jpg"], "ms-test-cli-24",
                           files={"phone.jpg": phone_photo()}),
    "image_edit_big": Run(["image", "make it blue", "--image-url", "phone.jpg"], "ms-test-cli-25",
                          files={"phone.jpg": phone_photo()}),
    "check": Run(["check"], "ms-test-cli-9"),
    "models": Run(["models"], None, quiet=True),
    "models_image": Run(["models", "--kind", "image"], None, quiet=True),
    # --- the server says no (exit 1)
    "unknown_token_chat": Run(["chat", "hi"], "ms-cli-not-a-test-token"),
    "unknown_token_image": Run(["image", "hi"], "ms-cli-not-a-test-token"),
    "unbound": Run(["image", "hi"], "ms-test-unbound"),
    "unverified": Run(["chat", "hi"], "ms-test-unverified", sub=True),
    "quota": Run(["image", "hi"], "ms-test-quota"),
    "check_unbound": Run(["check"], "ms-test-unbound"),
    "submit_500": Run(["image", "hi"], "ms-test-cli-10", setup=[("500", "images", None)]),
    "submit_502": Run(["image", "hi"], "ms-test-cli-11", setup=[("502", "images", None)]),
    "submit_429": Run(["image", "hi"], "ms-test-cli-12", setup=[("429", "images", None)]),
    "chat_500": Run(["chat", "hi"], "ms-test-cli-13", setup=[("500", "chat", None)]),
    "chat_502": Run(["chat", "hi"], "ms-test-cli-14", setup=[("502", "chat", None)]),
    "chat_429": Run(["chat", "hi"], "ms-test-cli-15", setup=[("429", "chat", None)]),
    "task_failed": Run(["image", "hi"], "ms-test-cli-16", setup=[("task_failed", None, 1)]),
    "never_finishes": Run(["image", "hi", "--timeout", "1.5"], "ms-test-cli-17",
                          setup=[("task_never_finishes", None, 1)], sub=True),
    "image_404": Run(["image", "hi"], "ms-test-cli-18", setup=[("image_404", None, 1)]),
    "task_not_found": Run(["image", "hi"], "ms-test-cli-19", setup=[("task_not_found", None, 1)]),
    "stream_cut": Run(["chat", "tell me a long story"], "ms-test-cli-20", setup=[("stream_cut", None, 1)], sub=True),
    "malformed_chunk": Run(["chat", "hi"], "ms-test-cli-21", setup=[("malformed_chunk", None, 1)]),
    "unknown_model": Run(["image", "hi", "--model", "nobody/no-such-model"], "ms-test-cli-22"),
    "unreachable": Run(["chat", "hi"], "ms-test-cli-23", base_url="http://127.0.0.1:9/"),
    "anthropic_unknown_token": Run(["chat", "hi", "--protocol", "anthropic"], "ms-cli-not-a-test-token-a"),
    "anthropic_unbound": Run(["chat", "hi", "--protocol", "anthropic"], "ms-test-unbound"),
    "anthropic_500": Run(["chat", "hi", "--protocol", "anthropic"], "ms-test-cli-a3", setup=[("500", "chat", None)]),
    "anthropic_stream_cut": Run(["chat", "tell me a long story", "--protocol", "anthropic"], "ms-test-cli-a4",
                                setup=[("stream_cut", None, 1)]),
    # --- bad input: exit 2 and nothing sent
    "size_too_big": Run(["image", "x", "--size", "5000x5000"], "ms-test-cli-v1", quiet=True, sub=True),
    "size_ratio": Run(["image", "x", "--size", "16:9"], "ms-test-cli-v2", quiet=True),
    "seed_negative": Run(["image", "x", "--seed", "-1"], "ms-test-cli-v3", quiet=True, sub=True),
    "seed_not_a_number": Run(["image", "x", "--seed", "abc"], "ms-test-cli-v4", quiet=True),
    "steps_zero": Run(["image", "x", "--steps", "0"], "ms-test-cli-v5", quiet=True),
    "guidance_high": Run(["image", "x", "--guidance", "50"], "ms-test-cli-v6", quiet=True),
    "lora_sum": Run(["image", "x", "--lora", "a/b:0.6", "--lora", "c/d:0.6"], "ms-test-cli-v7", quiet=True),
    "lora_bad_id": Run(["image", "x", "--lora", "no-slash"], "ms-test-cli-v8", quiet=True),
    "lora_bad_weight": Run(["image", "x", "--lora", "a/b:heavy", "--lora", "c/d:0.5"], "ms-test-cli-v9",
                           quiet=True),
    "image_missing_file": Run(["image", "x", "--image-url", "nope.png"], "ms-test-cli-v10", quiet=True),
    "image_not_an_image": Run(["image", "x", "--image-url", "notes.png"], "ms-test-cli-v11", quiet=True,
                              files={"notes.png": b"just text"}),
    "prompt_too_long": Run(["image", LONG], "ms-test-cli-v12", quiet=True),
    "empty_prompt": Run(["image", "   "], "ms-test-cli-v13", quiet=True),
    "timeout_negative": Run(["image", "x", "--timeout", "-1"], "ms-test-cli-v14", quiet=True),
    "chat_temperature": Run(["chat", "hi", "--temperature", "5"], "ms-test-cli-v15", quiet=True),
    "chat_max_tokens": Run(["chat", "hi", "--max-tokens", "0"], "ms-test-cli-v16", quiet=True),
    "chat_bad_image_url": Run(["chat", "hi", "--image-url", "ftp://x/y.png"], "ms-test-cli-v17", quiet=True),
    "no_token_image": Run(["image", "x"], None, quiet=True, sub=True),
    "no_token_chat": Run(["chat", "x"], None, quiet=True),
    "no_token_check": Run(["check"], None, quiet=True),
    "bad_base_url": Run(["chat", "x"], "ms-test-cli-v18", quiet=True, base_url="ftp://example.com/"),
    "no_command": Run([], "ms-test-cli-v19", quiet=True),
    "protocol_unknown": Run(["chat", "hi", "--protocol", "claude"], "ms-test-cli-v20", quiet=True),
    "anthropic_image_url": Run(["chat", "hi", "--protocol", "anthropic", "--image-url", "https://x/y.png"],
                               "ms-test-cli-v21", quiet=True),
    "anthropic_thinking": Run(["chat", "hi", "--protocol", "anthropic", "--thinking"], "ms-test-cli-v22",
                              quiet=True),
    "anthropic_temperature": Run(["chat", "hi", "--protocol", "anthropic", "--temperature", "5"],
                                 "ms-test-cli-v23", quiet=True),
}

VALIDATION = [name for name, run in RUNS.items() if run.quiet and not name.startswith("models")]
SERVER_ERRORS = {
    # name: words the message (or hint) must contain, lower-cased
    "unknown_token_chat": ["authentication failed", "token"],
    "unknown_token_image": ["authentication failed", "token"],
    "unbound": ["bind", "alibaba cloud"],
    "unverified": ["real-name"],
    "quota": ["quota"],
    "check_unbound": ["bind"],
    "submit_500": ["busy"],
    "submit_502": ["busy"],
    "submit_429": ["quota"],
    "chat_500": ["busy"],
    "chat_502": ["bad gateway"],
    "chat_429": ["quota"],
    "task_failed": ["inappropriate"],
    "never_finishes": ["did not finish", "1.5"],
    "image_404": ["http 404", "expired"],
    "task_not_found": ["task not found"],
    "stream_cut": ["cut off"],
    "malformed_chunk": ["could not be read"],
    "unknown_model": ["no provider"],
    "unreachable": ["could not reach", "network"],
    "anthropic_unknown_token": ["authentication failed", "token"],
    "anthropic_unbound": ["bind", "alibaba cloud"],
    "anthropic_500": ["busy"],
    "anthropic_stream_cut": ["cut off"],
}


@pytest.fixture(scope="module")
def sims():
    busy = Simulator(SimConfig(task_seconds=0.3, ttft=0.02, tokens_per_second=2000))
    quiet = Simulator(SimConfig(task_seconds=0.3, ttft=0.02, tokens_per_second=2000))
    busy.start()
    quiet.start()
    yield busy, quiet
    busy.stop()
    quiet.stop()


@pytest.fixture(scope="module")
def sim(sims):
    return sims[0]


@pytest.fixture(scope="module")
def quiet_sim(sims):
    return sims[1]


@contextlib.contextmanager
def environment(base_url: str | None, token: str | None, cwd: Path):
    """For an in-process run: the same environment a subprocess would get."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    for key in [k for k in os.environ if k.startswith("MODELSCOPE_")]:
        del os.environ[key]
    if base_url is not None:
        os.environ["MODELSCOPE_BASE_URL"] = base_url
    if token is not None:
        os.environ["MODELSCOPE_ACCESS_TOKEN"] = token
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


MAX_PROCESSES = max(2, os.cpu_count() or 2)  # each run spends ~1 CPU-second importing


def _run_processes(names: list[str], urls: dict[str, str]) -> None:
    pending, active = list(names), {}
    while pending or active:
        while pending and len(active) < MAX_PROCESSES:
            name = pending.pop(0)
            run = RUNS[name]
            active[name] = (popen(run.args, base_url=urls[name], token=run.token, cwd=run.cwd),
                            time.monotonic())
        for name, (proc, started) in list(active.items()):
            if proc.poll() is None and time.monotonic() - started < 120:
                continue
            run = RUNS[name]
            try:
                run.out, run.err = proc.communicate(timeout=1)
            except subprocess.TimeoutExpired:
                proc.kill()
                run.out, run.err = proc.communicate()
            run.code = proc.returncode
            del active[name]
        time.sleep(0.02)


@pytest.fixture(scope="module")
def runs(sims, tmp_path_factory):
    from modelscope_api.cli import main

    busy, quiet = sims
    urls = {}
    for name, run in RUNS.items():
        target = quiet if run.quiet else busy
        for fault, scope, times in run.setup:
            target.inject(fault, token=run.token, scope=scope, times=times)
        run.cwd = tmp_path_factory.mktemp(name)
        for fname, data in run.files.items():
            (run.cwd / fname).write_bytes(data)
        urls[name] = run.base_url or target.base_url
    worker = threading.Thread(target=_run_processes, args=([n for n, r in RUNS.items() if r.sub], urls))
    worker.start()
    try:
        for name, run in RUNS.items():
            if run.sub:
                continue
            out, err = io.StringIO(), io.StringIO()
            with environment(urls[name], run.token, run.cwd):
                run.code = main(run.args, stdout=out, stderr=err)
            run.out, run.err = out.getvalue(), err.getvalue()
    finally:
        worker.join()
    return RUNS


def saved_paths(run: Run) -> list[Path]:
    return [run.cwd / line for line in run.out.splitlines() if line.strip()]


def strip_parameters_chunk(data: bytes) -> bytes:
    for offset, ctype, payload in iter_png_chunks(data):
        if ctype in (b"tEXt", b"iTXt") and payload.startswith(b"parameters\0"):
            return data[:offset] + data[offset + 12 + len(payload):]
    raise AssertionError("no parameters chunk")


# --------------------------------------------------------------------------- acceptance


def test_acceptance_lora_seed_image(runs, sim):
    run = runs["acceptance"]
    assert run.code == 0, run.err
    [path] = saved_paths(run)
    assert path.suffix == ".png" and path.is_file()
    assert path.parent == run.cwd / "outputs"
    assert path.name.endswith("_一只金色的猫_7.png")
    # the pixels are exactly what the simulator served; only the text chunk was added
    record = json.loads(path.with_suffix(".json").read_text("utf-8"))
    [url] = record["image_urls"]
    served = requests.get(url, timeout=10).content
    saved = path.read_bytes()
    assert strip_parameters_chunk(saved) == served
    with Image.open(io.BytesIO(served)) as a, Image.open(path) as b:
        assert a.tobytes() == b.tobytes() and a.size == b.size
    # the metadata holds the request
    meta = json.loads(read_png_parameters(path))
    assert meta["request"]["prompt"] == "一只金色的猫"
    assert meta["request"]["loras"] == {"a/b": 0.6, "c/d": 0.4}
    assert meta["request"]["seed"] == 7 and meta["seed"] == 7
    assert meta["task_id"] == record["task_id"]
    # what went over the wire
    [submit] = [e for e in sim.requests(wire.IMAGES_PATH, token=run.token) if e.method == "POST"]
    assert submit.json["loras"] == {"a/b": 0.6, "c/d": 0.4}
    assert submit.json["seed"] == 7 and submit.json["prompt"] == "一只金色的猫"
    # progress on stderr: task id, status, elapsed
    assert f"task_id: {record['task_id']}" in run.err
    assert "SUCCEED" in run.err and " s" in run.err
    sidecar = path.with_suffix(".json").read_text("utf-8")
    assert run.token not in run.out + run.err + saved.decode("latin-1") + sidecar


def test_image_options_reach_the_wire(runs, sim):
    run = runs["image_all_options"]
    assert run.code == 0, run.err
    [path] = saved_paths(run)
    assert path.parent == run.cwd / "pics"
    [submit] = [e for e in sim.requests(wire.IMAGES_PATH, token=run.token) if e.method == "POST"]
    assert submit.json == {
        "model": "black-forest-labs/FLUX.1-Krea-dev", "prompt": "a red fox", "negative_prompt": "blurry",
        "size": "1024x768", "steps": 20, "guidance": 3.5, "loras": "owner/solo",
    }
    assert path.name.endswith("_a-red-fox_" + str(json.loads(read_png_parameters(path))["seed"]) + ".png")


def test_local_image_becomes_data_url(runs, sim):
    run = runs["image_edit_local"]
    assert run.code == 0, run.err
    [submit] = [e for e in sim.requests(wire.IMAGES_PATH, token=run.token) if e.method == "POST"]
    assert submit.json["model"] == catalog.EDIT_MODELS[0]
    first, second = submit.json["image_url"]
    assert first.startswith("data:image/png;base64,") and second == "https://example.com/x.png"


@pytest.mark.parametrize(("name", "path"), [("chat_vision_big", wire.CHAT_COMPLETIONS_PATH),
                                          ("image_edit_big", wire.IMAGES_PATH)])
def test_a_big_local_picture_is_shrunk_to_fit_and_said_on_stderr(runs, sim, name, path):
    """A 1080x2376 phone photo would be refused (400 input size exceed limit 2048x2048); the
    CLI sends it as 931x2048 and says so. The simulator's log shows what was sent."""
    run = runs[name]
    assert run.code == 0, run.err
    assert "shrunk phone.jpg from 1080×2376 to 931×2048" in run.err and "2048 px a side" in run.err
    log = requests.get(sim.base_url + "_sim/log", params={"token": run.token, "path_contains": path},
                       timeout=10).json()["requests"]
    [sent] = [e for e in log if e["method"] == "POST"]
    body = sent["json"]
    url = body["messages"][0]["content"][0]["image_url"]["url"] if "messages" in body else body["image_url"]
    url = url[0] if isinstance(url, list) else url
    assert url.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as picture:
        assert picture.size == (931, 2048) and max(picture.size) <= wire.PICTURE_MAX_SIDE


@pytest.mark.parametrize("name", ["image_poll_500_recovers", "image_spurious_failed"])
def test_transient_task_faults_are_survived(runs, name):
    run = runs[name]
    assert run.code == 0, run.err
    assert saved_paths(run)[0].is_file()


# --------------------------------------------------------------------------- chat and friends


def test_chat_streams_answer_to_stdout(runs, sim):
    run = runs["chat"]
    assert run.code == 0, run.err
    assert "hello there, simulator" in run.out
    assert "[thinking]" not in run.out + run.err
    [body] = [e.json for e in sim.requests(wire.CHAT_COMPLETIONS_PATH, token=run.token)]
    assert body["stream"] is True and body["model"] == catalog.DEFAULT_CHAT_MODEL


def test_chat_thinking_goes_to_stderr(runs, sim):
    run = runs["chat_thinking"]
    assert run.code == 0, run.err
    assert "[thinking]" in run.err and "[thinking]" not in run.out
    assert run.out.strip()
    [body] = [e.json for e in sim.requests(wire.CHAT_COMPLETIONS_PATH, token=run.token)]
    assert body["enable_thinking"] is True and body["max_tokens"] == 30 and body["temperature"] == 0.5
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("name", ["chat_anthropic", "chat_anthropic_thinking_model"])
def test_chat_over_the_anthropic_protocol(runs, sim, name):
    run = runs[name]
    assert run.code == 0, run.err
    question = run.args[1]
    assert question in run.out  # the simulator's answer repeats the question
    assert "[thinking]" not in run.out + run.err
    assert sim.requests(wire.CHAT_COMPLETIONS_PATH, token=run.token) == []
    [entry] = sim.requests(wire.ANTHROPIC_MESSAGES_PATH, token=run.token)
    assert entry.method == "POST" and entry.json["stream"] is True
    assert "enable_thinking" not in entry.json
    if name == "chat_anthropic":
        assert entry.json["model"] == catalog.DEFAULT_CHAT_MODEL
        assert entry.json["system"] == "Be brief." and entry.json["max_tokens"] == 40
        assert entry.json["temperature"] == 0.5
        assert entry.json["messages"] == [{"role": "user", "content": question}]
    assert run.token not in run.out + run.err


def test_anthropic_stream_cut_keeps_the_partial_answer(runs):
    run = runs["anthropic_stream_cut"]
    assert run.code == 1
    assert "tell me a long story" in run.out


def test_chat_vision_with_local_file(runs, sim):
    run = runs["chat_vision_local"]
    assert run.code == 0, run.err
    assert run.out.strip()
    [body] = [e.json for e in sim.requests(wire.CHAT_COMPLETIONS_PATH, token=run.token)]
    assert body["model"] == catalog.DEFAULT_VISION_MODEL
    part = body["messages"][0]["content"][0]
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


def test_check_prints_quota_not_token(runs):
    run = runs["check"]
    assert run.code == 0, run.err
    assert "token OK" in run.out and "of 2000" in run.out
    assert run.token not in run.out + run.err


def test_models(runs):
    assert runs["models"].code == 0
    for name in (*catalog.CHAT_MODELS, *catalog.IMAGE_MODELS):
        assert name in runs["models"].out
    assert runs["models_image"].out.split() == list(catalog.IMAGE_MODELS)


def test_chat_streams_while_the_answer_is_still_coming(tmp_path):
    """The first words show up before the process is done."""
    with Simulator(SimConfig(ttft=0.02, tokens_per_second=10)) as slow:
        proc = popen(["chat", "count slowly", "--max-tokens", "30"], base_url=slow.base_url,
                     token="ms-test-cli-stream", cwd=tmp_path)
        try:
            first = proc.stdout.read(5)
            still_running = proc.poll() is None
            rest, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert first and still_running
    assert len(first + rest) > 20


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", list(SERVER_ERRORS))
def test_server_errors_exit_1_with_a_clear_message(runs, name):
    run = runs[name]
    assert run.code == 1, (run.code, run.err)
    assert "error:" in run.err and "hint:" in run.err
    assert "Traceback" not in run.err
    text = run.err.lower()
    for word in SERVER_ERRORS[name]:
        assert word in text, (word, run.err)
    assert "<html" not in text and "<?xml" not in text
    if run.token:
        assert run.token not in run.out + run.err
    outputs = run.cwd / "outputs"
    assert not outputs.exists() or not list(outputs.iterdir())


def test_stream_cut_keeps_the_partial_answer(runs):
    run = runs["stream_cut"]
    assert run.code == 1
    assert "tell me a long story" in run.out  # the part that arrived was printed


def test_never_finishes_respects_timeout(runs):
    run = runs["never_finishes"]
    assert "task_id:" in run.err and "RUNNING" in run.err


@pytest.mark.parametrize("name", VALIDATION)
def test_bad_input_exits_2_and_sends_nothing(runs, quiet_sim, name):
    run = runs[name]
    assert run.code == 2, (run.code, run.err)
    assert "Traceback" not in run.err
    assert run.err.strip()
    assert run.out == ""
    if run.token:
        assert run.token not in run.err
        assert quiet_sim.requests(token=run.token) == []


def test_validation_runs_made_zero_requests(runs, quiet_sim):
    assert quiet_sim.log == []


@pytest.mark.parametrize("name,words", [
    ("size_too_big", ["width", "5000", "1664"]),
    ("size_ratio", ["size", "widthxheight"]),
    ("seed_negative", ["seed", "-1", "2147483647"]),
    ("seed_not_a_number", ["--seed", "invalid int"]),
    ("lora_sum", ["sum to 1.0"]),
    ("lora_bad_id", ["owner/name"]),
    ("lora_bad_weight", ["--lora", "a/b:heavy"]),
    ("image_missing_file", ["nope.png", "existing image file"]),
    ("image_not_an_image", ["png, jpeg"]),
    ("prompt_too_long", ["prompt", "fewer than 2000"]),
    ("no_token_image", ["no modelscope token", "modelscope_access_token"]),
    ("bad_base_url", ["http://", "modelscope_base_url"]),
    ("protocol_unknown", ["--protocol", "claude", "openai", "anthropic"]),
    ("anthropic_image_url", ["--image-url", "--protocol openai"]),
    ("anthropic_thinking", ["--thinking", "--protocol openai", "no thinking switch"]),
    ("anthropic_temperature", ["temperature", "0 to 2"]),
])
def test_bad_input_messages_name_the_problem(runs, name, words):
    text = runs[name].err.lower()
    for word in words:
        assert word.lower() in text, (word, runs[name].err)


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_exits_130(sim, tmp_path):
    token = "ms-test-cli-sigint"
    sim.inject("task_never_finishes", token=token)
    proc = popen(["image", "a slow cat"], base_url=sim.base_url, token=token, cwd=tmp_path)
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "task_id:" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "task_id:" in line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert "may still finish" in err


# --------------------------------------------------------------------------- in-process helpers


def test_parse_lora():
    from modelscope_api.cli import parse_lora

    assert parse_lora("a/b:0.6") == ("a/b", 0.6)
    assert parse_lora("a/b") == ("a/b", None)
    assert parse_lora(" a/b:1 ") == ("a/b", 1.0)


def test_main_help_returns_0(capsys):
    from modelscope_api.cli import main

    assert main(["--help"]) == 0
    assert "chat" in capsys.readouterr().out
