""""Show the code": a request rendered as a short, runnable Python script.

The chat script uses the official `openai` SDK (or, for the Anthropic-compatible endpoint,
the `anthropic` SDK as ModelScope's documentation shows it), the image script plain
`requests` (like the classroom lesson, with a task id printed and time+prompt file names).
All of them read the token
from the environment (config.SNIPPET_TOKEN_ENV_VAR): these functions never even see it.
Inline images (data: URLs, possibly megabytes) are not pasted; the script reads a local
file instead and says so in a comment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import wire
from .anthropic_chat import anthropic_base_url, messages_kwargs
from .chat import ChatRequest
from .config import SNIPPET_TOKEN_ENV_VAR, chat_base_url, normalize_base_url
from .images import ImageRequest, build_payload

IMAGE_FILE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg",
                         "image/webp": "webp", "image/gif": "gif", "image/bmp": "bmp"}


class _Code(str):
    """A piece of Python to be pasted as is (not quoted) inside a literal."""


def _str_literal(text: str) -> str:
    # JSON string escapes (\", \\, \n, \t, \uXXXX) are all valid Python escapes too.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep the file writable
        return json.dumps(text, ensure_ascii=True)
    return json.dumps(text, ensure_ascii=False)


def py_literal(value: Any, level: int = 0, indent: int = 4) -> str:
    """A Python expression for JSON-like data, laid out like json.dumps(indent=4).

    For data without True/False/None the text equals json.dumps(value, ensure_ascii=False,
    indent=4) exactly.
    """
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(value, _Code):
        return str(value)
    if isinstance(value, str):
        return _str_literal(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = [f"{inner}{_str_literal(str(k))}: {py_literal(v, level + 1, indent)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, Sequence):
        if not value:
            return "[]"
        items = [inner + py_literal(v, level + 1, indent) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _str_literal(str(value))


class _DataUrls:
    """Swap data: URLs for `data_url("image.png")` calls, remembering the files named."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str]] = []  # (file name, mime type)

    def replace(self, url: str) -> str | _Code:
        if not (isinstance(url, str) and url.startswith("data:")):
            return url
        mime = url[5:].split(";", 1)[0].split(",", 1)[0].strip().lower() or "image/png"
        ext = IMAGE_FILE_EXTENSIONS.get(mime, "png")
        n = len(self.files) + 1
        name = f"image.{ext}" if n == 1 else f"image{n}.{ext}"
        self.files.append((name, mime))
        return _Code(f"data_url({_str_literal(name)})")

    def helper(self) -> str:
        if not self.files:
            return ""
        names = ", ".join(name for name, _ in self.files)
        return (
            "\n\n# The image was sent inline as a data: URL (too long to paste here).\n"
            f"# Put the picture next to this script as {names}; it is read and encoded below.\n"
            "def data_url(path):\n"
            '    mime = mimetypes.guess_type(path)[0] or "image/png"\n'
            '    with open(path, "rb") as f:\n'
            '        return f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")\n'
        )


def _imports(modules: list[str], third_party: list[str]) -> str:
    lines = [f"import {m}" for m in sorted(modules)]
    return "\n".join(lines) + "\n\n" + "\n".join(third_party) + "\n"


