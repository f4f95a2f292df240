"""The studio's HTTP edge: what every request meets before Gradio sees it.

- Deep links are off. Gradio's `/gradio_api/deep_link` writes a session's last input values
  (the token box among them) into a JSON file anyone holding the link can load; the studio
  has no deep-link button, so the route answers 404 and `?deep_link=` is dropped.
- Request bodies are bounded: an event's JSON (a chat history, a data: URL) may be at most
  `max_body_bytes`, refused with 413 before it is read into memory. Uploads keep Gradio's
  own `max_file_size` check on their route.

A plain ASGI middleware (no body buffering, streams untouched), given to Gradio's FastAPI app
through `launch(app_kwargs={"middleware": [...]})`.

With deep links off, `lean_sessions()` also stops Gradio keeping their raw material: every
SessionState holds `config_values`, a copy of every component's config (~150 KB of JSON for
this app, ~1 MB resident) plus the last value of every input (a chat history, a token), read
by nothing but the deep-link route. 1,000 visitors cost a gigabyte that way.
"""

from __future__ import annotations

import json

DEEP_LINK_PATH = "/gradio_api/deep_link"
UPLOAD_PATH = "/gradio_api/upload"
MAX_BODY_BYTES = 24 * 1024 * 1024  # two 10 MB pictures as data: URLs, with room to spare


class StudioEdge:
    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.rstrip("/") == DEEP_LINK_PATH:
            return await _plain(send, 404, "Not Found")
        if b"deep_link=" in scope.get("query_string", b""):
            scope = {**scope, "query_string": _without_deep_link(scope["query_string"])}
        if scope.get("method") in ("POST", "PUT", "PATCH") and not path.startswith(UPLOAD_PATH):
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                return await _plain(send, 413, "Request too large")
            receive = self._bounded(receive, send)
        return await self.app(scope, receive, send)

    def _bounded(self, receive, send):
        """`receive` that stops a body without Content-Length once it grows past the bound."""
        seen = 0
        limit = self.max_body_bytes

        async def bounded_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return bounded_receive


class BodyTooLarge(Exception):
    """Raised inside a request that streamed more than the bound (the server answers 500
    and closes it; nothing past the bound is read)."""


def _without_deep_link(query: bytes) -> bytes:
    return b"&".join(p for p in query.split(b"&") if not p.startswith(b"deep_link="))


async def _plain(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _Discard(dict):
    """A dict that keeps nothing: SessionState's deep-link copy, written to and never read."""

    def __setitem__(self, key, value) -> None:
        pass

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        return {"props": {}}  # what _update_value_in_config writes into, then drops


def lean_sessions() -> None:
    """Make each new Gradio SessionState keep no deep-link copy (idempotent)."""
    import os
    from copy import copy

    from gradio import state_holder

    cls = state_holder.SessionState
    if getattr(cls, "_studio_lean", False):
        return

    def __init__(self, blocks):  # Gradio 6.31's, less the eager config_values
        self.blocks_config = copy(blocks.default_config)
        self.config_values = _Discard()
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600

    cls._studio_original_init = cls.__init__
    cls.__init__ = __init__
    cls._studio_lean = True
