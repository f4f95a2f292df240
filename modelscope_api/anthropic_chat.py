"""Chat over ModelScope's Anthropic-compatible endpoint (beta) with the official `anthropic` SDK.

The SDK's base_url is the API-Inference base URL *without* "/v1" (it appends "/v1/messages"
itself); the SDK sends the token as `x-api-key` (older versions) or `Authorization: Bearer`
(2.x). Takes the same `ChatRequest` as `ChatClient` and yields the same events
(ContentDelta ..., then ChatDone). `anthropic` is imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from .chat import ChatDone, ChatRequest, ChatResult, ContentDelta
from .config import Settings, normalize_base_url
from .errors import (
    IncompleteStreamError,
    MissingTokenError,
    ModelScopeError,
    from_sdk_error,
)
from .quota import Quota

if TYPE_CHECKING:
    import anthropic

DEFAULT_MAX_TOKENS = 1024  # Anthropic's API requires max_tokens


def anthropic_base_url(base_url: str) -> str:
    """The anthropic SDK's base_url: the API-Inference base URL without the trailing "/"."""
    return normalize_base_url(base_url).rstrip("/")


def messages_kwargs(req: ChatRequest) -> dict[str, Any]:
    """The keyword arguments for `client.messages.create/stream` (validates; pure).

    system_prompt and any role "system" messages become `system=`; the rest pass through;
    temperature and top_p go in `extra_body`."""
    req.validate()
    system_parts: list[str] = []
    if req.system_prompt and req.system_prompt.strip():
        system_parts.append(req.system_prompt)
    messages: list[dict[str, Any]] = []
    for m in req.messages:
        if m.get("role") == "system":
            text = m.get("content")
            if isinstance(text, str) and text.strip():
                system_parts.append(text)
        else:
            messages.append(dict(m))
    kw: dict[str, Any] = {
        "model": req.model.strip(),
        "messages": messages,
        "max_tokens": int(req.max_tokens) if req.max_tokens is not None else DEFAULT_MAX_TOKENS,
    }
    if system_parts:
        kw["system"] = "\n\n".join(system_parts)
    # anthropic 2.x no longer takes temperature/top_p as arguments, but the wire still does:
    # extra_body (merged into the JSON body by every SDK version) carries them.
    sampling: dict[str, float] = {}
    if req.temperature is not None:
        sampling["temperature"] = float(req.temperature)
    if req.top_p is not None:
        sampling["top_p"] = float(req.top_p)
    if sampling:
        kw["extra_body"] = sampling
    return kw


def from_anthropic_error(exc: BaseException) -> ModelScopeError:
    """Map an exception raised by the anthropic SDK onto our classes."""
    import anthropic

    return from_sdk_error(exc, anthropic)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a broken stream raises: httpx errors (anthropic 2.x uses the httpx2 fork)."""
    import anthropic

    found: list[type[BaseException]] = [httpx.HTTPError, anthropic.APIConnectionError]
    try:
        import httpx2  # type: ignore[import-not-found]

        found.append(httpx2.HTTPError)
    except ImportError:
        pass
    return tuple(found)


def _request_id(headers: Any) -> str | None:
    if headers is None:
        return None
    return headers.get("x-request-id") or headers.get("request-id") or None


class AnthropicChatClient:
    """`ChatClient`'s twin for the Anthropic-compatible endpoint (no reasoning events)."""

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        max_retries: int = 1,
        timeout: float | None = None,
    ):
        self.settings = Settings.resolve(token, base_url)
        self.max_retries = max_retries
        self.timeout = timeout
        self._client: anthropic.Anthropic | None = None

    def __repr__(self) -> str:
        return f"AnthropicChatClient({self.settings!r})"

    def _sdk(self) -> anthropic.Anthropic:
        import anthropic

        if not self.settings.token:
            raise MissingTokenError("No ModelScope token was given.")
        if self._client is None:
            kw: dict[str, Any] = {}
            if self.timeout is not None:
                kw["timeout"] = self.timeout
            self._client = anthropic.Anthropic(
                api_key=self.settings.token,
                base_url=anthropic_base_url(self.settings.base_url),
                max_retries=self.max_retries,
                **kw,
            )
        return self._client

    def stream(self, req: ChatRequest) -> Iterator[ContentDelta | ChatDone]:
        """Yield ContentDelta events, then one ChatDone (reasoning is always "").

        Raises ModelScopeError subclasses; a broken stream raises IncompleteStreamError
        carrying what had arrived. Closing the generator closes the HTTP stream.
        """
        import anthropic

        kwargs = messages_kwargs(req)
        sdk = self._sdk()
        broken = _transport_errors()
        try:
            stream = sdk.messages.stream(**kwargs).__enter__()
        except anthropic.AnthropicError as exc:
            raise from_anthropic_error(exc) from exc
        headers = getattr(getattr(stream, "response", None), "headers", None)
        quota = Quota.from_headers(headers)
        request_id = _request_id(headers)
        content: list[str] = []
        stop_reason = None
        usage: dict[str, Any] = {}
        try:
            for event in stream:
                kind = getattr(event, "type", None)
                if kind == "message_start":
                    request_id = request_id or event.message.id
                    if event.message.usage is not None:
                        usage["input_tokens"] = event.message.usage.input_tokens
                elif kind == "content_block_delta" and event.delta.type == "text_delta":
                    if event.delta.text:
                        content.append(event.delta.text)
                        yield ContentDelta(event.delta.text)
                elif kind == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    if event.usage is not None:
                        usage["output_tokens"] = event.usage.output_tokens
        except broken as exc:
            raise IncompleteStreamError(
                f"The connection broke before the answer finished ({type(exc).__name__}).",
                partial_content="".join(content), request_id=request_id, quota=quota,
            ) from exc
        except ValueError as exc:  # an event that is not JSON
            raise IncompleteStreamError(
                "The server sent a piece of the answer that could not be read.",
                partial_content="".join(content), request_id=request_id, quota=quota,
            ) from exc
        except anthropic.AnthropicError as exc:  # an error event inside the stream
            raise from_anthropic_error(exc) from exc
        finally:
            stream.close()
        if stop_reason is None:
            raise IncompleteStreamError(
                "The answer stream ended before the server said it was finished.",
                partial_content="".join(content), request_id=request_id, quota=quota,
            )
        yield ChatDone("".join(content), "", stop_reason, usage or None, quota, request_id)

    def complete(self, req: ChatRequest) -> ChatResult:
        """A non-streaming call: `messages.create`, the text blocks joined."""
        import anthropic

        kwargs = messages_kwargs(req)
        sdk = self._sdk()
        try:
            raw = sdk.messages.with_raw_response.create(**kwargs)
            message = raw.parse()
        except anthropic.AnthropicError as exc:
            raise from_anthropic_error(exc) from exc
        text = "".join(
            getattr(block, "text", "") for block in message.content
            if getattr(block, "type", None) == "text"
        )
        usage = message.usage.model_dump() if message.usage is not None else None
        return ChatResult(
            content=text,
            finish_reason=message.stop_reason,
            usage=usage,
            quota=Quota.from_headers(raw.headers),
            request_id=_request_id(raw.headers) or message.id,
        )


__all__ = ["AnthropicChatClient", "anthropic_base_url", "from_anthropic_error", "messages_kwargs"]
