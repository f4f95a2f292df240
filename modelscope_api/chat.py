"""Chat and vision over the official `openai` SDK (OpenAI-compatible endpoint).

`ChatRequest` is pure data with `create_kwargs()` (what goes to the SDK); `ChatClient.stream`
turns the SDK's chunks into typed events, keeping reasoning and answer apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx

from . import catalog
from .checks import IMAGE_URL_MAX_CHARS, MAX_IMAGE_BYTES, MODEL_ID_MAX_CHARS, check_number, check_text
from .config import Settings, chat_base_url
from .errors import (
    EmptyAnswerError,
    IncompleteStreamError,
    MissingTokenError,
    ModelScopeError,
    ValidationError,
    from_openai_error,
)
from .pictures import IMAGE_ALLOWED, IMAGE_FORMATS, MAX_IMAGE_PIXELS, FittedPicture, fit_picture, sniff_image
from .quota import Quota

if TYPE_CHECKING:
    import openai

MAX_TOKENS_MAX = 1_000_000
ROLES = ("system", "user", "assistant")


# --------------------------------------------------------------------------- request


def check_message(message: Any) -> None:
    """One chat message: a known role, and content that is text or a list of text and
    image parts (ValidationError naming the field otherwise)."""
    if not isinstance(message, Mapping):
        raise ValidationError("messages", message, "messages with a role and a content", kind="type")
    if message.get("role") not in ROLES:
        raise ValidationError("messages.role", message.get("role"), "system, user or assistant", kind="type")
    content = message.get("content")
    if isinstance(content, str):
        check_text("message", content, required=False)
        return
    if not isinstance(content, (list, tuple)):
        raise ValidationError("message", content, "a text", kind="type")
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            check_text("message", part.get("text"), required=False)
        elif kind == "image_url" and isinstance(part.get("image_url"), Mapping):
            check_text("image_url", part["image_url"].get("url"))
        else:
            raise ValidationError("message", part, "text and image_url parts", kind="type")


@dataclass
class ChatRequest:
    model: str
    messages: Sequence[Mapping[str, Any]]
    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    enable_thinking: bool | None = None  # sent (in extra_body) only when set
    thinking_budget: int | None = None

    def validate(self) -> None:
        check_text("model", self.model, max_chars=MODEL_ID_MAX_CHARS, allowed="a ModelScope model id")
        if not isinstance(self.messages, (list, tuple)) or not self.messages:
            raise ValidationError("messages", self.messages, "at least one message",
                                  kind="empty" if not self.messages else "type")
        for message in self.messages:
            check_message(message)
        check_text("system_prompt", self.system_prompt, required=False)
        if self.temperature is not None:
            check_number("temperature", self.temperature, 0, 2, allowed="a number from 0 to 2")
        if self.top_p is not None:
            check_number("top_p", self.top_p, 0, 1, allowed="more than 0 and at most 1")
            if self.top_p <= 0:
                raise ValidationError("top_p", self.top_p, "more than 0 and at most 1", kind="range",
                                      low=0, high=1)
        if self.max_tokens is not None:
            check_number("max_tokens", self.max_tokens, 1, MAX_TOKENS_MAX, whole=True,
                         allowed="a whole number of 1 or more")
        if self.thinking_budget is not None:
            check_number("thinking_budget", self.thinking_budget, 1, MAX_TOKENS_MAX, whole=True,
                         allowed="1 or more")

    def full_messages(self) -> list[dict[str, Any]]:
        msgs = [dict(m) for m in self.messages]
        if self.system_prompt and self.system_prompt.strip():
            if not (msgs and msgs[0].get("role") == "system"):
                msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs

    def create_kwargs(self, stream: bool = True) -> dict[str, Any]:
        """The keyword arguments for `client.chat.completions.create` (validates; pure)."""
        self.validate()
        kw: dict[str, Any] = {"model": self.model.strip(), "messages": self.full_messages(),
                              "stream": stream}
        if self.temperature is not None:
            kw["temperature"] = float(self.temperature)
        if self.top_p is not None:
            kw["top_p"] = float(self.top_p)
        if self.max_tokens is not None:
            kw["max_tokens"] = int(self.max_tokens)
        thinking = self.enable_thinking
        if not stream:
            if thinking:
                raise ValidationError(
                    "enable_thinking", True, "false for non-streaming calls (thinking needs stream)"
                )
            # Hybrid models think by default, which the service refuses without streaming.
            if catalog.thinking_mode(self.model) == catalog.THINKING_SWITCH:
                thinking = False
        extra: dict[str, Any] = {}
        if thinking is not None:
            extra["enable_thinking"] = bool(thinking)
            if thinking and self.thinking_budget:
                extra["thinking_budget"] = int(self.thinking_budget)
        if extra:
            kw["extra_body"] = extra
        return kw


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ChatDone:
    content: str
    reasoning: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    quota: Quota | None
    request_id: str | None


ChatEvent = ReasoningDelta | ContentDelta | ChatDone


@dataclass
class ChatResult:
    content: str
    reasoning: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    quota: Quota | None = None
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- vision


def is_http_url(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    parsed = urlparse(text.strip())
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and " " not in text.strip()


def read_bounded(path: str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """A file's bytes, refused by size (stat first, then a read of at most max_bytes + 1, so
    a file that grows meanwhile is still caught) before it is held in memory."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError("image", str(path), "an existing image file", kind="missing")
    size = path.stat().st_size
    too_big = f"at most {max_bytes / 1e6:.0f} MB"
    if size > max_bytes:
        raise ValidationError("image", f"{size / 1e6:.1f} MB", too_big, kind="too_big", limit=max_bytes)
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValidationError("image", f"more than {max_bytes / 1e6:.0f} MB", too_big, kind="too_big",
                              limit=max_bytes)
    return data


