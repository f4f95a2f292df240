"""snippets: the generated scripts compile, say exactly what the clients send, and really run."""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from modelscope_api import wire
from modelscope_api.anthropic_chat import messages_kwargs
from modelscope_api.chat import ChatRequest, image_to_data_url, vision_message
from modelscope_api.config import SNIPPET_TOKEN_ENV_VAR
from modelscope_api.errors import ValidationError
from modelscope_api.images import ImageRequest, build_payload
from modelscope_api.snippets import anthropic_snippet, chat_snippet, image_snippet, py_literal

ROOT = Path(__file__).resolve().parents[1]
SECRET = "ms-test-snippet-secret-42"


def png(colour=(30, 160, 90), size=(24, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def assigned(source: str, name: str) -> ast.expr:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return node.value
    raise AssertionError(f"{name} is not assigned")


def call_kwargs(source: str, name: str) -> dict[str, ast.expr]:
    """The keyword arguments of the first call to a function or method named `name`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and name in (getattr(node.func, "attr", None),
                                                   getattr(node.func, "id", None)):
            return {kw.arg: kw.value for kw in node.keywords}
    raise AssertionError(f"no {name}() call")


def create_call_kwargs(source: str) -> dict[str, ast.expr]:
    return call_kwargs(source, "create")


# --------------------------------------------------------------------------- literals


@pytest.mark.parametrize("value", [
    {"model": "Qwen/Qwen-Image", "prompt": "一只金色的猫", "seed": 7, "loras": {"a/b": 0.6, "c/d": 0.4}},
    {"prompt": 'quote " back \\ newline \n tab \t nul \0 triple """ end', "guidance": 3.5},
    {"image_url": ["https://x/1.png", "https://x/2.png"], "empty": {}, "none": []},
    [1, 2.5, "x"],
])
def test_py_literal_matches_json_dumps(value):
    text = py_literal(value)
    assert text == json.dumps(value, ensure_ascii=False, indent=4)
    assert ast.literal_eval(text) == value


def test_py_literal_python_constants():
    value = {"a": True, "b": False, "c": None, "d": [True]}
    assert ast.literal_eval(py_literal(value)) == value


# --------------------------------------------------------------------------- image snippet


def image_requests():
    return [
        ImageRequest(model="Qwen/Qwen-Image", prompt="A golden cat"),
        ImageRequest(model="Qwen/Qwen-Image", prompt="一只金色的猫", seed=7,
                     loras={"a/b": 0.6, "c/d": 0.4}),
        ImageRequest(model="black-forest-labs/FLUX.1-Krea-dev", prompt='say "hi"\n\\ """ end',
                     negative_prompt="blurry, 模糊", width=1024, height=768, seed=0, steps=30,
                     guidance=3.5, loras="owner/one-lora"),
        ImageRequest(model="Qwen/Qwen-Image-Edit", prompt="make it blue",
                     image_url="https://example.com/cat.png"),
    ]


@pytest.mark.parametrize("req", image_requests(), ids=lambda r: r.prompt[:12])
def test_image_snippet_compiles_and_sends_the_exact_payload(req):
    code = image_snippet(req)
    compile(code, "snippet.py", "exec")
    value = assigned(code, "payload")
    assert ast.literal_eval(value) == build_payload(req)
    # the body is shown exactly as json.dumps(..., ensure_ascii=False, indent=4) writes it
    assert "payload = " + json.dumps(build_payload(req), ensure_ascii=False, indent=4) in code
    for fact in (wire.ASYNC_MODE_HEADER, wire.TASK_TYPE_HEADER, wire.TASK_TYPE_IMAGE,
                 wire.IMAGES_PATH, wire.TASK_PATH, wire.STATUS_SUCCEED, wire.STATUS_FAILED):
        assert fact in code
    assert f'os.environ["{SNIPPET_TOKEN_ENV_VAR}"]' in code
    assert 'base_url = "https://api-inference.modelscope.cn/"' in code
    assert "print(\"task_id:\", task_id)" in code


