"""What every tab needs to know about the running app, and whose token a call uses.

A token reaches a handler in one of three ways, first match wins:
1. the `X-ModelScope-Token` HTTP header (programs using gradio_client's `headers=`);
2. the browser session's own token, held in a `gr.State` filled by a *private* event from
   the password box (a State's value never leaves the server, so it is never part of a
   public event's recorded inputs);
3. the server's token from the environment (a Space secret shared by a class), guarded by
   optional per-student and per-day caps so one student cannot spend the teacher's quota.

A "student" is a browser: a random id kept in the browser's storage (a BrowserState) and
tied to each page session by a private load event, so a reload or a new tab is still the
same student. Callers without a browser id (programs through gradio_client or raw HTTP)
share one student's allowance. The daily cap counts every call on the shared token.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

from modelscope_api import config
from modelscope_api.errors import (
    APIConnectionError,
    IncompleteStreamError,
    MissingTokenError,
    ModelScopeError,
    ValidationError,
)
from modelscope_api.models import ModelList

TOKEN_HEADER = "x-modelscope-token"  # HTTP headers are case-insensitive; Starlette lower-cases

SOURCE_HEADER = "header"
SOURCE_SESSION = "session"
SOURCE_SERVER = "server"
SOURCE_NONE = "none"

CONCURRENCY_ENV = "STUDIO_CONCURRENCY"  # per-event concurrency of the I/O-bound events
QUEUE_ENV = "STUDIO_MAX_QUEUE"
SESSION_CAP_ENV = "STUDIO_SERVER_TOKEN_SESSION_LIMIT"  # calls per student (browser) on the server token
DAILY_CAP_ENV = "STUDIO_SERVER_TOKEN_DAILY_LIMIT"  # calls per day on the server token, all sessions
OUTPUTS_ENV = "STUDIO_OUTPUTS_DIR"
CHATS_IN_FLIGHT_ENV = "STUDIO_MAX_CHATS_PER_USER"  # chat/vision answers one user may stream at once
IMAGES_IN_FLIGHT_ENV = "STUDIO_MAX_IMAGES_PER_USER"  # image jobs one user may have queued or running

PROGRAMS = "programs"  # the one student every caller without a browser id counts as
STUDENT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
SESSIONS_KEPT = 10_000  # per-session facts remembered; the oldest is forgotten first


def _env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
    return value if value > 0 else None


class BoundedMap:
    """A thread-safe dict of per-session facts, forgetting the oldest past `limit`."""

    def __init__(self, limit: int = SESSIONS_KEPT):
        self.limit = limit
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __setitem__(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.limit:
                self._data.popitem(last=False)

    def get(self, key, default=None):
        with self._lock:
            return self._data.get(key, default)

    def pop(self, key, default=None):
        with self._lock:
            return self._data.pop(key, default)

    def __len__(self) -> int:
        return len(self._data)


def reached_server(err: BaseException | None, started: bool = False) -> bool:
    """Whether a call on the shared token that ended with `err` (None: it succeeded) must stay
    counted: it did unless it failed before anything reached ModelScope (bad input, no
    token, no connection, or any fault of ours while building the request)."""
    if err is None or started or isinstance(err, IncompleteStreamError):
        return True
    if isinstance(err, (ValidationError, MissingTokenError, APIConnectionError)):
        return False
    if isinstance(err, ModelScopeError):
        return True  # the server answered (an HTTP status, a task state)
    return not isinstance(err, Exception)  # a stop (GeneratorExit) came after sending


class QuotaCapReached(Exception):
    """A teacher's cap on the shared server token is reached (not a ModelScope error)."""

    def __init__(self, scope: str, limit: int):
        super().__init__(f"{scope} limit of {limit} requests on the shared token reached")
        self.scope = scope  # "session" or "day"
        self.limit = limit