def _docstring(text: str) -> str:
    """A docstring holding any text: every quote and backslash escaped, and every character
    Python source cannot hold as it is (NUL, other controls, lone surrogates) as an escape."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return '"""' + "".join(out) + '"""\n\n'


def _one_line(text: str, limit: int = 60) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- chat


def chat_snippet(req: ChatRequest, base_url: str | None = None) -> str:
    """Python (openai SDK) that streams the same chat request ChatClient.stream sends."""
    kwargs = req.create_kwargs(stream=True)  # validates, exactly what the client sends
    urls = _DataUrls()
    messages = [_swap_message_urls(m, urls) for m in kwargs.pop("messages")]
    kwargs.pop("stream", None)
    api_base = chat_base_url(base_url or wire.DEFAULT_BASE_URL)

    modules = ["os"] + (["base64", "mimetypes"] if urls.files else [])
    lines = [
        _docstring(
            f"Chat with {kwargs['model']} on ModelScope API-Inference.\n\n"
            f"Run:  {SNIPPET_TOKEN_ENV_VAR}=<your token> python this_script.py\n"
        ),
        _imports(modules, ["from openai import OpenAI"]),
        urls.helper(),
        "\n\nclient = OpenAI(\n"
        f"    base_url={_str_literal(api_base)},\n"
        f"    api_key=os.environ[{_str_literal(SNIPPET_TOKEN_ENV_VAR)}],  # your ModelScope access token\n"
        ")\n\n",
        f"messages = {py_literal(messages)}\n\n",
        "stream = client.chat.completions.create(\n",
        f"    model={_str_literal(kwargs.pop('model'))},\n",
        "    messages=messages,\n",
    ]
    for key, value in kwargs.items():
        lines.append(f"    {key}={py_literal(value, 1)},\n")
    lines.append("    stream=True,\n)\n\n")
    lines.append(
        "# Reasoning models stream their thinking (reasoning_content) before the answer (content).\n"
        "section = None\n"
        "for chunk in stream:\n"
        "    if not chunk.choices:\n"
        "        continue\n"
        "    delta = chunk.choices[0].delta\n"
        '    reasoning = getattr(delta, "reasoning_content", None)\n'
        "    if reasoning:\n"
        '        if section != "thinking":\n'
        '            section = "thinking"\n'
        '            print("=== thinking ===")\n'
        '        print(reasoning, end="", flush=True)\n'
        "    if delta.content:\n"
        '        if section != "answer":\n'
        '            if section is not None:\n'
        "                print()\n"
        '            section = "answer"\n'
        '            print("=== answer ===")\n'
        '        print(delta.content, end="", flush=True)\n'
        "print()\n"
    )
    return "".join(lines)


def anthropic_snippet(req: ChatRequest, base_url: str | None = None) -> str:
    """Python (anthropic SDK) that streams the same request AnthropicChatClient.stream sends."""
    kwargs = messages_kwargs(req)  # validates, exactly what the client sends
    urls = _DataUrls()
    messages = [_swap_message_urls(m, urls) for m in kwargs.pop("messages")]
    api_base = anthropic_base_url(base_url or wire.DEFAULT_BASE_URL)

    modules = ["os"] + (["base64", "mimetypes"] if urls.files else [])
    lines = [
        _docstring(
            f"Chat with {kwargs['model']} on ModelScope API-Inference through its\n"
            "Anthropic-compatible endpoint (beta).\n\n"
            f"Run:  {SNIPPET_TOKEN_ENV_VAR}=<your token> python this_script.py\n"
        ),
        _imports(modules, ["import anthropic"]),
        urls.helper(),
        "\n\nclient = anthropic.Anthropic(\n"
        f"    api_key=os.environ[{_str_literal(SNIPPET_TOKEN_ENV_VAR)}],  # your ModelScope access token\n"
        f"    base_url={_str_literal(api_base)},  # without /v1: the SDK adds /v1/messages\n"
        ")\n\n",
        "with client.messages.stream(\n",
        f"    model={_str_literal(kwargs.pop('model'))},\n",
        f"    max_tokens={py_literal(kwargs.pop('max_tokens'))},\n",
    ]
    if "system" in kwargs:
        lines.append(f"    system={_str_literal(kwargs.pop('system'))},\n")
    lines.append(f"    messages={py_literal(messages, 1)},\n")
    if "extra_body" in kwargs:
        lines.append("    # temperature and top_p go in the request body (anthropic 2.x takes no such arguments)\n"
                     f"    extra_body={py_literal(kwargs.pop('extra_body'), 1)},\n")
    for key, value in kwargs.items():
        lines.append(f"    {key}={py_literal(value, 1)},\n")
    lines.append(
        ") as stream:\n"
        "    for text in stream.text_stream:\n"
        '        print(text, end="", flush=True)\n'
        "print()\n"
    )
    return "".join(lines)


def _swap_message_urls(message: Mapping[str, Any], urls: _DataUrls) -> dict[str, Any]:
    msg = dict(message)
    content = msg.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("image_url"), Mapping):
                image = dict(part["image_url"])
                image["url"] = urls.replace(image.get("url"))
                part = dict(part, image_url=image)
            parts.append(part)
        msg["content"] = parts
    return msg


# --------------------------------------------------------------------------- images


def image_snippet(req: ImageRequest, base_url: str | None = None) -> str:
    """Python (requests) that submits, polls and saves the same image request."""
    payload = build_payload(req)  # validates; the exact body ImageClient sends
    urls = _DataUrls()
    if "image_url" in payload:
        value = payload["image_url"]
        payload["image_url"] = (
            urls.replace(value) if isinstance(value, str) else [urls.replace(u) for u in value]
        )
    base = normalize_base_url(base_url or wire.DEFAULT_BASE_URL)
    modules = ["json", "os", "re", "time"] + (["base64", "mimetypes"] if urls.files else [])
    head = [
        _docstring(
            f"Text-to-image with {payload['model']} on ModelScope API-Inference: "
            f"{_one_line(payload['prompt'])}\n\n"
            f"Run:  {SNIPPET_TOKEN_ENV_VAR}=<your token> python this_script.py\n"
            "The task runs on the server; this script asks every few seconds until it is done,\n"
            "then saves the picture as <time>_<prompt>_<seed>.png (never overwriting one).\n"
        ),
        _imports(modules, ["import requests"]).replace(
            "import time\n", "import time\nfrom datetime import datetime\n"
        ),
        urls.helper(),
    ]
    body = f"""
