"""The queue's door: what every job meets before Gradio's queue takes it.

1. Inputs hold what their components take. File fields hold records of uploaded files:
   Gradio checks a file input's shape with pydantic, and a path outside its cache, before
   any handler runs, answering a bare
   "Error"; a record without Gradio's `meta` it does not check at all. The door refuses
   both alike, naming the field in the same words as any refused file (ui/uploads.py).
   Slider values are numbers in the slider's range (Gradio's own refusal is English and
   prints a 400-digit number whole); Radio values are one of its choices (Gradio's refusal
   is English, with a traceback in the log).
2. A full queue is answered in the user's language.
3. Fair shares: one caller may have only a few jobs of a kind queued or running.

Gradio's queue is shared by the whole class (`STUDIO_MAX_QUEUE` places). Without a per-user
limit, one client firing hundreds of requests fills it and everyone else reads "queue is
full". So every job is checked where it asks for a place (the queue's `push`, which both
`/queue/join` and `/call/<api>` go through): a job is refused when its caller already has
`max_chats_per_user` answers or `max_images_per_user` image jobs in flight. A caller is every
identity the job carries: its page session, the token it will use (the X-ModelScope-Token
header or the token pasted in that session) and, on the shared token, its student.

A refused job never enters the queue, runs nothing and costs nothing. The refusal is a
validation answer (HTTP 422): the page shows it under the control that started the job, and
gradio_client raises it as a ValidationError. A full queue is answered the same way, in the
user's language, instead of Gradio's English-only "busy" banner.

The jobs in flight are read from Gradio's own queue (`event_ids_to_events`: queued and
running events, removed when they finish), so there is no counter to drift or leak.
"""

from __future__ import annotations

from typing import Any

from modelscope_api import config
from modelscope_api.checks import check_number
from modelscope_api.errors import ValidationError

from .context import PROGRAMS, AppContext, header_token
from .explain import explain, lang_of
from .i18n import text
from .uploads import refused, upload_path

KIND_CHAT = "chat"  # streamed answers: Chat, Vision and the token check
KIND_IMAGE = "image"  # image jobs: the browser's Generate and /generate_image

STRINGS = {
    "en": {
        "fair.chat": "You already have {n} answers being written. Wait for one to finish (or stop it), then ask again.",
        "fair.image": "You already have {n} pictures being made. Wait for one to finish (or cancel it), then try again.",
        "fair.queue_full": "The studio is very busy right now: all {n} places in the queue are taken. "
                           "Wait a few seconds and try again.",
    },
    "zh": {
        "fair.chat": "你已有 {n} 个回答正在生成。请等其中一个完成（或停止它）后再提问。",
        "fair.image": "你已有 {n} 张图片正在生成。请等其中一张完成（或取消它）后再试。",
        "fair.queue_full": "工作室现在非常忙：队列的 {n} 个位置都已占满。请等几秒钟再试。",
    },
}


_PARAMETER_NAMES: dict[int, list[str]] = {}  # by event id: every join asks, the answer never changes


def parameter_names(fn) -> list[str]:
    """The handler's parameter names, one per input (plain text, for a validation answer).
    Parameters Gradio fills itself (gr.Request, …) take no input, so they are left out, as
    Gradio leaves them out when it matches inputs to parameters."""
    from gradio.utils import get_function_params

    names = _PARAMETER_NAMES.get(id(fn))
    if names is None:
        try:
            names = [str(name) for name, *_ in get_function_params(fn.fn)]
        except (TypeError, ValueError, NameError):
            names = []
        _PARAMETER_NAMES[id(fn)] = names
    return names


def is_file_record(value: Any) -> bool:
    """A file field's value the studio accepts: nothing, or a record naming a file in
    Gradio's upload cache or assets/ (checked here, without reading the file)."""
    if value is None:
        return True
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return False
    try:
        upload_path(value)
    except ValidationError:
        return False
    return True


