"""The simulator's HTTP app: `create_app(state)` returns a FastAPI app speaking the wire
protocol (see the package docstring for the rules it follows)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlparse

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import catalog, wire
from ..config import fingerprint
from . import chat, images
from .state import (
    FAULTS,
    POLL_FAULTS,
    REQUEST_FAULTS,
    SUBMIT_FAULTS,
    TEST_TOKENS,
    CIDict,
    LoggedRequest,
    SimState,
    Task,
    new_request_id,
)
from .validation import BadParam, validate_image_request

SIM_FAULT_HEADER = "X-Sim-Fault"
FILES_PREFIX = "/_sim/files/"

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_ERROR_CODES = {  # status -> (code, type) for the {"error": ...} shape
    400: ("invalid_parameter_error", "invalid_request_error"),
    401: ("invalid_api_key", "authentication_error"),
    403: ("permission_denied", "permission_error"),
    404: ("not_found", "invalid_request_error"),
}


class StreamCut(Exception):
    """Raised inside a stream to drop the connection mid-answer (the stream_cut fault)."""


class _QuietStreamCut(logging.Filter):
    """Keeps uvicorn from printing a traceback for a deliberate stream_cut."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not _has_stream_cut(exc, 0)


def _has_stream_cut(exc: BaseException | None, depth: int) -> bool:
    if exc is None or depth > 8:
        return False
    if isinstance(exc, StreamCut):
        return True
    inner = getattr(exc, "exceptions", None)  # an exception group
    if isinstance(inner, (list, tuple)):
        return any(_has_stream_cut(e, depth + 1) for e in inner)
    return _has_stream_cut(exc.__cause__ or exc.__context__, depth + 1)


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietStreamCut) for f in logger.filters):
        logger.addFilter(_QuietStreamCut())