def test_image_snippet_never_holds_the_token(monkeypatch):
    monkeypatch.setenv(SNIPPET_TOKEN_ENV_VAR, SECRET)
    for req in image_requests():
        assert SECRET not in image_snippet(req, "http://127.0.0.1:9/")


def test_image_snippet_base_url():
    code = image_snippet(image_requests()[0], "http://127.0.0.1:8000/v1")
    assert 'base_url = "http://127.0.0.1:8000/"' in code


def test_image_snippet_does_not_paste_data_urls():
    data = png(size=(300, 300))
    url = image_to_data_url(data)
    req = ImageRequest(model="Qwen/Qwen-Image-Edit", prompt="edit", image_url=[url, "https://x/y.png"])
    code = image_snippet(req)
    compile(code, "snippet.py", "exec")
    assert base64.b64encode(data).decode()[:40] not in code
    assert "data_url(\"image.png\")" in code and "image.png" in code.split("def data_url")[0]
    assert "https://x/y.png" in code


def test_image_snippet_validates_first():
    with pytest.raises(ValidationError):
        image_snippet(ImageRequest(model="Qwen/Qwen-Image", prompt="x", seed=-1))


# --------------------------------------------------------------------------- chat snippet


def test_chat_snippet_plain():
    req = ChatRequest(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "你好 \"there\""}],
                      system_prompt="Be brief.", temperature=0.7, top_p=0.9, max_tokens=64,
                      enable_thinking=True, thinking_budget=100)
    code = chat_snippet(req)
    compile(code, "snippet.py", "exec")
    kwargs = req.create_kwargs(stream=True)
    assert ast.literal_eval(assigned(code, "messages")) == kwargs["messages"]
    call = create_call_kwargs(code)
    assert ast.literal_eval(call["model"]) == "Qwen/Qwen3-8B"
    assert ast.literal_eval(call["temperature"]) == 0.7
    assert ast.literal_eval(call["top_p"]) == 0.9
    assert ast.literal_eval(call["max_tokens"]) == 64
    assert ast.literal_eval(call["extra_body"]) == {"enable_thinking": True, "thinking_budget": 100}
    assert ast.literal_eval(call["stream"]) is True
    assert "reasoning_content" in code and "delta.content" in code
    assert 'base_url="https://api-inference.modelscope.cn/v1/"' in code
    assert f'os.environ["{SNIPPET_TOKEN_ENV_VAR}"]' in code


def test_chat_snippet_leaves_out_unset_options():
    req = ChatRequest(model="Qwen/Qwen2.5-72B-Instruct", messages=[{"role": "user", "content": "hi"}])
    call = create_call_kwargs(chat_snippet(req, "http://localhost:1234/"))
    assert set(call) == {"model", "messages", "stream"}
    assert 'base_url="http://localhost:1234/v1/"' in chat_snippet(req, "http://localhost:1234/")


def test_chat_snippet_never_holds_the_token(monkeypatch):
    monkeypatch.setenv(SNIPPET_TOKEN_ENV_VAR, SECRET)
    req = ChatRequest(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "hi"}])
    assert SECRET not in chat_snippet(req)


def test_vision_snippet_reads_a_local_file_instead_of_pasting(tmp_path):
    data = png(size=(400, 400))
    req = ChatRequest(model="Qwen/Qwen2.5-VL-72B-Instruct",
                      messages=[vision_message("What colour?", data)])
    code = chat_snippet(req)
    compile(code, "snippet.py", "exec")
    assert base64.b64encode(data).decode()[:40] not in code
    assert len(code) < 4000
    assert 'data_url("image.png")' in code
    assert "too long to paste" in code


def test_vision_snippet_keeps_http_urls():
    req = ChatRequest(model="Qwen/Qwen2.5-VL-72B-Instruct",
                      messages=[vision_message("What?", "https://example.com/cat.jpg")])
    code = chat_snippet(req)
    assert "https://example.com/cat.jpg" in code and "def data_url" not in code


# --------------------------------------------------------------------------- anthropic snippet


