"""The models the service serves now: `GET /v1/models`, cached and refreshed in the background.

The free list changes often, so a curated list alone goes stale (the service then answers
400 "has no provider supported"). `ModelList` keeps the curated catalog first and adds what the
service lists, fetched once at start-up and then at most every `max_age` seconds by a
background thread, never on a caller's path. When a fetch fails (or the host is offline),
the last good list stays, and before any success the curated list is the whole answer.

`GET /v1/models` needs no valid token (it answers 200 for any), so it cannot check one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from . import catalog, wire
from .config import normalize_base_url
from .errors import APIConnectionError, ModelScopeError, error_from_response

DEFAULT_MAX_AGE_S = 3600.0
MODEL_IDS_MAX = 2000  # a list longer than this is cut: a dropdown of thousands helps nobody


def models_request(base_url: str, token: str | None = None) -> tuple[str, dict[str, str]]:
    """(URL, headers) of the model list call (pure)."""
    headers = {wire.AUTHORIZATION: f"Bearer {token}"} if token else {}
    return normalize_base_url(base_url) + wire.MODELS_PATH, headers


def parse_model_ids(body: Any) -> list[str]:
    """The ids of an OpenAI model list (`{"data": [{"id": …}, …]}`), in order, without
    duplicates or anything that is not a short text (pure)."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise ModelScopeError("the model list was not readable", body=body)
    ids: list[str] = []
    seen: set[str] = set()
    for item in data:
        model_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(model_id, str) and 0 < len(model_id.strip()) <= 200 and model_id not in seen:
            seen.add(model_id)
            ids.append(model_id.strip())
        if len(ids) >= MODEL_IDS_MAX:
            break
    return ids


def fetch_model_ids(base_url: str, token: str | None = None, *, timeout: float = 10.0,
                    session: requests.Session | None = None) -> list[str]:
    """One `GET /v1/models`; raises a ModelScopeError subclass on any failure."""
    from .images import shared_session  # the pooled session whose GETs retry transient faults

    url, headers = models_request(base_url, token)
    try:
        resp = (session or shared_session()).get(url, headers=headers, timeout=timeout)
    except requests.exceptions.RequestException as exc:
        raise APIConnectionError(f"could not reach {url}: {type(exc).__name__}") from exc
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    if resp.status_code >= 400:
        raise error_from_response(resp.status_code, body, resp.headers)
    return parse_model_ids(body)


_CURATED = {catalog.KIND_CHAT: catalog.CHAT_MODELS, catalog.KIND_VISION: catalog.VISION_MODELS}


def _with_extras(curated: tuple[str, ...], ids: list[str], kind: str) -> tuple[str, ...]:
    """The curated list, then the listed ids of that kind it lacks, sorted (pure)."""
    extra = sorted({m for m in ids if m not in curated and catalog.kind_of(m) == kind}, key=str.lower)
    return (*curated, *extra)


class ModelList:
    """The curated catalog first, then what the service lists now (thread-safe)."""

    def __init__(self, base_url: str, token: str | None = None, *, max_age: float = DEFAULT_MAX_AGE_S,
                 fetch: Callable[..., list[str]] = fetch_model_ids):
        self.base_url = base_url
        self._token = token  # the server's own token, if any; never logged
        self.max_age = max_age
        self._fetch = fetch
        self._lock = threading.Lock()
        self._fetched: tuple[str, ...] = ()
        # Each tab's list, worked out once per fetch: every page load reads it.
        self._lists: dict[str, tuple[str, ...]] = {}
        self.fetched_at: float | None = None  # time.time() of the last good fetch
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ModelList(base_url={self.base_url!r}, fetched={len(self._fetched)})"

    def refresh(self) -> bool:
        """Fetch the list once; on failure keep what there was. True if it worked."""
        try:
            ids = self._fetch(self.base_url, self._token)
        except ModelScopeError as exc:
            self.last_error = f"{type(exc).__name__}: {exc.message}"[:300]
            return False
        lists = {kind: _with_extras(curated, ids, kind) for kind, curated in _CURATED.items()}
        with self._lock:
            self._fetched, self._lists = tuple(ids), lists
            self.fetched_at, self.last_error = time.time(), None
        return True

    def fetched(self) -> tuple[str, ...]:
        with self._lock:
            return self._fetched

    def _of_kind(self, kind: str) -> list[str]:
        with self._lock:
            return list(self._lists.get(kind) or _CURATED[kind])

    def chat(self) -> list[str]:
        return self._of_kind(catalog.KIND_CHAT)

    def vision(self) -> list[str]:
        return self._of_kind(catalog.KIND_VISION)

    def start(self) -> threading.Thread:
        """Refresh now and then every max_age seconds, in a daemon thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="model-list", daemon=True)
            self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.max_age)


__all__ = ["ModelList", "fetch_model_ids", "models_request", "parse_model_ids"]
