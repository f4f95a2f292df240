"""What every tab needs to know about the running app, and whose token a call uses.

A token reaches a handler in one of three ways, first match wins:
1. the `X-ModelScope-Token` HTTP header (programs using gradio_client's `headers=`);
2. the browser session's own token, held in a `gr.State` filled by a *private* event from
   the password box (a State's value never leaves the server, so it is never part of a
   public event's recorded inputs);
3. the server's token from the environment (a Space secret shared by a class), guarded by
   optional per-session and per-day caps so one student cannot spend the teacher's quota.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

from modelscope_api import config

TOKEN_HEADER = "x-modelscope-token"  # HTTP headers are case-insensitive; Starlette lower-cases

SOURCE_HEADER = "header"
SOURCE_SESSION = "session"
SOURCE_SERVER = "server"
SOURCE_NONE = "none"

CONCURRENCY_ENV = "STUDIO_CONCURRENCY"  # per-event concurrency of the I/O-bound events
QUEUE_ENV = "STUDIO_MAX_QUEUE"
SESSION_CAP_ENV = "STUDIO_SERVER_TOKEN_SESSION_LIMIT"  # calls per browser session on the server token
DAILY_CAP_ENV = "STUDIO_SERVER_TOKEN_DAILY_LIMIT"  # calls per day on the server token, all sessions
OUTPUTS_ENV = "STUDIO_OUTPUTS_DIR"


def _env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
    return value if value > 0 else None


class QuotaCapReached(Exception):
    """A teacher's cap on the shared server token is reached (not a ModelScope error)."""

    def __init__(self, scope: str, limit: int):
        super().__init__(f"{scope} limit of {limit} requests on the shared token reached")
        self.scope = scope  # "session" or "day"
        self.limit = limit


@dataclass
class ServerTokenGuard:
    """Counts calls made with the server's token; personal tokens are never capped."""

    session_limit: int | None = None
    daily_limit: int | None = None
    _by_session: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _day: _dt.date = field(default_factory=_dt.date.today)
    _today: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        return bool(self.session_limit or self.daily_limit)

    def _roll(self) -> None:
        today = _dt.date.today()
        if today != self._day:
            self._day, self._today = today, 0
            self._by_session.clear()

    def take(self, session: str) -> None:
        """Count one call for `session`, or raise QuotaCapReached without counting."""
        with self._lock:
            self._roll()
            if self.daily_limit and self._today >= self.daily_limit:
                raise QuotaCapReached("day", self.daily_limit)
            if self.session_limit and self._by_session[session] >= self.session_limit:
                raise QuotaCapReached("session", self.session_limit)
            self._today += 1
            self._by_session[session] += 1

    def give_back(self, session: str) -> None:
        """Undo a take() for a call that never reached the server (bad input, no connection)."""
        with self._lock:
            if self._by_session.get(session, 0) > 0:
                self._by_session[session] -= 1
                self._today = max(0, self._today - 1)

    def remaining(self, session: str) -> dict[str, int | None]:
        with self._lock:
            self._roll()
            return {
                "session": None if not self.session_limit
                else max(0, self.session_limit - self._by_session.get(session, 0)),
                "day": None if not self.daily_limit else max(0, self.daily_limit - self._today),
            }


@dataclass
class AppContext:
    base_url: str
    server_token: str | None = None  # from the environment; never shown, never sent to a page
    offline: bool = False
    concurrency: int = 32
    max_queue: int = 256
    outputs_dir: str = "outputs"
    guard: ServerTokenGuard = field(default_factory=ServerTokenGuard)
    # Each session's last quota line. A streaming handler re-sends it unchanged instead of
    # gr.skip(): in Gradio 6.31 every skip rebuilds the component, ~1-4 ms per update.
    _quota_lines: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _quota_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    QUOTA_LINES_KEPT = 10_000  # sessions remembered; the oldest is forgotten first

    def remember_quota_line(self, session: str, line: str) -> None:
        with self._quota_lock:
            self._quota_lines[session] = line
            self._quota_lines.move_to_end(session)
            while len(self._quota_lines) > self.QUOTA_LINES_KEPT:
                self._quota_lines.popitem(last=False)

    def quota_line(self, session: str) -> str:
        """What the header's quota line shows for this session now ("" before any call)."""
        with self._quota_lock:
            return self._quota_lines.get(session, "")

    @classmethod
    def from_env(cls, *, base_url: str | None = None, server_token: str | None = None,
                 offline: bool = False) -> AppContext:
        return cls(
            base_url=config.resolve_base_url(base_url),
            server_token=config.resolve_token(server_token),
            offline=offline,
            concurrency=_env_int(CONCURRENCY_ENV, 32) or 32,
            max_queue=_env_int(QUEUE_ENV, 256) or 256,
            outputs_dir=os.environ.get(OUTPUTS_ENV, "").strip() or "outputs",
            guard=ServerTokenGuard(_env_int(SESSION_CAP_ENV, None), _env_int(DAILY_CAP_ENV, None)),
        )

    def __repr__(self) -> str:
        return (f"AppContext(base_url={self.base_url!r}, server_token="
                f"{config.fingerprint(self.server_token)}, offline={self.offline})")

    def token_for(self, session_token: str | None, request) -> tuple[str | None, str]:
        """(token, source) for one call; `request` is the handler's gr.Request (or None)."""
        header = None
        if request is not None:
            headers = getattr(request, "headers", None) or {}
            try:
                header = headers.get(TOKEN_HEADER) or headers.get("X-ModelScope-Token")
            except AttributeError:
                header = None
        if header and header.strip():
            return header.strip(), SOURCE_HEADER
        if session_token and str(session_token).strip():
            return str(session_token).strip(), SOURCE_SESSION
        if self.server_token:
            return self.server_token, SOURCE_SERVER
        return None, SOURCE_NONE


def session_id(request) -> str:
    return getattr(request, "session_hash", None) or "anonymous"
