"""The two chat protocols ModelScope's documentation teaches: OpenAI-compatible (the default,
`POST /v1/chat/completions`) and Anthropic-compatible (beta, `POST /v1/messages`).

One name for each, the check a stranger's value goes through, and the client that speaks it.
Both clients take the same ChatRequest and yield the same events; only the OpenAI one has a
reasoning stream and the enable_thinking switch.
"""

from __future__ import annotations

from typing import Any

from .anthropic_chat import AnthropicChatClient, messages_kwargs
from .chat import ChatClient, ChatRequest
from .errors import ValidationError

OPENAI = "openai"
ANTHROPIC = "anthropic"
PROTOCOLS = (OPENAI, ANTHROPIC)


def check_protocol(value: Any) -> str:
    """`value` if it names a known protocol exactly; ValidationError otherwise."""
    if not isinstance(value, str) or value not in PROTOCOLS:
        raise ValidationError("protocol", value, " or ".join(PROTOCOLS))
    return value


def request_kwargs(req: ChatRequest, protocol: str) -> dict[str, Any]:
    """What the protocol's client will hand its SDK for a streamed `req` (validates; pure)."""
    if check_protocol(protocol) == ANTHROPIC:
        return messages_kwargs(req)
    return req.create_kwargs(stream=True)


def chat_client(protocol: str, token: str | None = None, base_url: str | None = None
                ) -> ChatClient | AnthropicChatClient:
    """The client for `protocol`, with the usual token and base URL resolution."""
    if check_protocol(protocol) == ANTHROPIC:
        return AnthropicChatClient(token, base_url)
    return ChatClient(token, base_url)


__all__ = ["ANTHROPIC", "OPENAI", "PROTOCOLS", "chat_client", "check_protocol", "request_kwargs"]
