"""Helpers shared by the test_proof_* files (not fixtures of conftest: imported directly)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from gradio_client.exceptions import AppError
from gradio_client.exceptions import ValidationError as ClientValidationError

# Notes in a conversation that are not errors: a thinking box, a cut-off marker.
_NOT_ERRORS = ("thinking", "思考", "cut off", "截断")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def title(msg: Any) -> str:
    meta = msg.get("metadata") if isinstance(msg, dict) else None
    return str((meta or {}).get("title") or "")


def text_of(msg: Any) -> str:
    content = msg.get("content") if isinstance(msg, dict) else msg
    if isinstance(content, list):
        return "\n".join(text_of({"content": c}) for c in content)
    if isinstance(content, dict):
        return str(content.get("text") or "")
    return "" if content is None else str(content)


def error_notes(messages: Any) -> list[str]:
    """The texts of error notes in a returned conversation (titled notes that are neither a
    thinking box nor a cut-off marker)."""
    if not isinstance(messages, list):
        return []
    return [text_of(m) for m in messages
            if title(m) and not any(w in title(m).lower() for w in _NOT_ERRORS)]


def outcome(call: Callable[[], Any]) -> tuple[Any, str | None]:
    """(result, error text) of a chat-like endpoint call. The app may report an error either by
    failing the event (gradio_client raises AppError), by refusing the job at the queue's door
    (a validation answer: gradio_client raises ValidationError) or by answering with an error
    note in the conversation (the first output); all count, and all give the message shown."""
    try:
        result = call()
    except (AppError, ClientValidationError) as err:
        return None, str(err)
    first = result[0] if isinstance(result, (tuple, list)) and result and isinstance(result[0], list) else result
    notes = error_notes(first)
    return result, ("\n".join(notes) if notes else None)


def error_text(call: Callable[[], Any]) -> str:
    """The error message of a call that must fail (AssertionError if it did not)."""
    result, err = outcome(call)
    assert err is not None, f"expected an error, got {result!r}"
    return err