def test_anthropic_snippet_is_the_documented_script():
    req = ChatRequest(model="Qwen/Qwen2.5-72B-Instruct",
                      messages=[{"role": "user", "content": "你好 \"there\""},
                                {"role": "assistant", "content": "Hi!"},
                                {"role": "user", "content": 'and """ triple \\ back'}],
                      system_prompt="Be brief.", temperature=0.7, top_p=0.9, max_tokens=64,
                      enable_thinking=True)
    code = anthropic_snippet(req)
    compile(code, "snippet.py", "exec")
    assert "import anthropic\n" in code and "openai" not in code.lower()
    client = call_kwargs(code, "Anthropic")
    assert ast.unparse(client["api_key"]) == f"os.environ['{SNIPPET_TOKEN_ENV_VAR}']"
    assert ast.literal_eval(client["base_url"]) == "https://api-inference.modelscope.cn"  # no /v1
    assert "anthropic.Anthropic(" in code
    # the stream() call holds exactly what AnthropicChatClient sends, and no thinking switch
    call = call_kwargs(code, "stream")
    sent = {key: ast.literal_eval(value) for key, value in call.items()}
    assert sent == messages_kwargs(req)
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 64
    assert "enable_thinking" not in code
    assert "with client.messages.stream(" in code
    assert "for text in stream.text_stream:" in code and 'print(text, end="", flush=True)' in code


def test_anthropic_snippet_defaults_and_base_url():
    req = ChatRequest(model="Qwen/Qwen2.5-72B-Instruct", messages=[{"role": "user", "content": "hi"}])
    code = anthropic_snippet(req, "http://localhost:1234/v1/")
    call = call_kwargs(code, "stream")
    assert set(call) == {"model", "max_tokens", "messages"}  # no system, no sampling settings
    assert ast.literal_eval(call["max_tokens"]) == 1024  # the API requires max_tokens
    assert ast.literal_eval(call_kwargs(code, "Anthropic")["base_url"]) == "http://localhost:1234"


def test_anthropic_snippet_never_holds_the_token(monkeypatch):
    monkeypatch.setenv(SNIPPET_TOKEN_ENV_VAR, SECRET)
    req = ChatRequest(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "hi"}])
    assert SECRET not in anthropic_snippet(req, "http://127.0.0.1:9/")


def test_anthropic_snippet_validates_first():
    with pytest.raises(ValidationError):
        anthropic_snippet(ChatRequest(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "x"}],
                                      temperature=5))


# --------------------------------------------------------------------------- really run them


@pytest.fixture(scope="module")
def sim():
    from modelscope_api.simulator import SimConfig, Simulator

    s = Simulator(SimConfig(task_seconds=0.3, ttft=0.02, tokens_per_second=2000))
    s.start()
    yield s
    s.stop()


def run_snippet(code: str, cwd: Path, token: str) -> subprocess.CompletedProcess:
    (cwd / "snippet.py").write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSCOPE_")}
    env[SNIPPET_TOKEN_ENV_VAR] = token
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "snippet.py"], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=30)


def test_image_snippet_runs_against_the_simulator(sim, tmp_path):
    token = "ms-test-snippet-image"
    req = ImageRequest(model="Qwen/Qwen-Image", prompt="一只金色的猫 with a fish", seed=7,
                       loras={"a/b": 0.6, "c/d": 0.4})
    proc = run_snippet(image_snippet(req, sim.base_url), tmp_path, token)
    assert proc.returncode == 0, proc.stderr
    assert "task_id:" in proc.stdout and "SUCCEED" in proc.stdout
    saved = sorted(tmp_path.glob("*.png"))
    assert len(saved) == 1
    assert saved[0].name.endswith("_一只金色的猫-with-a-fish_7.png")
    with Image.open(saved[0]) as img:
        assert img.size[0] > 0
    submits = [e for e in sim.requests(wire.IMAGES_PATH, token=token) if e.method == "POST"]
    assert len(submits) == 1 and submits[0].json == build_payload(req)
    assert submits[0].headers.get(wire.ASYNC_MODE_HEADER) == "true"
    polls = sim.requests("v1/tasks/", token=token)
    assert polls and all(p.headers.get(wire.TASK_TYPE_HEADER) == wire.TASK_TYPE_IMAGE for p in polls)
    # run it again: the second picture gets a new name, the first stays
    first = saved[0].read_bytes()
    proc = run_snippet(image_snippet(req, sim.base_url), tmp_path, token)
    assert proc.returncode == 0, proc.stderr
    assert len(list(tmp_path.glob("*.png"))) == 2 and saved[0].read_bytes() == first


