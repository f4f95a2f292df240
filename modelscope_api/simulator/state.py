"""The simulator's state: tokens, quota counters, tasks, faults and the request log.

Everything here is guarded by one lock, so the HTTP app (event-loop thread) and the test
thread can use it at the same time. Raw tokens are never stored: tokens are kept and
compared by `config.fingerprint(token)`.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .. import catalog, wire
from ..config import fingerprint

# Fault names (see the package docstring for what each does).
FAULTS = (
    "500",
    "502",
    "429",
    "slow_first_token",
    "stream_cut",
    "malformed_chunk",
    "task_failed",
    "spurious_failed",
    "task_never_finishes",
    "image_404",
    "task_not_found",
    # replies quoted from other clients' captures of the real service (protocol page)
    "task_canceled",
    "task_unknown",
    "task_failed_flat",
    "task_failed_error",
    "hollow_reply",
    "hollow_chunks",
    "thinking_alt_wording",
    "unbound_inner_id",
    "bare_400",
    "no_quota_headers",
)
SCOPES = ("chat", "images", "task", "download", "models")
REQUEST_FAULTS = frozenset({"500", "502", "429", "unbound_inner_id", "bare_400"})
STREAM_FAULTS = frozenset({"slow_first_token", "stream_cut", "malformed_chunk"})
# How a task ends, chosen by the submit that consumes the fault: (status, error body key).
TASK_ENDINGS = {
    "task_failed": (wire.STATUS_FAILED, "errors"),
    "task_failed_flat": (wire.STATUS_FAILED, "error_message"),
    "task_failed_error": (wire.STATUS_FAILED, "error"),
    "task_canceled": (wire.STATUS_CANCELED, None),
    "task_unknown": (wire.STATUS_UNKNOWN, None),
}
SUBMIT_FAULTS = frozenset({*TASK_ENDINGS, "spurious_failed", "task_never_finishes", "image_404"})
POLL_FAULTS = frozenset({"task_not_found"})

BEHAVIORS = ("ok", "unbound", "unverified", "quota", "invalid")
ACCEPTED_PREFIXES = ("ms-test-", "ms-offline-")
# Built-in tokens (public test strings, not secrets).
TEST_TOKENS = {
    "ok": "ms-test-student",
    "unbound": "ms-test-unbound",
    "unverified": "ms-test-unverified",
    "quota": "ms-test-quota",
    "invalid": "ms-invalid-token",
}
_BUILTIN_BEHAVIOR = {fingerprint(TEST_TOKENS[b]): b for b in ("unbound", "unverified", "quota")}


@dataclass
class SimConfig:
    """Tunable behaviour. Change at run time with `Simulator.set_config(**fields)`."""

    task_seconds: float = 3.0  # how long an image task runs
    ttft: float = 0.3  # seconds before the first streamed token
    tokens_per_second: float = 80.0
    slow_ttft: float = 8.0  # ttft under the slow_first_token fault
    pending_fraction: float = 0.2  # first part of a task reads PENDING
    requests_limit: int = 2000  # per token per day
    model_requests_limit: int = 500  # per token per model per day
    extra_models: tuple[str, ...] = ()  # accepted for chat and images besides the catalog
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    log_level: str = "warning"
    max_log: int = 20000  # oldest log entries are dropped beyond this

    def chat_models(self) -> set[str]:
        return {*catalog.CHAT_MODELS, *catalog.VISION_MODELS, *self.extra_models}

    def image_models(self) -> set[str]:
        return {*catalog.IMAGE_MODELS, *catalog.EDIT_MODELS, *self.extra_models}


class CIDict(dict):
    """A dict of header names to values whose lookups ignore case (keys stored lower-case)."""

    def __init__(self, items=()):
        super().__init__((str(k).lower(), v) for k, v in dict(items).items())

    def __getitem__(self, key):
        return super().__getitem__(str(key).lower())

    def __contains__(self, key):
        return super().__contains__(str(key).lower())

    def get(self, key, default=None):
        return super().get(str(key).lower(), default)


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict
    headers: dict  # case-insensitive; Authorization holds "Bearer <fingerprint>"
    token_fingerprint: str | None  # None when no Authorization header was sent
    json: Any  # the parsed JSON body, or None
    time: float
    status: int | None = None  # filled in when the response starts

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["headers"] = dict(self.headers)
        return d


@dataclass
class Fault:
    name: str
    token_fp: str | None
    times: int | None
    scope: str | None


@dataclass
class Task:
    id: str
    owner: str  # token fingerprint
    model: str
    params: dict  # the "input" the poll reports
    created: float
    duration: float
    faults: frozenset[str]
    input_image: bytes | None = None  # decoded data: URL to edit
    input_file: str | None = None  # or a simulator-served file to edit
    files: list[str] = field(default_factory=list)
    spurious_done: bool = False
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def end(self) -> float | None:
        if "task_never_finishes" in self.faults:
            return None
        return self.created + self.duration

    @property
    def ending(self) -> tuple[str, str | None] | None:
        """(final status, where its reason goes) for a task that does not succeed, else None."""
        for name in sorted(self.faults):
            if name in TASK_ENDINGS:
                return TASK_ENDINGS[name]
        return None

    @property
    def failed(self) -> bool:
        return self.ending is not None


def new_request_id() -> str:
    return str(uuid.uuid4())


class SimState:
    def __init__(self, config: SimConfig | None = None):
        self._lock = threading.RLock()
        self.config = config or SimConfig()
        self._tokens: dict[str, str] = {}  # fingerprint -> behavior
        self._faults: list[Fault] = []
        self._log: list[LoggedRequest] = []
        self._tasks: dict[str, Task] = {}
        self._files: dict[str, str] = {}  # file name -> task id
        self._usage: dict[tuple, int] = {}
        self._task_ids = itertools.count(int(time.time()) % 1_000_000 * 1000 + 1)

    # ---- config ---------------------------------------------------------------------------
    def set_config(self, **fields: Any) -> SimConfig:
        names = {f.name for f in dataclasses.fields(SimConfig)}
        unknown = set(fields) - names
        if unknown:
            raise ValueError(f"unknown SimConfig field(s): {sorted(unknown)}")
        if "extra_models" in fields:
            fields["extra_models"] = tuple(fields["extra_models"] or ())
        with self._lock:
            self.config = dataclasses.replace(self.config, **fields)
            return self.config

    # ---- tokens ---------------------------------------------------------------------------
    def add_token(self, token: str, behavior: str = "ok") -> None:
        if behavior not in BEHAVIORS:
            raise ValueError(f"behavior must be one of {BEHAVIORS}, got {behavior!r}")
        if not token:
            raise ValueError("token must be non-empty")
        with self._lock:
            self._tokens[fingerprint(token)] = behavior

    def behavior(self, token: str | None) -> str:
        """'ok', 'unbound', 'unverified', 'quota' or 'invalid' for a raw token."""
        if not token:
            return "invalid"
        fp = fingerprint(token)
        with self._lock:
            found = self._tokens.get(fp)
        if found:
            return found
        if fp in _BUILTIN_BEHAVIOR:
            return _BUILTIN_BEHAVIOR[fp]
        return "ok" if token.startswith(ACCEPTED_PREFIXES) else "invalid"

    # ---- quota ----------------------------------------------------------------------------
    def _quota_headers(self, user_used: int, model_used: int) -> dict[str, str]:
        cfg = self.config
        return {
            wire.RATELIMIT_REQUESTS_LIMIT: str(cfg.requests_limit),
            wire.RATELIMIT_REQUESTS_REMAINING: str(max(0, cfg.requests_limit - user_used)),
            wire.RATELIMIT_MODEL_REQUESTS_LIMIT: str(cfg.model_requests_limit),
            wire.RATELIMIT_MODEL_REQUESTS_REMAINING: str(
                max(0, cfg.model_requests_limit - model_used)
            ),
        }

    def count_request(self, fp: str, model: str, *, count: bool = True) -> tuple[bool, dict]:
        """Count one call; (allowed, ratelimit headers). Not allowed (and not counted) when a
        remaining count is already 0. count=False only reads the headers."""
        day = time.strftime("%Y-%m-%d")
        ukey, mkey = (fp, day), (fp, str(model), day)
        with self._lock:
            cfg = self.config
            used, mused = self._usage.get(ukey, 0), self._usage.get(mkey, 0)
            if used >= cfg.requests_limit or mused >= cfg.model_requests_limit:
                return False, self._quota_headers(used, mused)
            if count:
                used, mused = used + 1, mused + 1
                self._usage[ukey], self._usage[mkey] = used, mused
            return True, self._quota_headers(used, mused)

    def exhausted_headers(self) -> dict:
        with self._lock:
            cfg = self.config
            return self._quota_headers(cfg.requests_limit, cfg.model_requests_limit)

    def reset_quota(self) -> None:
        with self._lock:
            self._usage.clear()

    # ---- faults ---------------------------------------------------------------------------
    def inject(
        self,
        fault: str,
        *,
        token: str | None = None,
        times: int | None = 1,
        scope: str | None = None,
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES} or None, got {scope!r}")
        if times is not None and int(times) < 1:
            raise ValueError("times must be >= 1, or None for forever")
        with self._lock:
            self._faults.append(
                Fault(
                    fault,
                    fingerprint(token) if token else None,
                    None if times is None else int(times),
                    scope,
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict]:
        with self._lock:
            return [dataclasses.asdict(f) for f in self._faults]

    def take_fault(
        self,
        names: frozenset[str] | set[str],
        scopes: tuple[str, ...],
        fp: str | None,
        *,
        unscoped: bool = True,
    ) -> str | None:
        """Consume the first pending fault named in `names` that applies to this request."""
        with self._lock:
            for f in self._faults:
                if f.name not in names:
                    continue
                if f.scope is None and not unscoped:
                    continue
                if f.scope is not None and f.scope not in scopes:
                    continue
                if f.token_fp is not None and f.token_fp != fp:
                    continue
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                return f.name
        return None

    # ---- log ------------------------------------------------------------------------------
    def log_request(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)
            overflow = len(self._log) - self.config.max_log
            if overflow > 0:
                del self._log[:overflow]

    def set_status(self, entry: LoggedRequest, status: int) -> None:
        with self._lock:
            entry.status = status

    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return [dataclasses.replace(e, headers=CIDict(e.headers)) for e in self._log]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # ---- tasks ----------------------------------------------------------------------------
    def create_task(
        self,
        owner: str,
        model: str,
        params: dict,
        faults: frozenset[str],
        input_image: bytes | None = None,
        input_file: str | None = None,
    ) -> Task:
        with self._lock:
            task_id = str(next(self._task_ids))
            task = Task(
                id=task_id,
                owner=owner,
                model=model,
                params=params,
                created=time.time(),
                duration=max(0.0, float(self.config.task_seconds)),
                faults=faults,
                input_image=input_image,
                input_file=input_file,
            )
            name = f"{uuid.uuid4().hex}.png"
            task.files.append(name)
            self._files[name] = task_id
            self._tasks[task_id] = task
            return task

    def task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(str(task_id))

    def task_for_file(self, name: str) -> Task | None:
        with self._lock:
            task_id = self._files.get(name)
            return self._tasks.get(task_id) if task_id else None

    def task_finished_at(self, task_id: str) -> float | None:
        """When the task reached SUCCEED (or FAILED); None while running, if it never ends,
        or if unknown."""
        task = self.task(task_id)
        if task is None or task.end is None or time.time() < task.end:
            return None
        return task.end

    def poll(self, task_id: str, fp: str, base_url: str) -> dict | None:
        """The poll body for this task, or None if the token has no such task."""
        now = time.time()
        with self._lock:
            task = self._tasks.get(str(task_id))
            if task is None or task.owner != fp:
                return None
            if "spurious_failed" in task.faults and not task.spurious_done:
                task.spurious_done = True
                return _failed_body(task, "InternalError", "Task failed, please retry.")
            elapsed = now - task.created
            end = task.end
            if end is not None and now >= end:
                if task.ending is not None:
                    return _ended_body(task, *task.ending)
                return {
                    "task_status": wire.STATUS_SUCCEED,
                    "output_images": [f"{base_url}_sim/files/{name}" for name in task.files],
                    "time_taken": round(task.duration * 1000 + int(task.id) % 97 / 10, 1),
                    "input": dict(task.params),
                    "request_id": new_request_id(),
                    "task_id": "",
                }
            pending = elapsed < task.duration * self.config.pending_fraction
            if pending:
                return {
                    "task_status": wire.STATUS_PENDING,
                    "outputs": {},
                    "task_id": task.id,
                    "request_id": new_request_id(),
                }
            status = wire.STATUS_RUNNING
            if end is not None and elapsed >= task.duration * 0.6:
                status = wire.STATUS_PROCESSING
            return {"task_status": status, "outputs": {}, "task_id": "", "request_id": ""}


def _ended_body(task: Task, status: str, reason_key: str | None) -> dict:
    """A task that ended without an image. FAILED carries its reason in one of the shapes
    seen from the real service; CANCELED and UNKNOWN carry none."""
    if reason_key is None:
        return {"task_status": status, "outputs": {}, "request_id": new_request_id(), "task_id": task.id}
    if reason_key == "error_message":
        return {"task_status": status, "error_message": wire.MSG_INAPPROPRIATE, "error_code": 422,
                "outputs": {}, "request_id": new_request_id(), "task_id": task.id}
    if reason_key == "error":
        return {"task_status": status, "outputs": {}, "task_id": task.id,
                "error": {"code": "DataInspectionFailed", "message": wire.MSG_INAPPROPRIATE,
                          "request_id": new_request_id()}}
    return _failed_body(task, 422, wire.MSG_INAPPROPRIATE)


def _failed_body(task: Task, code: Any, message: str) -> dict:
    return {
        "task_status": wire.STATUS_FAILED,
        "errors": {"code": code, "message": message},
        "outputs": {},
        "request_id": new_request_id(),
        "task_id": task.id,
    }