def input_problem(fn, data: Any) -> ValidationError | None:
    """The first input a job carries that its component would refuse with Gradio's own
    bare or English error, as a ValidationError naming the parameter: a file field that is
    not a record of an uploaded file, a slider value that is not a number in its range, or a
    radio value that is not one of its choices."""
    from gradio.components import Radio, Slider

    if not isinstance(data, list):
        return None
    names = parameter_names(fn)
    for i, (block, value) in enumerate(zip(fn.inputs, data)):
        name = names[i] if i < len(names) else f"parameter_{i}"
        if isinstance(block, Slider) and value is not None:
            try:
                check_number(name, value, block.minimum, block.maximum)
            except ValidationError as err:
                return err
            continue
        if isinstance(block, Radio) and value is not None:  # None passes Gradio's check too
            allowed = [choice for _, choice in block.choices]
            if value not in allowed:
                return ValidationError(name, value, " or ".join(map(str, allowed)))
            continue
        model = getattr(block, "data_model", None)
        if model is None or ("File" not in model.__name__ and "Image" not in model.__name__):
            continue
        values = value if isinstance(value, list) and model.__name__.startswith("List") else [value]
        if not all(is_file_record(v) for v in values):
            return refused(name)
    return None


class QueueDoor:
    def __init__(self, ctx: AppContext, kinds: dict[str, str]):
        """`kinds` maps a concurrency id to KIND_CHAT or KIND_IMAGE; other events are free."""
        self.ctx = ctx
        self.kinds = kinds

    def limit(self, kind: str) -> int:
        return self.ctx.max_images_per_user if kind == KIND_IMAGE else self.ctx.max_chats_per_user

    # ------------------------------------------------------------------ who a job is

    def identities(self, session_hash: str | None, headers: Any) -> set[tuple[str, str]]:
        """Every identity a job counts under: its session, its token, its student."""
        ids: set[tuple[str, str]] = set()
        if session_hash:
            ids.add(("session", session_hash))
        header = header_token(headers)
        token_fp = config.fingerprint(header) if header else self.ctx.session_tokens.get(session_hash)
        if token_fp:
            ids.add(("token", token_fp))
        elif self.ctx.server_token:  # on the shared token: the student counts too
            ids.add(("student", self.ctx.students.get(session_hash) or PROGRAMS))
        return ids

    def in_flight(self, queue, kind: str, ids: set[tuple[str, str]]) -> int:
        """Jobs of `kind` queued or running that share an identity with `ids`."""
        count = 0
        for event in list(queue.event_ids_to_events.values()):
            if self.kinds.get(event.fn.concurrency_id) != kind:
                continue
            headers = getattr(event.request, "headers", None)
            if self.identities(event.session_hash, headers) & ids:
                count += 1
        return count

    # ------------------------------------------------------------------ the door

    @staticmethod
    def refusal(fn, message: str) -> list[dict[str, Any]]:
        """A validation answer with the message on the job's first visible input (the page
        shows it there; gradio_client raises it)."""
        from gradio.components import State

        inputs = list(getattr(fn, "inputs", []) or []) or [None]
        names = parameter_names(fn)
        target = next((i for i, block in enumerate(inputs) if not isinstance(block, State)), 0)
        return [{"__type__": "validate", "is_valid": i != target, "message": message if i == target else "",
                 "parameter_name": names[i] if i < len(names) else f"parameter_{i}"}
                for i in range(len(inputs))]

    def install(self, demo) -> None:
        """Check every job before Gradio's queue takes it (call after demo.queue())."""
        import asyncio

        queue = demo._queue
        push = queue.push
        door = asyncio.Lock()  # the check and Gradio's push as one step: a burst can't slip by

        async def fair_push(body, request, username):
            async with door:
                return await checked_push(body, request, username)

        async def checked_push(body, request, username):
            fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
            if fn is None:
                return await push(body, request, username)
            lang = lang_of(request)
            problem = input_problem(fn, body.data)
            if problem is not None:
                return False, self.refusal(fn, explain(problem, lang)), "validator_error"
            if queue.max_size is not None and len(queue) >= queue.max_size:
                msg = text("fair.queue_full", lang, n=queue.max_size)
                return False, self.refusal(fn, msg), "validator_error"
            kind = self.kinds.get(fn.concurrency_id)
            if kind is not None:
                ids = self.identities(body.session_hash, getattr(request, "headers", None))
                limit = self.limit(kind)
                if self.in_flight(queue, kind, ids) >= limit:
                    msg = text("fair.image" if kind == KIND_IMAGE else "fair.chat", lang, n=limit)
                    return False, self.refusal(fn, msg), "validator_error"
            return await push(body, request, username)

        queue.push = fair_push