base_url = {_str_literal(base)}
api_key = os.environ[{_str_literal(SNIPPET_TOKEN_ENV_VAR)}]  # your ModelScope access token

common_headers = {{
    {_str_literal(wire.AUTHORIZATION)}: f"Bearer {{api_key}}",
    "Content-Type": "application/json",
}}

payload = {py_literal(payload)}


def check(response):
    \"\"\"Stop with the server's own message on an error answer.\"\"\"
    if response.status_code >= 400:
        raise SystemExit(f"HTTP {{response.status_code}}: {{response.text[:500]}}")
    return response.json()


# 1. Submit. Image generation is asynchronous only: the answer is a task id, not a picture.
submitted = check(requests.post(
    f"{{base_url}}{wire.IMAGES_PATH}",
    headers={{**common_headers, {_str_literal(wire.ASYNC_MODE_HEADER)}: "true"}},
    data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
    timeout=60,
))
task_id = submitted["task_id"]
print("task_id:", task_id)

# 2. Poll the task until it SUCCEEDs or FAILs.
started = time.time()
delay = 1.0
while True:
    time.sleep(delay)
    delay = min(delay * 1.5, 5.0)
    data = check(requests.get(
        f"{{base_url}}{wire.TASK_PATH}",
        headers={{**common_headers, {_str_literal(wire.TASK_TYPE_HEADER)}: {_str_literal(wire.TASK_TYPE_IMAGE)}}},
        timeout=60,
    ))
    status = data.get("task_status")
    print(f"{{status}} after {{time.time() - started:.1f}} s")
    if status == {_str_literal(wire.STATUS_SUCCEED)}:
        break
    if status == {_str_literal(wire.STATUS_FAILED)}:
        raise SystemExit(f"Image generation failed: {{data.get('errors') or data.get('error')}}")
    if time.time() - started > 300:
        raise SystemExit(f"Task {{task_id}} did not finish within 300 s")

# 3. Download at once (the URLs expire). Name files by time and prompt so runs never overwrite.
stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
slug = re.sub(r"[\\W_]+", "-", payload["prompt"]).strip("-")[:40] or "image"
seed = data.get("input", {{}}).get("seed", payload.get("seed", "random"))
images = data.get("output_images") or []
for i, url in enumerate(images, start=1):
    response = requests.get(url, timeout=60)
    response.raise_for_status()
    content_type = response.headers.get("Content-Type", "")
    ext = "jpg" if "jpeg" in content_type else "webp" if "webp" in content_type else "png"
    stem = f"{{stamp}}_{{slug}}_{{seed}}" + (f"_{{i}}" if len(images) > 1 else "")
    filename, n = f"{{stem}}.{{ext}}", 1
    while os.path.exists(filename):
        filename, n = f"{{stem}}-{{n}}.{{ext}}", n + 1
    with open(filename, "xb") as f:
        f.write(response.content)
    print("saved", filename)
"""
    return "".join(head) + body


__all__ = ["anthropic_snippet", "chat_snippet", "image_snippet", "py_literal"]