# ---- error bodies ---------------------------------------------------------------------------
def _errors_shape(status: int, message: str, code: Any = None, headers=None) -> JSONResponse:
    body = {
        "errors": {"message": message, "code": status if code is None else code},
        "request_id": new_request_id(),
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _error_shape(status: int, message: str, code: str, type_: str, headers=None) -> JSONResponse:
    body = {
        "error": {"message": message, "code": code, "type": type_},
        "request_id": new_request_id(),
    }
    return JSONResponse(body, status_code=status, headers=headers)


def chat_error(status: int, message: str = "", headers=None) -> Response:
    """Chat and /v1/models: "error" shape, except 429 and 5xx which use "errors"."""
    if status == 429:
        return _errors_shape(429, wire.MSG_RATE_LIMIT, headers=headers)
    if status >= 500:
        return _errors_shape(status, message or wire.MSG_SERVER_BUSY, headers=headers)
    code, type_ = _ERROR_CODES.get(status, ("error", "api_error"))
    return _error_shape(status, message, code, type_, headers=headers)


def images_error(status: int, message: str = "", headers=None) -> Response:
    """Images, tasks and files: "errors" shape, except 429 which uses "error"."""
    if status == 429:
        return _error_shape(
            429, wire.MSG_QUOTA_CN, wire.CODE_TOO_MANY_REQUESTS, "rate_limit_error", headers
        )
    if status >= 500 and not message:
        message = wire.MSG_SERVER_BUSY
    return _errors_shape(status, message, headers=headers)


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def anthropic_error(status: int, message: str = "", headers=None) -> Response:
    """/v1/messages: Anthropic's {"type": "error", "error": {type, message}} shape."""
    if status == 429 and not message:
        message = wire.MSG_RATE_LIMIT
    if status >= 500 and not message:
        message = wire.MSG_SERVER_BUSY
    body = {
        "type": "error",
        "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message},
        "request_id": new_request_id(),
    }
    return JSONResponse(body, status_code=status, headers=headers)


def too_big_message(width: int, height: int) -> str:
    """The real service's words for a picture over wire.PICTURE_MAX_SIDE a side."""
    return wire.MSG_PICTURE_TOO_BIG.format(limit=wire.PICTURE_MAX_SIDE, width=width, height=height)


def _not_found_xml(name: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>NoSuchKey</Code>\n'
        f"  <Message>The specified key does not exist.</Message>\n  <Key>{name}</Key>\n"
        f"  <RequestId>{uuid.uuid4().hex.upper()[:24]}</RequestId>\n</Error>\n"
    )
    return Response(body, status_code=404, media_type="application/xml")


def _api_key(headers) -> str | None:
    """The anthropic SDK's `x-api-key: <token>` (accepted on /v1/messages only)."""
    value = headers.get("x-api-key")
    return value.strip() if value and value.strip() else None


def _bearer(headers) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# ---- request log (pure ASGI middleware: reads the whole body first, then replays it) --------
class LogMiddleware:
    def __init__(self, app, state: SimState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or (
            path.startswith("/_sim/") and not path.startswith(FILES_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        headers: dict[str, str] = {}
        for k, v in scope.get("headers", []):
            key, val = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[key] = headers[key] + ", " + val if key in headers else val
        token = _bearer(headers)
        if "authorization" in headers:
            headers["authorization"] = (
                "Bearer " + fingerprint(token) if token else fingerprint(headers["authorization"])
            )
        if "x-api-key" in headers:
            api_key = _api_key(headers)
            headers["x-api-key"] = fingerprint(api_key or headers["x-api-key"])
            if token is None:
                token = api_key
        sent_credentials = "authorization" in headers or "x-api-key" in headers
        parsed = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        entry = LoggedRequest(
            method=scope.get("method", ""),
            path=path,
            query=query,
            headers=CIDict(headers),
            token_fingerprint=fingerprint(token) if sent_credentials else None,
            json=parsed,
            time=time.time(),
        )
        self.state.log_request(entry)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                self.state.set_status(entry, message["status"])
            await send(message)

        await self.app(scope, replay, send_wrapper)


@dataclasses.dataclass
class _Ctx:
    token: str | None
    fp: str | None
    faults: set[str]


def create_app(state: SimState) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(LogMiddleware, state=state)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _errors_shape(exc.status_code, str(exc.detail))

    async def read_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    async def pre_counted(
        request: Request, scope: str, *, anthropic: bool = False
    ) -> tuple[_Ctx, dict, dict] | Response:
        """pre(), then the JSON body and the day's count: (ctx, body, quota headers) or a
        Response. Chat and image submits are the calls that spend quota."""
        family_error = chat_error if scope == "chat" else images_error
        if anthropic:
            family_error = anthropic_error
        ctx = await pre(request, scope, counted=True, anthropic=anthropic)
        if isinstance(ctx, Response):
            return ctx
        body = await read_json(request)
        if not isinstance(body, dict):
            return family_error(400, "The request body must be a JSON object.")
        model = body.get("model")
        allowed, qh = state.count_request(ctx.fp, model if isinstance(model, str) else "")
        if take(ctx, "no_quota_headers", (scope,)):
            qh = {}  # metering by credits: the reply carries no modelscope-ratelimit-* headers
        if not allowed:
            return family_error(429, headers=qh)
        return ctx, body, qh

    async def pre(
        request: Request,
        scope: str,
        *,
        auth: bool = True,
        counted: bool = False,
        anthropic: bool = False,
    ) -> _Ctx | Response:
        """Header and injected request faults, then the token. A Response means: answer it.
        anthropic=True: /v1/messages (Anthropic error shape; `x-api-key` accepted too)."""
        family_error = chat_error if scope in ("chat", "models") else images_error
        if anthropic:
            family_error = anthropic_error
        header_faults = {
            f.strip() for f in request.headers.get(SIM_FAULT_HEADER, "").split(",") if f.strip()
        }
        unknown = header_faults - set(FAULTS)
        if unknown:
            return family_error(
                400, f"unknown {SIM_FAULT_HEADER} {sorted(unknown)}; known: {', '.join(FAULTS)}"
            )
        token = _bearer(request.headers)
        if token is None and anthropic:
            token = _api_key(request.headers)
        fp = fingerprint(token) if token else None
        fault = next((f for f in FAULTS if f in header_faults and f in REQUEST_FAULTS), None)
        if fault is None:
            fault = state.take_fault(REQUEST_FAULTS, (scope,), fp, unscoped=scope != "download")
        if fault == "502":
            if scope in ("images", "task") and not anthropic:
                return _errors_shape(502, wire.MSG_SERVER_BUSY)
            return Response(HTML_502, status_code=502, media_type="text/html")
        if fault == "500":
            return family_error(500, wire.MSG_SERVER_BUSY)
        if fault == "unbound_inner_id":  # the request id inside the error object
            return JSONResponse({"error": {"message": wire.MSG_ALIYUN_NOT_BOUND,
                                           "request_id": new_request_id()}}, status_code=401)
        if fault == "bare_400":  # how some unbound accounts are answered: no body at all
            return Response(b"", status_code=400)
        if fault == "429":
            headers = None
            if counted and fp and state.behavior(token) == "ok":
                body = await read_json(request)
                model = body.get("model") if isinstance(body, dict) else None
                headers = state.count_request(fp, str(model or ""), count=False)[1]
            return family_error(429, headers=headers)
        if auth:
            behavior = state.behavior(token)
            if behavior == "invalid":
                return family_error(401, wire.MSG_AUTH_FAILED)
            if behavior == "unbound":
                return family_error(401, wire.MSG_ALIYUN_NOT_BOUND)
            if behavior == "unverified":
                return family_error(403, wire.MSG_REAL_NAME_REQUIRED)
            if behavior == "quota" and counted:
                return family_error(429, headers=state.exhausted_headers())
        return _Ctx(token, fp, header_faults)

    def take(ctx: _Ctx, name: str, scopes: tuple[str, ...], *, unscoped: bool = True) -> bool:
        if name in ctx.faults:
            return True
        return state.take_fault({name}, scopes, ctx.fp, unscoped=unscoped) is not None

    # ---- models -------------------------------------------------------------------------------
    @app.get("/" + wire.MODELS_PATH)
    async def list_models(request: Request):
        ctx = await pre(request, "models", auth=False)
        if isinstance(ctx, Response):
            return ctx
        ids: list[str] = []
        for group in (
            catalog.CHAT_MODELS,
            catalog.VISION_MODELS,
            catalog.IMAGE_MODELS,
            catalog.EDIT_MODELS,
            state.config.extra_models,
        ):
            ids.extend(m for m in group if m not in ids)
        data = [
            {"id": m, "object": "model", "created": 1735689600, "owned_by": "system"} for m in ids
        ]
        return JSONResponse({"object": "list", "data": data, "request_id": new_request_id()})

    # ---- chat ---------------------------------------------------------------------------------
    @app.post("/" + wire.CHAT_COMPLETIONS_PATH)
    async def chat_completions(request: Request):
        checked = await pre_counted(request, "chat")
        if isinstance(checked, Response):
            return checked
        ctx, body, qh = checked
        cfg = state.config
        model = body.get("model")

        def bad(message: str) -> Response:
            return chat_error(400, message, headers=qh)

        if not isinstance(model, str) or not model.strip():
            return bad("Invalid parameter 'model': a model id is required")
        if model not in cfg.chat_models():
            return bad(wire.MSG_NO_PROVIDER.format(model=model))
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
        ):
            return bad("Invalid parameter 'messages': must be a non-empty list of messages")
        last_user = chat.last_user_message(messages)
        if last_user is None:
            return bad("Invalid parameter 'messages': there must be a user message")
        stream = body.get("stream") is True
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            return bad("Invalid parameter 'max_tokens': must be a positive integer")
        enable_thinking = body.get("enable_thinking")
        if enable_thinking is not None and not isinstance(enable_thinking, bool):
            return bad("Invalid parameter 'enable_thinking': must be true or false")
        budget = body.get("thinking_budget")
        if budget is not None and (
            not isinstance(budget, int) or isinstance(budget, bool) or budget < 1
        ):
            return bad("Invalid parameter 'thinking_budget': must be a positive integer")
        mode = catalog.thinking_mode(model)
        thinking = mode == catalog.THINKING_ALWAYS or (
            mode == catalog.THINKING_SWITCH and enable_thinking is not False
        )
        if mode == catalog.THINKING_SWITCH and thinking and not stream:
            if take(ctx, "thinking_alt_wording", ("chat",)):
                return _error_shape(400, wire.MSG_THINKING_NON_STREAM_ALT, "invalid_parameter_error",
                                    "invalid_request_error", headers=qh)
            return bad(wire.MSG_THINKING_NON_STREAM)

        lower = model.lower()
        vision = model in catalog.VISION_MODELS or "-vl" in lower or "qvq" in lower
        all_images = [
            url
            for m in messages
            if m.get("role") == "user"
            for url in chat.image_parts(m.get("content"))
        ]
        if vision and not all_images:
            return bad(
                f"Model {model} is a vision model: at least one user message needs an "
                "image_url part"
            )
        if not vision and all_images:
            return bad(f"Model {model} does not accept image input; pick a vision model")
        for url in all_images:
            if not url.startswith(("http://", "https://", "data:")):
                return bad("Invalid parameter 'image_url': must be an http(s) URL or a data: URL")

        if vision:  # the real service refuses a picture over 2048 px a side, any message's
            big = await asyncio.to_thread(images.oversized, all_images, wire.PICTURE_MAX_SIDE)
            if big is not None:
                return bad(too_big_message(*big))

        question = chat.message_text(last_user.get("content"))
        note = None
        if vision:
            note = await asyncio.to_thread(chat.image_note, chat.last_user_images(messages))
        content, finish = chat.answer_tokens(question, max_tokens, note)
        reasoning = chat.reasoning_tokens(question, budget) if thinking else []
        usage = {
            "prompt_tokens": chat.count_prompt_tokens(messages),
            "completion_tokens": len(content) + len(reasoning),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(reasoning)}

        slow = take(ctx, "slow_first_token", ("chat",))
        cut = stream and take(ctx, "stream_cut", ("chat",))
        malformed = stream and take(ctx, "malformed_chunk", ("chat",))
        hollow = take(ctx, "hollow_reply", ("chat",))
        keepalive = stream and take(ctx, "hollow_chunks", ("chat",))
        ttft = cfg.slow_ttft if slow else cfg.ttft
        tps = float(cfg.tokens_per_second)
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())
        headers = {**qh, "x-request-id": new_request_id()}

        if hollow:
            return _hollow_reply(stream, model, headers)

        if not stream:
            n = len(content) + len(reasoning)
            await asyncio.sleep(max(0.0, ttft) + (n / tps if tps > 0 else 0.0))
            message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
            if thinking:
                message["reasoning_content"] = "".join(reasoning)
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                    ],
                    "usage": usage,
                    "request_id": headers["x-request-id"],
                },
                headers=headers,
            )

        events = [("reasoning_content", t) for t in reasoning] + [("content", t) for t in content]
        gen = _stream_events(
            events,
            completion_id=completion_id,
            created=created,
            model=model,
            thinking=thinking,
            finish=finish,
            usage=usage,
            ttft=ttft,
            tps=tps,
            cut=cut,
            malformed=malformed,
            keepalive=keepalive,
        )
        return StreamingResponse(
            gen,
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    # ---- Anthropic-compatible messages (beta) --------------------------------------------------
    @app.post("/" + wire.ANTHROPIC_MESSAGES_PATH)
    async def anthropic_messages(request: Request):
        checked = await pre_counted(request, "chat", anthropic=True)
        if isinstance(checked, Response):
            return checked
        ctx, body, qh = checked
        cfg = state.config

        def bad(message: str) -> Response:
            return anthropic_error(400, message, headers=qh)

        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            return bad("model: Field required")
        if model not in cfg.chat_models():
            return bad(wire.MSG_NO_PROVIDER.format(model=model))
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages
            )
        ):
            return bad("messages: must be a non-empty list of user/assistant messages")
        last_user = chat.last_user_message(messages)
        if last_user is None:
            return bad("messages: there must be a user message")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return bad("max_tokens: Field required (an integer of 1 or more)")
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            return bad("system: must be a string or a list of text blocks")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            return bad("stream: must be true or false")

        question = chat.message_text(last_user.get("content"))
        content, _ = chat.answer_tokens(question)
        stop_reason = "end_turn"
        if len(content) > max_tokens:
            content, stop_reason = content[:max_tokens], "max_tokens"
        input_tokens = chat.count_prompt_tokens(messages)
        if system:
            input_tokens += len(chat.split_tokens(chat.message_text(system)))

        slow = take(ctx, "slow_first_token", ("chat",))
        cut = stream and take(ctx, "stream_cut", ("chat",))
        ttft = cfg.slow_ttft if slow else cfg.ttft
        tps = float(cfg.tokens_per_second)
        request_id = new_request_id()
        headers = {**qh, "x-request-id": request_id, "request-id": request_id}
        message: dict[str, Any] = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }
        if not stream:
            await asyncio.sleep(max(0.0, ttft) + (len(content) / tps if tps > 0 else 0.0))
            message["content"] = [{"type": "text", "text": "".join(content)}]
            message["stop_reason"] = stop_reason
            message["usage"]["output_tokens"] = len(content)
            return JSONResponse(message, headers=headers)
        gen = _anthropic_events(
            message, content, stop_reason=stop_reason, ttft=ttft, tps=tps, cut=cut
        )
        return StreamingResponse(
            gen,
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    # ---- images -------------------------------------------------------------------------------
    def own_file(request: Request, url: str) -> str | None:
        """The file name if url points at this simulator's /_sim/files/, else None."""
        parsed = urlparse(url)
        if not parsed.path.startswith(FILES_PREFIX):
            return None
        if parsed.hostname not in ("127.0.0.1", "localhost", request.url.hostname):
            return None
        name = parsed.path[len(FILES_PREFIX) :]
        return name if state.task_for_file(name) else None

    @app.post("/" + wire.IMAGES_PATH)
    async def images_generations(request: Request):
        checked = await pre_counted(request, "images")
        if isinstance(checked, Response):
            return checked
        ctx, body, qh = checked
        if request.headers.get(wire.ASYNC_MODE_HEADER, "").strip().lower() != "true":
            return images_error(400, wire.MSG_ASYNC_REQUIRED, headers=qh)
        try:
            params = validate_image_request(body, state.config.image_models())
        except BadParam as exc:
            return images_error(400, str(exc), headers=qh)

        family = params["family"]
        big = await asyncio.to_thread(images.oversized, params["image_urls"], wire.PICTURE_MAX_SIDE)
        if big is not None:
            return images_error(400, too_big_message(*big), headers=qh)
        input_image = input_file = None
        input_size = None
        if params["image_urls"]:
            first = params["image_urls"][0]
            if first.startswith("data:"):
                input_image = images.decode_data_url(first)
                info = (
                    await asyncio.to_thread(images.describe_image, input_image)
                    if input_image
                    else None
                )
                if info is None:
                    return images_error(
                        400,
                        "Invalid parameter 'image_url': the data: URL is not a readable image",
                        headers=qh,
                    )
                input_size = (info[1], info[2])
            else:
                input_file = own_file(request, first)
                src = state.task_for_file(input_file) if input_file else None
                if src is not None:
                    input_size = tuple(int(v) for v in src.params["size"].split("x"))
        if params["size"] is not None:
            w, h = params["size"]
        elif input_size is not None:
            w, h = (min(max(v, family.min_side), family.max_side) for v in input_size)
        else:
            w = h = family.default_side
        seed = params["seed"]
        if seed is None:
            seed = int.from_bytes(uuid.uuid4().bytes[:4], "big") & wire.SEED_MAX
        used: dict[str, Any] = {"prompt": params["prompt"]}
        if "negative_prompt" in params:
            used["negative_prompt"] = params["negative_prompt"]
        used.update(size=f"{w}x{h}", seed=seed, steps=params["steps"], guidance=params["guidance"])
        if "loras" in params:
            used["loras"] = params["loras"]
        if "image_url" in params:
            used["image_url"] = _abbreviate_urls(params["image_url"])

        faults = {f for f in ctx.faults if f in SUBMIT_FAULTS}
        for name in sorted(SUBMIT_FAULTS - faults):
            if take(ctx, name, ("images", "task")):
                faults.add(name)
        task = state.create_task(
            ctx.fp, params["model"], used, frozenset(faults), input_image, input_file
        )
        return JSONResponse(
            {"task_id": task.id, "request_id": task.request_id, "task_status": wire.STATUS_SUCCEED},
            headers=qh,
        )

    @app.get("/" + wire.TASK_PATH)
    async def get_task(task_id: str, request: Request):
        ctx = await pre(request, "task")
        if isinstance(ctx, Response):
            return ctx
        task_type = request.headers.get(wire.TASK_TYPE_HEADER, "").strip().lower()
        if task_type != wire.TASK_TYPE_IMAGE:
            return images_error(404, wire.MSG_TASK_NOT_FOUND)
        if any(f in ctx.faults for f in POLL_FAULTS) or take(ctx, "task_not_found", ("task",)):
            return images_error(404, wire.MSG_TASK_NOT_FOUND)
        body = state.poll(task_id, ctx.fp, str(request.base_url))
        if body is None:
            return images_error(404, wire.MSG_TASK_NOT_FOUND)
        return JSONResponse(body)

    def render_task(task: Task, depth: int = 0) -> bytes:
        input_image = task.input_image
        if input_image is None and task.input_file and depth < 4:
            src = state.task_for_file(task.input_file)
            if src is not None:
                input_image = render_task(src, depth + 1)
        w, h = (int(v) for v in task.params["size"].split("x"))
        loras = task.params.get("loras")
        return images.render_png(
            task.model,
            task.params["prompt"],
            int(task.params["seed"]),
            w,
            h,
            json.dumps(loras, sort_keys=True) if loras is not None else "",
            input_image,
        )

    @app.get(FILES_PREFIX + "{name}")
    async def download(name: str, request: Request):
        ctx = await pre(request, "download", auth=False)
        if isinstance(ctx, Response):
            return ctx
        task = state.task_for_file(name)
        if task is None or task.failed or task.end is None or time.time() < task.end:
            return _not_found_xml(name)
        if "image_404" in task.faults or take(ctx, "image_404", ("download",), unscoped=False):
            return _not_found_xml(name)
        png = await asyncio.to_thread(render_task, task)
        return Response(png, media_type="image/png", headers={"cache-control": "max-age=3600"})

    # ---- admin --------------------------------------------------------------------------------
    def admin_bad(message: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error": message}, status_code=400)

    @app.get("/_sim/health")
    async def health(request: Request):
        return {
            "ok": True,
            "base_url": str(request.base_url),
            "test_tokens": TEST_TOKENS,
            "faults": list(FAULTS),
        }

    @app.post("/_sim/faults")
    async def add_fault(request: Request):
        body = await read_json(request)
        if not isinstance(body, dict):
            return admin_bad('body must be {"fault": ..., "token"?, "times"?, "scope"?}')
        try:
            state.inject(
                str(body.get("fault")),
                token=body.get("token") or None,
                times=body.get("times", 1),
                scope=body.get("scope") or None,
            )
        except (TypeError, ValueError) as exc:
            return admin_bad(str(exc))
        return {"ok": True, "faults": state.faults()}

    @app.get("/_sim/faults")
    async def list_faults():
        return {"ok": True, "faults": state.faults()}

    @app.delete("/_sim/faults")
    async def clear_faults():
        state.clear_faults()
        return {"ok": True}

    @app.get("/_sim/log")
    async def get_log(request: Request):
        path_contains = request.query_params.get("path_contains")
        token = request.query_params.get("token")
        entries = [
            e.to_dict()
            for e in state.log()
            if (not path_contains or path_contains in e.path)
            and (not token or e.token_fingerprint == fingerprint(token))
        ]
        return {"ok": True, "requests": entries}

    @app.delete("/_sim/log")
    async def clear_log():
        state.clear_log()
        return {"ok": True}

    @app.post("/_sim/tokens")
    async def add_token(request: Request):
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            return admin_bad('body must be {"token": ..., "behavior"?: "ok"}')
        try:
            state.add_token(body["token"], body.get("behavior", "ok"))
        except ValueError as exc:
            return admin_bad(str(exc))
        return {"ok": True, "token_fingerprint": fingerprint(body["token"])}

    @app.get("/_sim/config")
    async def get_config():
        return {"ok": True, "config": dataclasses.asdict(state.config)}

    @app.post("/_sim/config")
    async def set_config(request: Request):
        body = await read_json(request)
        if not isinstance(body, dict):
            return admin_bad("body must be an object of SimConfig fields")
        try:
            cfg = state.set_config(**body)
        except (TypeError, ValueError) as exc:
            return admin_bad(str(exc))
        return {"ok": True, "config": dataclasses.asdict(cfg)}

    @app.delete("/_sim/quota")
    async def reset_quota():
        state.reset_quota()
        return {"ok": True}

    @app.get("/_sim/tasks/{task_id}")
    async def task_info(task_id: str):
        task = state.task(task_id)
        if task is None:
            return JSONResponse({"ok": False, "error": "no such task"}, status_code=404)
        return {
            "ok": True,
            "task_id": task.id,
            "finished_at": state.task_finished_at(task_id),
            "faults": sorted(task.faults),
        }

    return app


def _abbreviate_urls(value: Any) -> Any:
    def short(u: str) -> str:
        if u.startswith("data:") and len(u) > 80:
            return u[: u.find(",") + 1] + f"...({len(u)} chars)"
        return u

    if isinstance(value, list):
        return [short(u) for u in value]
    return short(value)


async def _paced(frame, n: int, *, ttft: float, tps: float, cut: bool):
    """Yield frame(0) … frame(n-1): the first after ttft, then tps a second. Whatever is due
    goes out in one write, so a fast rate costs few writes and never blocks the loop.
    cut: the connection drops (StreamCut) after about half of them, without a proper end."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, ttft))
    cut_at = max(1, n // 2) if cut else -1
    t0 = loop.time()
    i = 0
    while i < n:
        due = n if tps <= 0 else min(n, int((loop.time() - t0) * tps) + 1)
        out: list[bytes] = []
        while i < due:
            if i == cut_at:
                if out:
                    yield b"".join(out)
                await asyncio.sleep(0.01)
                raise StreamCut("stream_cut fault")
            out.append(frame(i))
            i += 1
        if out:
            yield b"".join(out)
        if i < n:
            await asyncio.sleep(max(t0 + i / tps - loop.time(), 0.004))


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"


async def _stream_events(
    events: list[tuple[str, str]],
    *,
    completion_id: str,
    created: int,
    model: str,
    thinking: bool,
    finish: str,
    usage: dict,
    ttft: float,
    tps: float,
    cut: bool,
    malformed: bool,
    keepalive: bool = False,
):
    """SSE chunks: one token per chunk, the first after ttft, then tps tokens a second
    (chunks that fall due together are written together, at least 4 ms apart).
    keepalive: chunks with `"choices": null` and `"choices": []` (keep-alive, usage-only) go
    out first, every few tokens and before the last chunk, as the real service sends them."""

    def chunk(delta: dict, finish_reason: str | None = None, with_usage: bool = False) -> bytes:
        obj = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }
        if with_usage:
            obj["usage"] = usage
        return _sse(obj)

    n = len(events)
    bad_at = max(1, n // 2) if malformed else -1

    def hollow(i: int) -> bytes:
        if not keepalive or i % 5:
            return b""
        obj = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": None if i % 10 == 0 else []}
        if i % 10:
            obj["usage"] = None
        return _sse(obj)

    def frame(i: int) -> bytes:
        bad = hollow(i)
        if i == bad_at:  # a data: line that is not JSON, then the stream goes on
            bad += (b'data: {"id": "' + completion_id.encode() + b'", "object": '
                   b'"chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "\n\n')
        kind, token = events[i]
        delta: dict[str, Any] = {}
        if i == 0:
            delta["role"] = "assistant"
        if kind == "reasoning_content":
            delta["content"] = "" if i % 2 == 0 else None
            delta["reasoning_content"] = token
        else:
            delta["content"] = token
            if thinking:
                delta["reasoning_content"] = None if i % 2 else ""
        bad += chunk(delta)  # (bad holds the keep-alive or malformed line, if any)
        return bad

    async for batch in _paced(frame, n, ttft=ttft, tps=tps, cut=cut):
        yield batch
    final: dict[str, Any] = {"content": ""}
    if n == 0:
        final["role"] = "assistant"
    usage_only = b""
    if keepalive:  # the usage in a chunk of its own, with no choices
        usage_only = _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage})
    yield chunk(final, finish, with_usage=not keepalive) + usage_only + b"data: [DONE]\n\n"


def _hollow_reply(stream: bool, model: str, headers: dict) -> Response:
    """A 200 that carries nothing, as captured from the real service: `"choices": null`,
    `"object": ""`, `"created": 0`, zero usage; streamed, chunks whose choices are null or []."""
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if not stream:
        return JSONResponse({"id": "", "object": "", "created": 0, "model": model, "choices": None,
                             "usage": usage}, headers=headers)
    body = (_sse({"id": "", "object": "", "created": 0, "model": model, "choices": None})
            + _sse({"id": "", "object": "", "created": 0, "model": model, "choices": [], "usage": usage})
            + b"data: [DONE]\n\n")
    return Response(body, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})


def _sse_event(name: str, obj: Any) -> bytes:
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


async def _anthropic_events(
    message: dict,
    tokens: list[str],
    *,
    stop_reason: str,
    ttft: float,
    tps: float,
    cut: bool,
):
    """Anthropic's SSE: message_start, content_block_start, ping, one content_block_delta per
    token (first after ttft, then tps a second), content_block_stop, message_delta,
    message_stop. cut: the connection drops after about half the tokens."""
    yield _sse_event("message_start", {"type": "message_start", "message": message}) + _sse_event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ) + _sse_event("ping", {"type": "ping"})
    n = len(tokens)

    def frame(i: int) -> bytes:
        delta = {"type": "text_delta", "text": tokens[i]}
        return _sse_event("content_block_delta",
                          {"type": "content_block_delta", "index": 0, "delta": delta})

    async for batch in _paced(frame, n, ttft=ttft, tps=tps, cut=cut):
        yield batch
    yield (
        _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + _sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": n},
            },
        )
        + _sse_event("message_stop", {"type": "message_stop"})
    )