@dataclass
class ServerTokenGuard:
    """Counts calls made with the server's token, per student and per day; personal tokens
    are never capped. `take` and `give_back` name the student (see AppContext.student_of)."""

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
        """Count one call for this student, or raise QuotaCapReached without counting."""
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
    max_chats_per_user: int = 2
    max_images_per_user: int = 2
    # Per page session: the student (browser id) and the fingerprint of a pasted token, so a
    # call can be counted for the right student and fair shares can see who runs what.
    students: BoundedMap = field(default_factory=BoundedMap, repr=False)
    session_tokens: BoundedMap = field(default_factory=BoundedMap, repr=False)
    on_session_end: list = field(default_factory=list, repr=False)  # fn(session) per tab
    # Each session's last quota line. A streaming handler re-sends it unchanged instead of
    # gr.skip(): in Gradio 6.31 every skip rebuilds the component, ~1-4 ms per update.
    _quota_lines: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _quota_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # The service's model list, refreshed hourly in the background once main() starts it.
    models: ModelList | None = field(default=None, repr=False)

    QUOTA_LINES_KEPT = 10_000  # sessions remembered; the oldest is forgotten first

    def __post_init__(self) -> None:
        if self.models is None:
            self.models = ModelList(self.base_url, self.server_token)

    @property
    def site(self) -> config.Site:
        """The ModelScope website of the API host (token and account pages in messages)."""
        return config.site_for(self.base_url)

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
            max_chats_per_user=_env_int(CHATS_IN_FLIGHT_ENV, 2) or 2,
            max_images_per_user=_env_int(IMAGES_IN_FLIGHT_ENV, 2) or 2,
        )

    # ------------------------------------------------------------------ who is calling

    def identify(self, session: str, stored_id) -> str:
        """The student id for a page session: the browser's stored id if it is one of ours,
        else a new random one (which the caller stores in the browser)."""
        student = stored_id if isinstance(stored_id, str) and STUDENT_ID.fullmatch(stored_id) else None
        student = student or secrets.token_urlsafe(16)
        self.students[session] = student
        return student

    def student_of(self, request) -> str:
        """Whom a call on the shared token is counted for: the session's browser id, or the
        one shared PROGRAMS student for callers that never loaded the page."""
        return self.students.get(session_id(request)) or PROGRAMS

    def settle(self, err: BaseException, source: str, student: str, started: bool = False) -> None:
        """After a call on the shared token failed with `err`: give it back to the class cap
        if it never reached the server (see reached_server)."""
        if source == SOURCE_SERVER and not reached_server(err, started):
            self.guard.give_back(student)

    def forget_session(self, session: str) -> None:
        """A page session ended: drop what was remembered for it."""
        self.students.pop(session)
        self.session_tokens.pop(session)
        with self._quota_lock:
            self._quota_lines.pop(session, None)
        for hook in self.on_session_end:
            hook(session)

    def __repr__(self) -> str:
        return (f"AppContext(base_url={self.base_url!r}, server_token="
                f"{config.fingerprint(self.server_token)}, offline={self.offline})")

    def token_for(self, session_token: str | None, request) -> tuple[str | None, str]:
        """(token, source) for one call; `request` is the handler's gr.Request (or None)."""
        header = header_token(getattr(request, "headers", None))
        if header:
            return header, SOURCE_HEADER
        if session_token and str(session_token).strip():
            return str(session_token).strip(), SOURCE_SESSION
        if self.server_token:
            return self.server_token, SOURCE_SERVER
        return None, SOURCE_NONE


def header_token(headers) -> str | None:
    """The X-ModelScope-Token header's token (stripped), or None; any headers object."""
    try:
        value = (headers or {}).get(TOKEN_HEADER) or (headers or {}).get("X-ModelScope-Token")
    except AttributeError:
        return None
    return value.strip() if isinstance(value, str) and value.strip() else None


def session_id(request) -> str:
    return getattr(request, "session_hash", None) or "anonymous"
