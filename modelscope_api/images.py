"""Text-to-image and image editing: validate → build the body → submit → poll → download.

The pure steps (`ImageRequest.validate`, `build_payload`, `parse_submit`, `parse_task`,
`PollSchedule`) are separate from the I/O loop in `ImageClient`, so they can be tested
without a server. The loop only sleeps, asks and hands over.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import catalog, wire
from .checks import IMAGE_URL_MAX_CHARS, MODEL_ID_MAX_CHARS, check_number, check_text
from .config import Settings
from .errors import (
    APIConnectionError,
    ImageDownloadError,
    MissingTokenError,
    ModelScopeError,
    TaskCanceledByServerError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatusUnknownError,
    TaskTimeoutError,
    ValidationError,
    error_from_response,
    parse_error_body,
)
from .quota import Quota

LoraInput = str | Mapping[str, float] | Sequence[tuple[str, float | None]] | None


# Bounds beyond the official table (the shared ones are in checks): a LoRA id is a short
# repo name, a LoRA table a handful of rows, an edit a handful of pictures.
LORA_ID_MAX_CHARS = 200
LORA_ROWS_MAX = 50
IMAGE_URLS_MAX = 6

# --------------------------------------------------------------------------- request


def parse_size(size: str) -> tuple[int, int]:
    """"1024x768" → (1024, 768). Anything else (e.g. "16:9") raises ValidationError."""
    text = str(size).strip().lower().replace("×", "x").replace("*", "x")
    parts = text.split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValidationError("size", size, 'two whole numbers as "WIDTHxHEIGHT", e.g. "1024x1024"')
    return int(parts[0]), int(parts[1])


def lora_items(loras: LoraInput) -> list[tuple[str, float | None]]:
    """Any accepted LoRA form → [(repo_id, weight)], dropping rows whose id is blank.

    Accepts the wire forms ("id" or {"id": w}) and table rows [(id, w), …] (w may be None
    or a numeric string, as a Dataframe gives them).
    """
    if loras is None:
        return []
    if isinstance(loras, str):
        check_text("loras", loras, required=False, max_chars=LORA_ID_MAX_CHARS)
        return [(loras.strip(), None)] if loras.strip() else []
    if not isinstance(loras, (Mapping, list, tuple)):
        raise ValidationError("loras", loras, 'a LoRA repo id, or {"owner/name": weight, …}', kind="type")
    rows = list(loras.items() if isinstance(loras, Mapping) else loras)
    if len(rows) > LORA_ROWS_MAX:  # a table may carry blank rows, but not thousands
        raise ValidationError("loras", f"{len(rows)} rows", f"at most {wire.LORAS_MAX} LoRAs",
                              kind="too_many", limit=wire.LORAS_MAX)
    items: list[tuple[str, float | None]] = []
    for row in rows:
        if isinstance(row, str):
            repo, weight = row, None
        elif isinstance(row, (list, tuple)):
            row = list(row) + [None, None]
            repo, weight = row[0], row[1]
        else:
            raise ValidationError("loras", row, "rows of a LoRA repo id and a weight", kind="type")
        if repo is not None and not isinstance(repo, str):
            raise ValidationError("loras", repo, 'a LoRA repo id like "owner/name"', kind="type")
        repo = check_text("loras", repo or "", required=False, max_chars=LORA_ID_MAX_CHARS).strip()
        if isinstance(weight, str):
            weight = weight.strip() or None
        if not repo:
            if weight not in (None, "", 0) and not _is_nan(weight):
                raise ValidationError("loras", weight, "a LoRA repo id for every weight")
            continue
        if weight is not None and not _is_nan(weight):
            if isinstance(weight, str):  # a Dataframe cell; not a number stays text and is refused
                try:
                    weight = float(weight)
                except ValueError:
                    pass
            # any sane number here (normalise scales them); the 0-1 rule is validate()'s
            check_number(f"loras[{repo}].weight", weight, -1e9, 1e9, allowed="a number between 0 and 1")
            weight = float(weight)
        else:
            weight = None
        items.append((repo, weight))
    return items


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def normalize_lora_weights(loras: LoraInput, decimals: int = 4) -> list[tuple[str, float]]:
    """Scale the weights so they sum to exactly 1.0 (missing weights count as equal shares)."""
    items = lora_items(loras)
    if not items:
        return []
    if any(w is not None and w < 0 for _, w in items):
        raise ValidationError("loras", [w for _, w in items], "weights of 0 or more")
    weights = [1.0 if w is None else w for _, w in items]
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(items), float(len(items))
    scaled = [round(w / total, decimals) for w in weights]
    # put the rounding remainder on the largest weight so the sum is exactly 1.0
    biggest = max(range(len(scaled)), key=scaled.__getitem__)
    scaled[biggest] = round(1.0 - (sum(scaled) - scaled[biggest]), decimals)
    return [(repo, w) for (repo, _), w in zip(items, scaled)]


def _check_range(name: str, value: Any, lo, hi, kind: type) -> None:
    what = "a whole number" if kind is int else "a number"
    check_number(name, value, lo, hi, whole=kind is int, allowed=f"{what} from {lo} to {hi}")


def _check_image_url(url: Any) -> None:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("image_url", url, "an http(s) URL or a data:image/… URL", kind="type")
    if len(url) > IMAGE_URL_MAX_CHARS:
        raise ValidationError("image_url", f"{len(url)} characters", "a picture of at most 10 MB",
                              kind="too_long", limit=IMAGE_URL_MAX_CHARS)
    u = check_text("image_url", url).strip()
    if u.startswith("data:"):
        if not u.startswith("data:image/") or ";base64," not in u:
            raise ValidationError("image_url", u, "a data:image/…;base64,… URL")
        return
    from urllib.parse import urlparse

    parsed = urlparse(u)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or " " in u:
        raise ValidationError("image_url", u, "an http(s) URL or a data:image/… URL")


@dataclass
class ImageRequest:
    """One text-to-image (or edit) request, in the wire's own terms."""

    model: str
    prompt: str
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    loras: LoraInput = None
    image_url: str | Sequence[str] | None = None

    @property
    def size(self) -> str | None:
        if self.width is None and self.height is None:
            return None
        return f"{self.width}x{self.height}"

    @property
    def family(self) -> catalog.ImageFamily:
        return catalog.image_family(self.model)

    def image_urls(self) -> list[str]:
        if self.image_url is None:
            return []
        if isinstance(self.image_url, str):
            urls: list[Any] = [self.image_url]
        elif isinstance(self.image_url, (list, tuple)):
            urls = list(self.image_url)
        else:
            raise ValidationError("image_url", self.image_url, "an http(s) URL or a list of them", kind="type")
        if len(urls) > IMAGE_URLS_MAX:
            raise ValidationError("image_url", f"{len(urls)} images", f"at most {IMAGE_URLS_MAX} images",
                                  kind="too_many", limit=IMAGE_URLS_MAX)
        return [u for u in urls if u is not None and (not isinstance(u, str) or u.strip())]

    def validate(self) -> None:
        """Raise ValidationError for the first rule broken; nothing is sent before this passes."""
        check_text("model", self.model, max_chars=MODEL_ID_MAX_CHARS,
                   allowed="a ModelScope model id such as Qwen/Qwen-Image")
        check_text("prompt", self.prompt, allowed="a non-empty text")
        check_text("negative_prompt", self.negative_prompt, required=False)
        for name, text in (("prompt", self.prompt), ("negative_prompt", self.negative_prompt)):
            if text is not None and len(text) >= wire.PROMPT_MAX_CHARS:
                raise ValidationError(
                    name, f"{len(text)} characters",
                    f"fewer than {wire.PROMPT_MAX_CHARS} characters",
                    kind="too_long", limit=wire.PROMPT_MAX_CHARS - 1,
                )
        if self.width is not None or self.height is not None:
            fam = self.family
            for name, side in (("width", self.width), ("height", self.height)):
                try:
                    _check_range(name, side, fam.min_side, fam.max_side, int)
                except ValidationError:
                    raise ValidationError(
                        name, side,
                        f"{fam.min_side} to {fam.max_side} pixels for {fam.name} models "
                        f"(size {fam.size_range})",
                    ) from None
        if self.seed is not None:
            _check_range("seed", self.seed, wire.SEED_MIN, wire.SEED_MAX, int)
        if self.steps is not None:
            _check_range("steps", self.steps, wire.STEPS_MIN, wire.STEPS_MAX, int)
        if self.guidance is not None:
            _check_range("guidance", self.guidance, wire.GUIDANCE_MIN, wire.GUIDANCE_MAX, float)
        self._validate_loras()
        for url in self.image_urls():
            _check_image_url(url)
        if catalog.is_edit_model(self.model) and not self.image_urls():
            raise ValidationError("image_url", None, f"at least one image to edit for {self.model}")

    def _validate_loras(self) -> None:
        items = lora_items(self.loras)
        if len(items) > wire.LORAS_MAX:
            raise ValidationError("loras", f"{len(items)} LoRAs", f"at most {wire.LORAS_MAX}")
        ids = [repo for repo, _ in items]
        if len(set(ids)) != len(ids):
            raise ValidationError("loras", ids, "each LoRA at most once")
        for repo, weight in items:
            if "/" not in repo or repo.startswith("/") or repo.endswith("/") or " " in repo:
                raise ValidationError("loras", repo, 'a LoRA repo id like "owner/name"')
            if weight is not None and not (0 < weight <= 1):
                raise ValidationError(f"loras[{repo}].weight", weight, "more than 0 and at most 1")
        if len(items) > 1:
            if any(w is None for _, w in items):
                raise ValidationError("loras", "a missing weight", "a weight for every LoRA")
            total = sum(w for _, w in items)
            if abs(total - wire.LORA_WEIGHT_SUM) > wire.LORA_WEIGHT_TOLERANCE:
                raise ValidationError(
                    "loras", f"weights summing to {total:g}",
                    "weights that sum to 1.0 (use normalise)",
                )

    def to_payload(self) -> dict[str, Any]:
        return build_payload(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loras"] = wire_loras(self.loras)
        d["image_url"] = [_short_url(u) for u in self.image_urls()] or None
        return d


def _short_url(url: str) -> str:
    """data: URLs are shortened for records and logs (they can be megabytes)."""
    return url if not url.startswith("data:") or len(url) < 120 else url[:60] + f"…({len(url)} chars)"


def wire_loras(loras: LoraInput) -> str | dict[str, float] | None:
    """One LoRA is sent as a plain string; several as {id: weight}."""
    items = lora_items(loras)
    if not items:
        return None
    if len(items) == 1:
        return items[0][0]
    return {repo: float(w) for repo, w in items}


def build_payload(req: ImageRequest) -> dict[str, Any]:
    """The JSON body for POST /v1/images/generations (validates first; pure)."""
    req.validate()
    body: dict[str, Any] = {"model": req.model.strip(), "prompt": req.prompt}
    if req.negative_prompt:
        body["negative_prompt"] = req.negative_prompt
    if req.size:
        body["size"] = req.size
    if req.seed is not None:
        body["seed"] = int(req.seed)
    if req.steps is not None:
        body["steps"] = int(req.steps)
    if req.guidance is not None:
        body["guidance"] = float(req.guidance)
    loras = wire_loras(req.loras)
    if loras is not None:
        body["loras"] = loras
    urls = req.image_urls()
    if urls:
        body["image_url"] = urls[0] if len(urls) == 1 else urls
    return body


def submit_headers(token: str) -> dict[str, str]:
    return {
        wire.AUTHORIZATION: f"Bearer {token}",
        "Content-Type": "application/json",
        wire.ASYNC_MODE_HEADER: "true",
    }


def task_headers(token: str) -> dict[str, str]:
    return {wire.AUTHORIZATION: f"Bearer {token}", wire.TASK_TYPE_HEADER: wire.TASK_TYPE_IMAGE}


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class Submission:
    task_id: str
    request_id: str | None
    quota: Quota | None = None


@dataclass(frozen=True)
class TaskState:
    status: str  # the server's word, upper-cased (UNKNOWN when the body named none)
    image_urls: tuple[str, ...] = ()
    request_id: str | None = None
    time_taken_ms: float | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    error_code: Any = None

    @property
    def running(self) -> bool:
        """Only PENDING / RUNNING / PROCESSING mean "keep polling"."""
        return self.status in wire.RUNNING_STATUSES

    @property
    def done(self) -> bool:
        return self.status == wire.STATUS_SUCCEED

    @property
    def failed(self) -> bool:
        return self.status == wire.STATUS_FAILED

    @property
    def canceled(self) -> bool:
        return self.status in wire.CANCELED_STATUSES


def parse_submit(body: Any) -> Submission:
    """Read the submit answer. Its task_status "SUCCEED" only means *submitted*."""
    if not isinstance(body, Mapping) or body.get("task_id") in (None, ""):
        raise ModelScopeError(f"the server accepted the request but sent no task id: {body!r}")
    return Submission(str(body["task_id"]), body.get("request_id") or None)


def parse_task(body: Any) -> TaskState:
    """Read a GET /v1/tasks/{id} answer (pure)."""
    if not isinstance(body, Mapping):
        raise ModelScopeError(f"unreadable task status: {body!r}")
    status = str(body.get("task_status") or "").strip().upper() or wire.STATUS_UNKNOWN
    urls = body.get("output_images") or []
    if isinstance(urls, str):
        urls = [urls]
    message, code, request_id = failure_reason(body)
    taken = body.get("time_taken")
    try:
        taken = float(taken) if taken is not None else None
    except (TypeError, ValueError):
        taken = None
    inputs = body.get("input") if isinstance(body.get("input"), Mapping) else {}
    return TaskState(
        status=status,
        image_urls=tuple(str(u) for u in urls if u),
        request_id=request_id,
        time_taken_ms=taken,
        inputs=dict(inputs),
        error_message=message,
        error_code=code,
    )


def failure_reason(body: Mapping[str, Any]) -> tuple[str | None, Any, str | None]:
    """(reason, code, request_id) of a task body, wherever the reason sits: `errors.message`,
    `error.message` (both read by errors.parse_error_body, as for any error body) or a flat
    `error_message` (pure)."""
    message, code, request_id = parse_error_body(body)
    if not message and body.get("error_message"):
        message = str(body["error_message"])
        code = body.get("error_code") if code is None else code
    return message, code, request_id


@dataclass(frozen=True)
class PollSchedule:
    """Adaptive poll interval: quick at first (most tasks take a few seconds), then slower.

    Defaults: ≤ 0.5 s between polls for the first ~3 s (9 polls), growing 8 % a poll to a 3 s cap
    (reached after ~40 s), so a quick task is seen at once and a slow one costs few calls.
    """

    initial: float = 0.25
    factor: float = 1.08
    maximum: float = 3.0

    def interval(self, poll_index: int) -> float:
        return min(self.maximum, self.initial * self.factor**poll_index)


# A FAILED seen this soon after submit is checked once more (seen to be spurious).
FAILED_RECHECK_WINDOW_S = 5.0
DEFAULT_TIMEOUT_S = 300.0


@dataclass
class GeneratedImage:
    data: bytes  # the original bytes as served, never re-encoded
    url: str
    content_type: str | None = None

    @property
    def extension(self) -> str:
        ct = (self.content_type or "").split(";")[0].strip().lower()
        by_type = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
        if ct in by_type:
            return by_type[ct]
        sig = self.data[:12]
        if sig.startswith(b"\x89PNG"):
            return "png"
        if sig.startswith(b"\xff\xd8"):
            return "jpg"
        if sig[:4] == b"RIFF" and sig[8:12] == b"WEBP":
            return "webp"
        return "png"


@dataclass
class StatusUpdate:
    """What a progress bar needs, handed to `on_status` after submit and each poll."""

    task_id: str
    status: str
    elapsed: float
    polls: int
    request_id: str | None = None


@dataclass
class ImageResult:
    request: ImageRequest
    task_id: str
    request_id: str | None
    images: list[GeneratedImage]
    time_taken_ms: float | None
    seed: int | None
    parameters: dict[str, Any]  # what the server says it used (its "input"), else what we sent
    quota: Quota | None
    polls: int
    elapsed: float

    def to_record(self) -> dict[str, Any]:
        """JSON-safe metadata (no image bytes, no token)."""
        return {
            "task_id": self.task_id,
            "request_id": self.request_id,
            "model": self.request.model,
            "seed": self.seed,
            "size": self.parameters.get("size") or self.request.size,
            "time_taken_ms": self.time_taken_ms,
            "polls": self.polls,
            "elapsed_s": round(self.elapsed, 3),
            "image_urls": [img.url for img in self.images],
            "request": self.request.to_dict(),
            "parameters": {k: v for k, v in self.parameters.items() if k != "image_url"},
        }


# --------------------------------------------------------------------------- I/O


def make_session(retries: int = 3, pool_size: int = 64) -> requests.Session:
    """A Session whose GETs (polls, downloads) retry transient faults with backoff.

    POST is not in allowed_methods: a submit is never blindly repeated (it would make a
    second task and spend quota). Connection failures before a request is sent are retried
    for every method, which is safe.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.25,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=8, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_shared_session: requests.Session | None = None
_shared_lock = threading.Lock()


def shared_session() -> requests.Session:
    """One pooled session per process (tokens travel per request, never on the session)."""
    global _shared_session
    with _shared_lock:
        if _shared_session is None:
            _shared_session = make_session()
        return _shared_session


def _json_or_text(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text


class ImageClient:
    """Submit, poll and download. Thread-safe; one instance may serve many users."""

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        request_timeout: float = 30.0,
        schedule: PollSchedule = PollSchedule(),
        sleep: Callable[[float], None] | None = None,
    ):
        self.settings = Settings.resolve(token, base_url)
        self.session = session or shared_session()
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.schedule = schedule
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ImageClient({self.settings!r})"

    def _token(self) -> str:
        if not self.settings.token:
            raise MissingTokenError("No ModelScope token was given.")
        return self.settings.token

    def _url(self, path: str) -> str:
        return self.settings.base_url + path

    def _call(self, method: str, url: str, **kw) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=self.request_timeout, **kw)
        except requests.exceptions.RetryError as exc:
            raise APIConnectionError(f"gave up after retries: {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise APIConnectionError(f"could not reach {url.split('?')[0]}: {type(exc).__name__}") from exc

    def submit(self, req: ImageRequest) -> Submission:
        payload = build_payload(req)  # validates before anything is sent
        resp = self._call(
            "POST", self._url(wire.IMAGES_PATH),
            json=payload, headers=submit_headers(self._token()),
        )
        quota = Quota.from_headers(resp.headers)
        body = _json_or_text(resp)
        if resp.status_code >= 400:
            raise error_from_response(resp.status_code, body, resp.headers)
        sub = parse_submit(body)
        return Submission(sub.task_id, sub.request_id, quota)

    def get_task(self, task_id: str) -> TaskState:
        resp = self._call(
            "GET", self._url(wire.TASK_PATH.format(task_id=task_id)),
            headers=task_headers(self._token()),
        )
        body = _json_or_text(resp)
        if resp.status_code >= 400:
            err = error_from_response(resp.status_code, body, resp.headers)
            if resp.status_code == 404 or wire.MSG_TASK_NOT_FOUND in err.message.lower():
                raise TaskNotFoundError(
                    f"task {task_id} not found: {err.message}", task_id=task_id,
                    status=err.status, request_id=err.request_id, code=err.code, body=err.body,
                ) from None
            raise err
        return parse_task(body)

    def download(self, url: str, task_id: str | None = None) -> GeneratedImage:
        # Output URLs are public and expire: fetch at once, without our token.
        try:
            resp = self._call("GET", url)
        except APIConnectionError as exc:
            raise ImageDownloadError(f"no connection: {exc.message}",
                                     task_id=task_id, url=url) from exc
        if resp.status_code >= 400:
            err = error_from_response(resp.status_code, _json_or_text(resp), resp.headers)
            raise ImageDownloadError(
                f"HTTP {resp.status_code}: {err.message}",
                task_id=task_id, url=url, status=resp.status_code, request_id=err.request_id,
            )
        return GeneratedImage(resp.content, url, resp.headers.get("Content-Type"))

    def wait(
        self,
        submission: Submission,
        *,
        on_status: Callable[[StatusUpdate], None] | None = None,
        cancel: threading.Event | None = None,
        timeout: float | None = None,
        started: float | None = None,
    ) -> tuple[TaskState, int]:
        """Poll while the task is running; returns (final state, polls used) on SUCCEED and
        raises at once for any other final word (see `task_error`)."""
        task_id = submission.task_id
        timeout = self.timeout if timeout is None else timeout
        start = time.monotonic() if started is None else started
        polls = 0
        rechecked = False
        while True:
            elapsed = time.monotonic() - start
            delay = self.schedule.interval(polls)
            if elapsed + delay > timeout:
                raise TaskTimeoutError(
                    f"task {task_id} did not finish within {timeout:g} s", task_id=task_id,
                    request_id=submission.request_id, quota=submission.quota,
                )
            if self._wait(delay, cancel):
                raise TaskCancelledError(f"task {task_id} cancelled", task_id=task_id)
            state = self.get_task(task_id)
            polls += 1
            elapsed = time.monotonic() - start
            if on_status:
                on_status(StatusUpdate(task_id, state.status, elapsed, polls, submission.request_id))
            if state.running:
                continue
            if state.done:
                return state, polls
            if state.failed and not rechecked and elapsed < FAILED_RECHECK_WINDOW_S:
                rechecked = True  # an early FAILED has been seen to be spurious
                continue
            raise task_error(state, task_id, submission.request_id, submission.quota)

    def _wait(self, seconds: float, cancel: threading.Event | None) -> bool:
        """Sleep; True if cancelled meanwhile."""
        if self._sleep is not None:
            self._sleep(seconds)
            return bool(cancel and cancel.is_set())
        if cancel is not None:
            return cancel.wait(seconds)
        time.sleep(seconds)
        return False

    def generate(
        self,
        req: ImageRequest,
        *,
        on_status: Callable[[StatusUpdate], None] | None = None,
        cancel: threading.Event | None = None,
        timeout: float | None = None,
    ) -> ImageResult:
        """The whole flow; raises a ModelScopeError subclass on any failure."""
        start = time.monotonic()
        submission = self.submit(req)
        if on_status:
            on_status(StatusUpdate(submission.task_id, wire.STATUS_SUBMITTED, 0.0, 0,
                                   submission.request_id))
        state, polls = self.wait(
            submission, on_status=on_status, cancel=cancel, timeout=timeout, started=start
        )
        if not state.image_urls:
            raise TaskFailedError("the task finished without an image", task_id=submission.task_id)
        images = [self.download(u, submission.task_id) for u in state.image_urls]
        params = dict(state.inputs) or dict(build_payload(req))
        seed = _int_or_none(params.get("seed", req.seed))
        return ImageResult(
            request=req,
            task_id=submission.task_id,
            request_id=submission.request_id or state.request_id,
            images=images,
            time_taken_ms=state.time_taken_ms,
            seed=seed,
            parameters=params,
            quota=submission.quota,
            polls=polls,
            elapsed=time.monotonic() - start,
        )


def task_error(state: TaskState, task_id: str, request_id: str | None = None,
               quota: Quota | None = None) -> TaskFailedError:
    """The error for a task that ended in anything but SUCCEED (pure): FAILED with the
    server's reason, CANCELED/CANCEL, or UNKNOWN and any word not known to mean running.
    `quota` is the submit's: the call that spent it."""
    kw = {"task_id": task_id, "task_status": state.status, "code": state.error_code, "quota": quota,
          "request_id": state.request_id or request_id, "status": _int_or_none(state.error_code)}
    if state.failed:
        return TaskFailedError(state.error_message or "the image task failed (no reason given)", **kw)
    if state.canceled:
        return TaskCanceledByServerError(state.error_message or f"task {task_id} was cancelled by the server", **kw)
    return TaskStatusUnknownError(
        state.error_message or f"task {task_id} ended with status {state.status[:40]}", **kw)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
