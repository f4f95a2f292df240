"""What one event may carry: the studio's own bounds on text, history and lists, so a raw
HTTP call with a megabyte message or a ten-thousand-turn history is refused up front (and
costs nothing) instead of being copied, stored per session and sent."""

from __future__ import annotations

from typing import Any

from modelscope_api.errors import ValidationError

MESSAGE_MAX_CHARS = 20_000  # one chat message or vision question
SYSTEM_PROMPT_MAX_CHARS = 10_000
HISTORY_MAX_MESSAGES = 200  # Chatbot messages (notes and thinking boxes included)
HISTORY_MAX_CHARS = 400_000  # all of a conversation's text


def check_history(history: Any, field: str = "history") -> list:
    """A Chatbot history that is a list within the bounds (or [] for None)."""
    if history is None:
        return []
    if not isinstance(history, list):
        raise ValidationError(field, history, "a list of messages", kind="type")
    if len(history) > HISTORY_MAX_MESSAGES:
        raise ValidationError(field, f"{len(history)} messages", f"at most {HISTORY_MAX_MESSAGES} messages",
                              kind="too_many", limit=HISTORY_MAX_MESSAGES)
    total = 0
    for msg in history:
        content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", None)
        total += len(content) if isinstance(content, str) else len(str(content or ""))
        if total > HISTORY_MAX_CHARS:
            raise ValidationError(field, "a very long conversation", f"at most {HISTORY_MAX_CHARS} characters",
                                  kind="too_long", limit=HISTORY_MAX_CHARS)
    return history