def load_picture(source: bytes | str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> FittedPicture:
    """Bytes or a local file, size-bounded and checked, fitted to the service (fit_picture:
    shrunk when a side is over wire.PICTURE_MAX_SIDE, else the same bytes)."""
    data = read_bounded(source, max_bytes) if isinstance(source, (str, Path)) else bytes(source)
    if len(data) > max_bytes:
        raise ValidationError("image", f"{len(data) / 1e6:.1f} MB", f"at most {max_bytes / 1e6:.0f} MB",
                              kind="too_big", limit=max_bytes)
    if not data:
        raise ValidationError("image", "an empty file", IMAGE_ALLOWED, kind="empty")
    return fit_picture(data)


def image_to_data_url(source: bytes | str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> str:
    """Bytes or a local file → "data:image/…;base64,…" (type sniffed, size bounded, shrunk to
    fit the service; load_picture tells whether it was)."""
    return load_picture(source, max_bytes).data_url


def _url_part(text: str) -> dict[str, Any] | None:
    """The `image_url` part for an http(s) or data:image URL, None for anything else."""
    if (text.startswith("data:image/") and ";base64," in text) or is_http_url(text):
        return {"type": "image_url", "image_url": {"url": text}}
    return None


def image_part(image: bytes | str | Path) -> dict[str, Any]:
    """An `image_url` content part from an http(s) URL, a data: URL, a file path or bytes."""
    if isinstance(image, str):
        text = image.strip()
        part = _url_part(text)
        if part is not None:
            return part
        if "://" in text or text.startswith(("data:", "www.")):
            raise ValidationError("image_url", text, "an http(s) URL such as https://…/photo.png")
        if not Path(text).is_file():
            raise ValidationError("image_url", text, "an http(s) URL or an uploaded image")
    return {"type": "image_url", "image_url": {"url": image_to_data_url(image)}}


def url_image_part(url: Any) -> dict[str, Any]:
    """An `image_url` part from an http(s) or data:image URL only, never a local path: for
    callers (a public page) that must not read files named by a stranger."""
    text = check_text("image_url", url, max_chars=IMAGE_URL_MAX_CHARS,
                      allowed="an http(s) URL such as https://…/photo.png").strip()
    part = _url_part(text)
    if part is not None:
        return part
    raise ValidationError("image_url", text, "an http(s) URL such as https://…/photo.png", kind="not_url")


def vision_message(question: str, image: bytes | str | Path) -> dict[str, Any]:
    """A user message asking `question` about `image`."""
    if not isinstance(question, str) or not question.strip():
        raise ValidationError("question", question, "a non-empty question")
    return {"role": "user", "content": [image_part(image), {"type": "text", "text": question}]}


# --------------------------------------------------------------------------- client

_http_client: httpx.Client | None = None
_http_lock = threading.Lock()


def shared_http_client() -> httpx.Client:
    """One pooled HTTP client per process; each call brings its own token."""
    global _http_client
    import openai  # imported on first use: ~0.8 s that a CLI or the app's start need not pay

    with _http_lock:
        if _http_client is None:
            _http_client = openai.DefaultHttpxClient(
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                timeout=httpx.Timeout(120.0, connect=10.0),
            )
        return _http_client


class ChatClient:
    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        max_retries: int = 1,
        timeout: float | None = None,
        http_client: httpx.Client | None = None,
    ):
        self.settings = Settings.resolve(token, base_url)
        self.max_retries = max_retries
        self.timeout = timeout
        self._http_client = http_client

    def __repr__(self) -> str:
        return f"ChatClient({self.settings!r})"

    def _sdk(self) -> openai.OpenAI:
        import openai

        if not self.settings.token:
            raise MissingTokenError("No ModelScope token was given.")
        kw: dict[str, Any] = {}
        if self.timeout is not None:
            kw["timeout"] = self.timeout
        return openai.OpenAI(
            api_key=self.settings.token,
            base_url=chat_base_url(self.settings.base_url),
            max_retries=self.max_retries,
            http_client=self._http_client or shared_http_client(),
            **kw,
        )

    def stream(self, req: ChatRequest) -> Iterator[ChatEvent]:
        """Yield ReasoningDelta / ContentDelta events, then one ChatDone.

        Raises ModelScopeError subclasses; a broken stream raises IncompleteStreamError
        carrying what had arrived. Closing the generator closes the HTTP stream.
        """
        import openai

        kwargs = req.create_kwargs(stream=True)
        sdk = self._sdk()
        try:
            raw = sdk.chat.completions.with_raw_response.create(**kwargs)
        except openai.OpenAIError as exc:
            raise from_openai_error(exc) from exc
        quota = Quota.from_headers(raw.headers)
        request_id = raw.headers.get("x-request-id") or raw.headers.get("request-id")
        stream = raw.parse()
        content: list[str] = []
        reasoning: list[str] = []
        finish_reason = None
        usage = None
        try:
            for chunk in stream:
                request_id = request_id or getattr(chunk, "id", None)
                if getattr(chunk, "usage", None):
                    usage = chunk.usage.model_dump()
                for choice in chunk.choices or ():
                    delta = choice.delta
                    if delta is not None:
                        think = getattr(delta, "reasoning_content", None)
                        if think is None and delta.model_extra:
                            think = delta.model_extra.get("reasoning_content")
                        if think:
                            reasoning.append(think)
                            yield ReasoningDelta(think)
                        if delta.content:
                            content.append(delta.content)
                            yield ContentDelta(delta.content)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except (httpx.HTTPError, openai.APIConnectionError) as exc:
            raise IncompleteStreamError(
                f"The connection broke before the answer finished ({type(exc).__name__}).",
                partial_content="".join(content), partial_reasoning="".join(reasoning),
                request_id=request_id, quota=quota,
            ) from exc
        except ValueError as exc:  # a chunk that is not JSON
            raise IncompleteStreamError(
                "The server sent a piece of the answer that could not be read.",
                partial_content="".join(content), partial_reasoning="".join(reasoning),
                request_id=request_id, quota=quota,
            ) from exc
        except openai.APIError as exc:  # an error event inside the stream
            err = from_openai_error(exc)
            raise err from exc
        finally:
            stream.close()
        if not content and not reasoning:
            # hollow: only chunks whose choices were null or [] (keep-alive, usage-only)
            raise EmptyAnswerError("The model returned no answer.", status=200, request_id=request_id, quota=quota)
        if finish_reason is None:
            raise IncompleteStreamError(
                "The answer stream ended before the server said it was finished.",
                partial_content="".join(content), partial_reasoning="".join(reasoning),
                request_id=request_id, quota=quota,
            )
        yield ChatDone("".join(content), "".join(reasoning), finish_reason, usage, quota, request_id)

    def complete(self, req: ChatRequest) -> ChatResult:
        """A non-streaming call (thinking is switched off: the service requires it)."""
        import openai

        kwargs = req.create_kwargs(stream=False)
        sdk = self._sdk()
        try:
            raw = sdk.chat.completions.with_raw_response.create(**kwargs)
            completion = raw.parse()
        except openai.OpenAIError as exc:
            raise from_openai_error(exc) from exc
        request_id = raw.headers.get("x-request-id") or getattr(completion, "id", None) or None
        # A hollow 200 ("choices": null, "object": "", zero usage) or a body that is not even
        # an object (the SDK then hands back the raw text) carries no answer.
        choices = getattr(completion, "choices", None)
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None) or ""
        reasoning = ""
        if message is not None:
            reasoning = getattr(message, "reasoning_content", None) or (
                (message.model_extra or {}).get("reasoning_content") or ""
            )
        if not content and not reasoning:
            raise EmptyAnswerError("The model returned no answer.", status=200, request_id=request_id,
                                   quota=Quota.from_headers(raw.headers))
        usage = getattr(completion, "usage", None)
        return ChatResult(
            content=content,
            reasoning=reasoning,
            finish_reason=getattr(choice, "finish_reason", None),
            usage=usage.model_dump() if usage is not None and hasattr(usage, "model_dump") else None,
            quota=Quota.from_headers(raw.headers),
            request_id=request_id,
        )

    def check_token(self, model: str = catalog.DEFAULT_CHAT_MODEL) -> ChatResult:
        """A real 1-token completion: /v1/models cannot tell a bad token from a good one."""
        return self.complete(
            ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=1)
        )


__all__ = [
    "ChatClient", "ChatDone", "ChatEvent", "ChatRequest", "ChatResult", "ContentDelta",
    "ModelScopeError", "ReasoningDelta", "image_part", "image_to_data_url", "is_http_url",
    "FittedPicture", "IMAGE_FORMATS", "MAX_IMAGE_PIXELS", "load_picture", "read_bounded", "sniff_image",
    "url_image_part", "vision_message",
]