def test_image_snippet_reports_failure(sim, tmp_path):
    token = "ms-test-snippet-fail"
    sim.inject("task_failed", token=token)
    proc = run_snippet(image_snippet(ImageRequest(model="Qwen/Qwen-Image", prompt="x"), sim.base_url),
                       tmp_path, token)
    assert proc.returncode != 0
    assert "failed" in proc.stderr.lower()
    assert not list(tmp_path.glob("*.png"))


def test_chat_snippets_run_against_the_simulator(sim, tmp_path):
    """A text chat with thinking, and a vision chat whose image is read from image.png."""
    token = "ms-test-snippet-chat"
    text = ChatRequest(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "why is the sky blue"}],
                       system_prompt="Be brief.", max_tokens=30, enable_thinking=True)
    data = png(colour=(220, 30, 30))
    vision = ChatRequest(model="Qwen/Qwen2.5-VL-72B-Instruct",
                         messages=[vision_message("What colour is it?", data)])
    (tmp_path / "image.png").write_bytes(data)
    a = tmp_path / "a"
    a.mkdir()
    (a / "image.png").write_bytes(data)
    procs = []
    for req, cwd in ((text, tmp_path), (vision, a)):
        (cwd / "snippet.py").write_text(chat_snippet(req, sim.base_url), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSCOPE_")}
        env.update({SNIPPET_TOKEN_ENV_VAR: token, "PYTHONIOENCODING": "utf-8"})
        procs.append(subprocess.Popen([sys.executable, "snippet.py"], cwd=cwd, env=env, text=True,
                                      encoding="utf-8", stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    (out1, err1), (out2, err2) = (p.communicate(timeout=30) for p in procs)
    assert procs[0].returncode == 0, err1
    assert procs[1].returncode == 0, err2
    assert "=== thinking ===" in out1 and "=== answer ===" in out1
    assert "why is the sky blue" in out1.split("=== answer ===")[1]
    assert "=== answer ===" in out2 and len(out2.split("=== answer ===")[1].strip()) > 10
    # what the snippets sent equals what ChatClient.stream would send
    sent = [e.json for e in sim.requests(wire.CHAT_COMPLETIONS_PATH, token=token)]
    assert len(sent) == 2
    by_model = {body["model"]: body for body in sent}
    for req in (text, vision):
        expected = req.create_kwargs(stream=True)
        body = by_model[req.model]
        assert body["messages"] == expected["messages"]  # incl. the image's data: URL, rebuilt
        assert body["stream"] is True
        for key, value in expected.get("extra_body", {}).items():
            assert body[key] == value
        if req.max_tokens:
            assert body["max_tokens"] == req.max_tokens


def test_anthropic_snippet_runs_against_the_simulator(sim, tmp_path):
    token = "ms-test-snippet-anthropic"
    req = ChatRequest(model="Qwen/Qwen2.5-72B-Instruct",
                      messages=[{"role": "user", "content": "why is the sky blue"}],
                      system_prompt="Be brief.", temperature=0.5, top_p=0.9, max_tokens=30)
    proc = run_snippet(anthropic_snippet(req, sim.base_url), tmp_path, token)
    assert proc.returncode == 0, proc.stderr
    assert "why is the sky blue" in proc.stdout
    [entry] = sim.requests(wire.ANTHROPIC_MESSAGES_PATH, token=token)
    assert entry.method == "POST"
    expected = messages_kwargs(req)
    sampling = expected.pop("extra_body")
    assert entry.json == {**expected, **sampling, "stream": True}
    assert sim.requests(wire.CHAT_COMPLETIONS_PATH, token=token) == []
