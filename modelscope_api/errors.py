"""One exception class per meaning, each carrying status, the server's message, the request id,
a one-line hint a student can act on, and the quota headers if the response had them.

Both error body shapes the service uses are read here (and only here):
  {"errors": {"message": ..., "code": ...}, "request_id": ...}
  {"error":  {"message": ..., "code": ..., "type": ...}, "request_id": ...}
and the request id may sit inside the error object instead of beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from . import wire
from .quota import Quota

TOKEN_PAGE = wire.DEFAULT_SITE + wire.TOKEN_PAGE_PATH  # modelscope.ai users: config.site_for()
ACCOUNT_PAGE = wire.DEFAULT_SITE + wire.ACCOUNT_PAGE_PATH  # bind Aliyun, real-name verification


class ModelScopeError(Exception):
    """Base class. `str(err)` is the plain message; `err.hint` says what to do."""

    hint = "Something went wrong talking to ModelScope."

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: Any = None,
        quota: Quota | None = None,
        body: Any = None,
        hint: str | None = None,
        task_id: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id or None
        self.code = code
        self.quota = quota
        self.body = body
        self.task_id = task_id  # image tasks: which task it was, for the message and the log
        if hint is not None:
            self.hint = hint

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"request_id={self.request_id!r})"
        )


class MissingTokenError(ModelScopeError):
    hint = (
        "No ModelScope token. Get one at " + TOKEN_PAGE + " and set MODELSCOPE_ACCESS_TOKEN "
        "(or paste it into the token box)."
    )


class AuthenticationError(ModelScopeError):
    """401: the token is wrong, expired or missing."""

    hint = "The token was refused. Copy a fresh access token from " + TOKEN_PAGE + "."


class AccountNotBoundError(AuthenticationError):
    """401 'Please bind your Alibaba Cloud account before use.'"""

    hint = "Bind your ModelScope account to an Alibaba Cloud (Aliyun) account at " + ACCOUNT_PAGE + "."


class PermissionDeniedError(ModelScopeError):
    """403: typically the Aliyun account is not real-name verified."""

    hint = "Complete real-name verification of the bound Aliyun account (" + ACCOUNT_PAGE + ")."


class RateLimitError(ModelScopeError):
    """429 without rate-limit headers: a limit was hit, but not which (too many at once, or
    the day's quota). The subclasses say which when the headers tell."""

    hint = ("The server is refusing calls for now (a limit was reached). Wait a moment and try again; "
            "if it keeps happening, today's quota may be used up.")


class TooManyRequestsError(RateLimitError):
    """429 while the headers still show calls left today: a burst or concurrency limit."""

    hint = "Too many requests right now. Wait a moment and try again; today's quota is not used up."


class QuotaExhaustedError(RateLimitError):
    """429 with a remaining count of 0: the day's quota, of the user or of this model."""

    hint = "Today's quota is used up (about 2000 calls a day, fewer per model). Try another model or come back tomorrow."

    @property
    def model_only(self) -> bool:
        """True when only this model's daily quota is used up (others still answer)."""
        q = self.quota
        return bool(q and q.model_requests_remaining == 0 and (q.requests_remaining or 0) > 0)


class InvalidRequestError(ModelScopeError):
    """400/422 from the server: a parameter or model id the service does not accept."""

    hint = "The server did not accept a parameter; read its message and change that field."


class ModelNotServedError(InvalidRequestError):
    """400 "Model id : X , has no provider supported": API-Inference does not serve that id
    (the free list changes often)."""

    hint = "This model is not served by API-Inference (any more). Pick another model from the list."


class ThinkingNeedsStreamError(InvalidRequestError):
    """400 in either wording: a thinking model was called without streaming."""

    hint = "This model thinks before it answers, which needs a streamed call: stream, or switch thinking off."


class UnexplainedRefusalError(InvalidRequestError):
    """A bare 400 with no body: how the service sometimes answers an account that is not
    bound to an Alibaba Cloud account."""

    hint = ("The server refused without a reason. If every call does this, bind your account to an "
            "Alibaba Cloud (Aliyun) account at " + ACCOUNT_PAGE + ".")


class ValidationError(InvalidRequestError):
    """Caught before anything was sent: names the field, the value and the allowed range."""

    hint = "Fix the field named in the message; nothing was sent."

    def __init__(self, field: str, value: Any, allowed: str, message: str | None = None, *,
                 kind: str = "invalid", **limits: Any):
        super().__init__(message or f"{field}: {short_repr(value)} is not allowed; allowed: {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed
        self.kind = kind  # "type", "empty", "range", "too_long", "bad_characters", "invalid", …
        self.limits = limits  # e.g. low/high for a range, limit for a length


def short_repr(value: Any, max_chars: int = 60) -> str:
    """repr(value), at most `max_chars` long: a value from a stranger may be huge (10**400)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**max_chars:
        # str() of a >4300-digit int raises ValueError; the bit length gives the size safely
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, str) and len(value) > max_chars:
        value = value[: max_chars - 3] + "..."
    text = repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


class ServerError(ModelScopeError):
    """5xx: the service is busy or broken."""

    hint = "ModelScope is busy or having trouble. Wait a moment and try again."


class APIConnectionError(ModelScopeError):
    """The server could not be reached, or the connection broke mid-answer."""

    hint = "Could not reach the server. Check the network (or the base URL) and try again."


class TaskFailedError(ModelScopeError):
    """The image task finished with FAILED; message is the server's reason."""

    hint = "The image task failed on the server. Change the prompt or settings and try again."

    def __init__(self, message: str, *, task_status: str | None = None, **kw):
        super().__init__(message, **kw)
        self.task_status = task_status  # the server's word (FAILED, CANCELED, UNKNOWN, …)


class TaskCanceledByServerError(TaskFailedError):
    """The task ended CANCELED (or CANCEL) on the server's side, not by the user."""

    hint = "The server cancelled the image task. Generate it again."


class TaskStatusUnknownError(TaskFailedError):
    """The task ended UNKNOWN, or in a state word that does not mean "still running"."""

    hint = "The server lost track of the image task. Generate it again."


class EmptyAnswerError(ModelScopeError):
    """A 200 that carried nothing: no choices (or only empty ones), streamed or not."""

    hint = "The model returned no answer. Try again, or pick another model."


class TaskNotFoundError(InvalidRequestError):
    """A poll answered "task not found" (wrong task-type header, another token's task, or gone)."""

    hint = "The server no longer knows this task. Generate the image again."


class ImageDownloadError(ModelScopeError):
    """The task succeeded but its output image could not be fetched (links expire quickly)."""

    hint = "The image was made but its link failed or expired (links expire soon after the task ends). Generate it again."

    def __init__(self, message: str, *, url: str | None = None, **kw):
        super().__init__(message, **kw)
        self.url = url


class TaskTimeoutError(ModelScopeError):
    hint = "The image took too long. The server may be busy: try again later, or raise the timeout."


class TaskCancelledError(ModelScopeError):
    hint = "Cancelled."


def _markup_reason(text: str) -> str:
    """The readable reason inside an HTML/XML error page (nginx 502, OSS 404), else the text."""
    if not text.startswith("<"):
        return text
    for tag in ("Message", "title", "h1"):
        found = re.search(rf"<{tag}\b[^>]*>([^<]+)</{tag}>", text, re.IGNORECASE)
        if found and found.group(1).strip():
            return found.group(1).strip()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", text)).strip()


def parse_error_body(body: Any) -> tuple[str | None, Any, str | None]:
    """(message, code, request_id) from either error shape, a plain string, or None."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            return (_markup_reason(text)[:500] or None), None, None
    if not isinstance(body, Mapping):
        return None, None, None
    request_id = body.get("request_id") or body.get("RequestId") or None
    for key in ("errors", "error"):
        inner = body.get(key)
        if isinstance(inner, Mapping):
            request_id = request_id or inner.get("request_id") or inner.get("RequestId") or None
            return inner.get("message") or None, inner.get("code"), _text_or_none(request_id)
        if isinstance(inner, str) and inner:
            return inner, None, request_id
    message = body.get("message") if isinstance(body.get("message"), str) else None
    return message, body.get("code"), _text_or_none(request_id)


def _text_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def error_class_for(status: int | None, message: str | None = None,
                    quota: Quota | None = None) -> type[ModelScopeError]:
    """The class for an HTTP error: the status, refined by the server's words and, for 429, by
    the rate-limit headers (only a remaining count of 0 means the day's quota is used up)."""
    text = (message or "").lower()
    if wire.MSG_BIND_ALIYUN in text:
        return AccountNotBoundError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 429:
        if quota is None or (quota.requests_remaining is None and quota.model_requests_remaining is None):
            return RateLimitError
        if quota.requests_remaining == 0 or quota.model_requests_remaining == 0:
            return QuotaExhaustedError
        return TooManyRequestsError
    if status in (400, 404, 409, 413, 422):
        if wire.MSG_NO_PROVIDER_MARK in text:
            return ModelNotServedError
        if any(mark in text for mark in wire.THINKING_NON_STREAM_MARKS):
            return ThinkingNeedsStreamError
        if status == 400 and not message:
            return UnexplainedRefusalError
        return InvalidRequestError
    if status is not None and status >= 500:
        return ServerError
    return ModelScopeError


def error_from_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> ModelScopeError:
    """The exception for an HTTP error answer (pure: no I/O)."""
    message, code, request_id = parse_error_body(body)
    quota = Quota.from_headers(headers)
    cls = error_class_for(status, message, quota)
    return cls(
        message or f"HTTP {status}",
        status=status,
        request_id=request_id,
        code=code,
        quota=quota,
        body=body,
    )


def from_sdk_error(exc: BaseException, sdk) -> ModelScopeError:
    """Map an exception of the openai or anthropic SDK (`sdk` is the module; both SDKs are
    generated with the same exception classes) onto our classes."""
    if isinstance(exc, ModelScopeError):
        return exc
    if isinstance(exc, sdk.APIStatusError):
        response = exc.response
        try:
            body = response.json()
        except Exception:
            body = getattr(response, "text", None) or exc.body
        err = error_from_response(exc.status_code, body, response.headers)
        err.__cause__ = exc
        return err
    if isinstance(exc, sdk.APITimeoutError):
        return APIConnectionError("The server took too long to answer (timeout).")
    if isinstance(exc, sdk.APIConnectionError):
        return APIConnectionError(f"Could not reach the server: {exc.__cause__ or exc}")
    if isinstance(exc, sdk.APIError):
        # e.g. an error event inside the stream, or a chunk the SDK could not read
        message, code, request_id = parse_error_body(getattr(exc, "body", None))
        return ServerError(message or str(exc), code=code, request_id=request_id)
    return ModelScopeError(str(exc) or type(exc).__name__)


def from_openai_error(exc: BaseException) -> ModelScopeError:
    import openai  # local: errors.py stays importable for code that does not chat

    return from_sdk_error(exc, openai)


class IncompleteStreamError(APIConnectionError):
    """The answer stream broke off (connection cut or an unreadable chunk).

    `partial_content` / `partial_reasoning` hold what arrived before the break.
    """

    hint = "The answer was cut off before it finished; the part received is kept. Try again."

    def __init__(self, message: str, *, partial_content: str = "", partial_reasoning: str = "", **kw):
        super().__init__(message, **kw)
        self.partial_content = partial_content
        self.partial_reasoning = partial_reasoning
