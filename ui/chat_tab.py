"""The Chat tab: a streaming gr.ChatInterface over ModelScope's OpenAI-compatible endpoint,
or, by choice, its Anthropic-compatible one (beta; no reasoning stream, no enable_thinking).

Reasoning is shown as its own collapsible "Thinking" message, never mixed into the answer.
`stream_turn` (one call, coalesced to ~20 updates a second) and the message helpers are
shared with the Vision tab.
"""

from __future__ import annotations

import functools
import hashlib
import html
import inspect
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import Context
from gradio.i18n import I18nData
from gradio.utils import get_upload_folder

from modelscope_api import catalog
from modelscope_api.chat import ChatDone, ChatRequest, ContentDelta, ReasoningDelta
from modelscope_api.checks import MODEL_ID_MAX_CHARS, check_text
from modelscope_api.config import Site
from modelscope_api.errors import (
    IncompleteStreamError,
    MissingTokenError,
    ModelScopeError,
    ValidationError,
)
from modelscope_api.protocols import ANTHROPIC, OPENAI, chat_client, check_protocol, request_kwargs
from modelscope_api.quota import Quota

from .code import chat_code, code_accordion, code_box
from .context import SOURCE_SERVER, AppContext, QuotaCapReached, session_id
from .explain import explain, lang_of
from .limits import MESSAGE_MAX_CHARS, SYSTEM_PROMPT_MAX_CHARS, check_history
from .shared import Shared, answered_by_server, format_quota

YIELD_INTERVAL = 0.05  # at most ~20 UI updates a second, however fast the tokens come

STRINGS = {
    "en": {
        "chat.tab": "Chat",
        "chat.settings": "Model & settings",
        "chat.model_info": "Pick one or type any ModelScope model id.",
        "chat.protocol": "API protocol",
        "chat.protocol_info": "The same models through either endpoint; Show code follows your choice.",
        "chat.protocol_openai": "OpenAI-compatible",
        "chat.protocol_anthropic": "Anthropic-compatible (beta)",
        "chat.thinking_anthropic": "ℹ️ The Anthropic-compatible endpoint has no thinking switch and no reasoning stream: this model's reasoning is not shown.",
        "chat.thinking": "Thinking (enable_thinking)",
        "chat.thinking_info": "Let the model reason first; its reasoning appears in a separate box.",
        "chat.thinking_always": "🤔 This model always thinks before answering; its reasoning appears in a separate “Thinking” box.",
        "chat.system_prompt": "System prompt",
        "chat.system_placeholder": "e.g. You are a patient teacher. Answer in simple words.",
        "chat.temperature": "temperature",
        "chat.temperature_info": "0 = focused, 2 = very random",
        "chat.top_p": "top_p",
        "chat.max_tokens": "max_tokens",
        "chat.max_tokens_info": "0 = the model's default length",
        "chat.chatbot": "Conversation",
        "chat.placeholder": "Type a message and press Enter…",
        "chat.export": "Export conversation (Markdown + JSON)",
        "chat.export_files": "Exported files",
        "chat.thinking_title": "🤔 Thinking",
        "chat.cut_title": "⚠️ Answer cut off",
        "chat.error_title": "❌ No answer",
        "chat.cut_body": "The connection broke before the answer finished; the part above is what arrived. Press ↻ to try again.",
        "chat.empty_answer": "*(the model returned an empty answer)*",
        "chat.no_message": "a message to send",
        "chat.nothing_to_export": "Nothing to export yet: chat first.",
        "chat.you": "You",
        "chat.assistant": "Assistant",
    },
    "zh": {
        "chat.tab": "对话",
        "chat.settings": "模型与参数",
        "chat.model_info": "从列表中选择，或输入任意 ModelScope 模型 ID。",
        "chat.protocol": "接口协议",
        "chat.protocol_info": "两种接口调用的是同样的模型；“查看代码”会跟着你的选择变化。",
        "chat.protocol_openai": "OpenAI 兼容",
        "chat.protocol_anthropic": "Anthropic 兼容（测试版）",
        "chat.thinking_anthropic": "ℹ️ Anthropic 兼容接口没有深度思考开关，也不返回推理过程：这个模型的思考过程不会显示。",
        "chat.thinking": "深度思考（enable_thinking）",
        "chat.thinking_info": "让模型先推理；推理过程显示在单独的框里。",
        "chat.thinking_always": "🤔 这个模型总会先思考再回答；思考过程显示在单独的“思考”框里。",
        "chat.system_prompt": "系统提示词",
        "chat.system_placeholder": "例如：你是一位耐心的老师，请用简单的话回答。",
        "chat.temperature": "temperature（温度）",
        "chat.temperature_info": "0 = 稳定，2 = 非常随机",
        "chat.top_p": "top_p",
        "chat.max_tokens": "max_tokens（最大长度）",
        "chat.max_tokens_info": "0 = 使用模型默认长度",
        "chat.chatbot": "对话",
        "chat.placeholder": "输入消息，按回车发送……",
        "chat.export": "导出对话（Markdown + JSON）",
        "chat.export_files": "导出的文件",
        "chat.thinking_title": "🤔 思考过程",
        "chat.cut_title": "⚠️ 回答被截断",
        "chat.error_title": "❌ 没有得到回答",
        "chat.cut_body": "回答尚未完成连接就断开了；上面是已收到的部分。点击 ↻ 重试。",
        "chat.empty_answer": "*（模型返回了空回答）*",
        "chat.no_message": "要发送的消息",
        "chat.nothing_to_export": "还没有可导出的内容：先聊几句吧。",
        "chat.you": "你",
        "chat.assistant": "助手",
    },
}

EXAMPLES = [
    ["用三句话向中学生解释什么是大语言模型。"],
    ["Explain recursion to a 12-year-old, with a short Python example."],
    ["一个笼子里有鸡和兔共 35 只，脚共 94 只。鸡和兔各有几只？请一步步推理。"],
    ["Write a haiku about autumn in Hangzhou, then translate it into Chinese."],
]


def t(key: str, lang: str) -> str:
    """This module's run-time strings (independent of the merged i18n tables)."""
    return STRINGS.get(lang, STRINGS["en"]).get(key) or STRINGS["en"][key]


# --------------------------------------------------------------------------- messages


def content_text(content: Any, depth: int = 0) -> str:
    """The text of a Chatbot message's content, whatever shape Gradio gave it (a stranger's
    history may nest lists a thousand deep: past a few levels there is no text)."""
    if content is None or depth > 4:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "\n".join(filter(None, (content_text(c, depth + 1) for c in content)))
    if isinstance(content, dict):
        if content.get("type") == "text" or "text" in content:
            return str(content.get("text") or "")
        return ""  # a file or a component: not text
    return ""


def _get(msg: Any, key: str, default=None):
    return msg.get(key, default) if isinstance(msg, dict) else getattr(msg, key, default)


def is_note(msg: Any) -> bool:
    """Thinking boxes and notes carry a metadata title; they are shown, never sent back."""
    meta = _get(msg, "metadata") or {}
    return bool(meta.get("title")) if isinstance(meta, dict) else False


def history_to_messages(history: list | None) -> list[dict[str, str]]:
    """Chatbot history → API messages: text only, notes dropped, same-role runs merged."""
    out: list[dict[str, str]] = []
    for msg in history or []:
        role = _get(msg, "role")
        if role not in ("user", "assistant") or is_note(msg):
            continue
        text = content_text(_get(msg, "content")).strip()
        if not text:
            continue
        if out and out[-1]["role"] == role:  # e.g. a question left unanswered by an error
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


def toast(err: BaseException, lang: str, site: Site | None = None) -> str:
    """explain() as safe HTML for a toast: the server's text escaped, links clickable."""
    escaped = html.escape(explain(err, lang, site), quote=False)
    return re.sub(r"(https?://[^\s<>()\]，。）]*[^\s<>()\]，。）.,;:!?])",
                  r'<a href="\1" target="_blank" rel="noopener">\1</a>', escaped)


# --------------------------------------------------------------------------- one call


@dataclass
class Turn:
    """What one streamed answer looks like so far."""

    source: str = ""
    reasoning_parts: list[str] = field(default_factory=list)
    content_parts: list[str] = field(default_factory=list)
    think_started: float | None = None
    think_seconds: float | None = None
    finished: bool = False
    quota: Quota | None = None

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    def messages(self, lang: str, cut: bool = False) -> list[dict[str, Any]]:
        """The assistant's Chatbot messages: a Thinking box (if any), then the answer."""
        out: list[dict[str, Any]] = []
        content = self.content
        if self.reasoning_parts:
            meta: dict[str, Any] = {"title": t("chat.thinking_title", lang),
                                    "status": "done" if (content or self.finished or cut) else "pending"}
            if self.think_seconds is not None:
                meta["duration"] = round(self.think_seconds, 1)
            out.append({"role": "assistant", "content": self.reasoning, "metadata": meta})
        if content:
            out.append({"role": "assistant", "content": content})
        elif self.finished:
            out.append({"role": "assistant", "content": t("chat.empty_answer", lang)})
        if cut:
            out.append({"role": "assistant", "content": t("chat.cut_body", lang),
                        "metadata": {"title": t("chat.cut_title", lang)}})
        return out


def error_note(err: BaseException, lang: str, site: Site | None = None) -> dict[str, Any]:
    """An open note in the conversation saying what went wrong; never sent back to a model.

    Errors are shown this way (plus a toast) rather than raised: a failed event would cover
    the conversation with an "Error" badge and leave the message box disabled."""
    return {"role": "assistant", "content": explain(err, lang, site),
            "metadata": {"title": t("chat.error_title", lang)}}


def is_error_note(msg: Any) -> bool:
    meta = _get(msg, "metadata") or {}
    return isinstance(meta, dict) and str(meta.get("title", "")).startswith("❌")


def raise_errors(fn):
    """For a PUBLIC endpoint: programs get an exception, not a note. Wraps a (sync or async)
    generator whose yields start with a list of messages; a final error note becomes gr.Error."""

    def check(out):
        messages = out[0] if isinstance(out, tuple) else out
        if isinstance(messages, list) and messages and is_error_note(messages[-1]):
            raise gr.Error(content_text(_get(messages[-1], "content")), print_exception=False)
        return out

    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            async for out in fn(*args, **kwargs):
                yield check(out)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for out in fn(*args, **kwargs):
            yield check(out)

    return wrapper


def report(err: BaseException, lang: str, site: Site | None = None) -> None:
    """The toast for an error (escaped, links clickable); stays until closed."""
    gr.Warning(toast(err, lang, site), duration=None, title=t("chat.error_title", lang))


def stream_turn(ctx: AppContext, req: ChatRequest, token: str | None, source: str, student: str,
                interval: float = YIELD_INTERVAL, protocol: str = OPENAI) -> Iterator[Turn]:
    """Stream one answer over `protocol` ("openai" or "anthropic"), yielding the growing Turn
    at most every `interval` seconds and always once at the end. Bad input raises before
    anything is counted or sent; the server-token guard is charged only for calls that
    reached the server."""
    if not token:
        raise MissingTokenError("No ModelScope token was given.")
    request_kwargs(req, protocol)  # validation: raises ValidationError naming the field
    if source == SOURCE_SERVER:
        ctx.guard.take(student)
    turn = Turn(source=source)
    received = False
    last = 0.0
    try:
        for event in chat_client(protocol, token, ctx.base_url).stream(req):
            received = True
            if isinstance(event, ReasoningDelta):
                if turn.think_started is None:
                    turn.think_started = time.monotonic()
                turn.reasoning_parts.append(event.text)
            elif isinstance(event, ContentDelta):
                if turn.think_started is not None and turn.think_seconds is None:
                    turn.think_seconds = time.monotonic() - turn.think_started
                turn.content_parts.append(event.text)
            elif isinstance(event, ChatDone):
                turn.finished, turn.quota = True, event.quota
                continue
            now = time.monotonic()
            if now - last >= interval:
                last = now
                yield turn
    except BaseException as err:
        ctx.settle(err, source, student, started=received)  # never reached the server: costs nothing
        raise
    if turn.think_started is not None and turn.think_seconds is None:
        turn.think_seconds = time.monotonic() - turn.think_started
    yield turn


def quota_line(ctx: AppContext, quota: Quota | None, source: str, request, lang: str,
               err: BaseException | None = None):
    """The header's quota line after a call that ended with `err` (None: it succeeded), or
    gr.skip() when there is nothing new to say (the call got no reply)."""
    line = format_quota(ctx, quota, source, request, lang, answered=answered_by_server(err))
    return line if line else gr.skip()


# --------------------------------------------------------------------------- export


EXPORTS_DIR = "studio-exports"  # inside Gradio's upload cache, so the files are served in place
EXPORT_FOLDERS_MAX = 1000  # sessions whose last export is kept; older ones are deleted first


def _export_dir(session: str) -> Path:
    """A session's export folder in Gradio's cache, named by a digest of the session (so it
    cannot be guessed from outside)."""
    digest = hashlib.sha256(("export/" + session).encode("utf-8")).hexdigest()[:24]
    return Path(get_upload_folder()) / EXPORTS_DIR / digest


def export_folder(session: str) -> Path:
    """This session's export folder, emptied before each export: one export a session."""
    folder = _export_dir(session)
    root = folder.parent
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    others = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime if p.exists() else 0)
    for old in others[: max(0, len(others) - EXPORT_FOLDERS_MAX)]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def forget_exports(session: str) -> None:
    """Delete a session's exports (when the session ends)."""
    shutil.rmtree(_export_dir(session), ignore_errors=True)


def export_files(history: list | None, request: gr.Request | None = None) -> list[str]:
    """Write the conversation as Markdown and JSON into this session's export folder."""
    lang = lang_of(request)
    try:
        history = check_history(history)
    except ValidationError as err:
        gr.Warning(explain(err, lang))
        return []
    rows = []
    for msg in history:
        role = _get(msg, "role")
        text = content_text(_get(msg, "content"))
        meta = _get(msg, "metadata") or {}
        title = meta.get("title") if isinstance(meta, dict) else None
        if role not in ("user", "assistant"):
            continue
        row = {"role": role, "content": text}
        if title:
            row["note"] = str(title)
        rows.append(row)
    if not rows:
        gr.Warning(t("chat.nothing_to_export", lang))
        return []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = export_folder(session_id(request))
    md_lines = [f"# Chat — {stamp}", ""]
    for row in rows:
        if row.get("note"):
            quoted = "\n".join("> " + line for line in row["content"].splitlines())
            md_lines += [f"> **{row['note']}**", ">", quoted, ""]
        else:
            who = t("chat.you", lang) if row["role"] == "user" else t("chat.assistant", lang)
            md_lines += [f"**{who}:**", "", row["content"], ""]
    md = folder / f"chat-{stamp}.md"
    md.write_text("\n".join(md_lines), encoding="utf-8", errors="backslashreplace")
    js = folder / f"chat-{stamp}.json"
    js.write_text(json.dumps({"exported": stamp, "messages": rows}, ensure_ascii=False, indent=2),
                  encoding="utf-8", errors="backslashreplace")
    return [str(md), str(js)]


# --------------------------------------------------------------------------- the tab


def thinking_controls(model: str, protocol: str = OPENAI):
    """(checkbox, "always thinks" note, "no thinking over Anthropic" note) updates for a
    model's thinking mode under a protocol."""
    mode = catalog.thinking_mode(model if isinstance(model, str) else "")
    anthropic = protocol == ANTHROPIC
    return (gr.update(visible=not anthropic and mode == catalog.THINKING_SWITCH),
            gr.update(visible=not anthropic and mode == catalog.THINKING_ALWAYS),
            gr.update(visible=anthropic and mode != catalog.THINKING_NONE))


def make_respond(ctx: AppContext):
    # `protocol` comes last, after the request, so calls written before it existed still fit.
    def chat(message: str, history: list, model: str, system_prompt: str, temperature: float,
             top_p: float, max_tokens: int, enable_thinking: bool, token_state: str | None,
             request: gr.Request, protocol: str = OPENAI):
        """Send `message` (with this session's history) to a ModelScope chat model; streams
        the answer. The reasoning of thinking models comes as a separate message whose
        metadata has a title. max_tokens 0 means the model's default. protocol: "openai"
        (default) or "anthropic" (the Anthropic-compatible endpoint, beta: no thinking)."""
        lang = lang_of(request)
        token, source = ctx.token_for(token_state, request)
        try:
            protocol = check_protocol(protocol)
            check_text("message", message, max_chars=MESSAGE_MAX_CHARS, allowed=t("chat.no_message", "en"))
            history = check_history(history)
            model = check_text("model", model, max_chars=MODEL_ID_MAX_CHARS, allowed="a ModelScope model id").strip()
            system_prompt = check_text("system_prompt", system_prompt, required=False,
                                       max_chars=SYSTEM_PROMPT_MAX_CHARS)
            # The Anthropic endpoint has no enable_thinking: the switch is left out, not sent.
            switch = catalog.thinking_mode(model) == catalog.THINKING_SWITCH and protocol == OPENAI
            req = ChatRequest(
                model=model,
                messages=history_to_messages([*history, {"role": "user", "content": message}]),
                system_prompt=system_prompt or None,
                temperature=temperature,
                top_p=top_p,
                max_tokens=None if max_tokens in (None, 0) else max_tokens,
                enable_thinking=bool(enable_thinking) if switch else None,
            )
            req.validate()
        except ValidationError as err:
            report(err, lang)
            yield [error_note(err, lang)], gr.skip(), gr.skip()
            return
        code = chat_code(req, ctx.base_url, protocol)
        failure: BaseException | None = None
        shown_quota = ctx.quota_line(session_id(request))  # re-sent unchanged: cheaper than skip
        yield [], shown_quota, code
        turn = Turn(source=source)
        try:
            for turn in stream_turn(ctx, req, token, source, ctx.student_of(request), protocol=protocol):
                yield turn.messages(lang), shown_quota, code
            shown, quota = turn.messages(lang), turn.quota
        except IncompleteStreamError as err:
            cut = Turn(source=source, reasoning_parts=[p for p in [err.partial_reasoning] if p],
                       content_parts=[err.partial_content])
            shown, quota = cut.messages(lang, cut=True), err.quota
            report(err, lang, ctx.site)
        except (ModelScopeError, QuotaCapReached) as err:
            # Whatever arrived stays, the question stays in the history (↻ retries it).
            shown, quota = turn.messages(lang) + [error_note(err, lang, ctx.site)], getattr(err, "quota", None)
            report(err, lang, ctx.site)
            failure = err
        yield shown, quota_line(ctx, quota, source, request, lang, failure), code

    return chat


def build(ctx: AppContext, shared: Shared) -> gr.Dropdown:
    """Render the tab; returns its model list (app.py refreshes the choices on each load)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=260):
            with gr.Accordion(I18nData("chat.settings"), open=True):
                model = gr.Dropdown(ctx.models.chat(), value=catalog.DEFAULT_CHAT_MODEL,
                                    allow_custom_value=True, label=I18nData("common.model"),
                                    info=I18nData("chat.model_info"))
                protocol = gr.Radio([(I18nData("chat.protocol_openai"), OPENAI),
                                     (I18nData("chat.protocol_anthropic"), ANTHROPIC)],
                                    value=OPENAI, label=I18nData("chat.protocol"),
                                    info=I18nData("chat.protocol_info"))
                first_box, first_note, first_anthropic = thinking_controls(catalog.DEFAULT_CHAT_MODEL)
                enable_thinking = gr.Checkbox(False, label=I18nData("chat.thinking"),
                                              info=I18nData("chat.thinking_info"),
                                              visible=first_box["visible"])
                thinking_note = gr.Markdown(I18nData("chat.thinking_always"),
                                            visible=first_note["visible"])
                anthropic_note = gr.Markdown(I18nData("chat.thinking_anthropic"),
                                             visible=first_anthropic["visible"])
                system_prompt = gr.Textbox("", label=I18nData("chat.system_prompt"), lines=3,
                                           placeholder=I18nData("chat.system_placeholder"))
                temperature = gr.Slider(0, 2, value=0.7, step=0.05, label=I18nData("chat.temperature"),
                                        info=I18nData("chat.temperature_info"))
                top_p = gr.Slider(0.05, 1, value=0.8, step=0.05, label=I18nData("chat.top_p"))
                max_tokens = gr.Slider(0, 16384, value=0, step=1, label=I18nData("chat.max_tokens"),
                                       info=I18nData("chat.max_tokens_info"))
        with gr.Column(scale=3):
            code = code_box(render=False)
            before = set(Context.root_block.fns)
            chat = gr.ChatInterface(
                make_respond(ctx),
                chatbot=gr.Chatbot(label=I18nData("chat.chatbot"), height=520, editable="user",
                                   layout="bubble", autoscroll=True),
                textbox=gr.Textbox(placeholder=I18nData("chat.placeholder"), show_label=False,
                                   submit_btn=True, stop_btn=True, scale=7),
                additional_inputs=[model, system_prompt, temperature, top_p, max_tokens,
                                   enable_thinking, shared.token_state, protocol],
                additional_outputs=[shared.quota_md, code],
                editable=True,
                examples=EXAMPLES,
                cache_examples=False,
                run_examples_on_click=True,
                api_name="chat",
                concurrency_limit=ctx.concurrency,
                fill_height=False,
                autofocus=False,
            )
            with gr.Row():
                export_btn = gr.Button(I18nData("chat.export"), size="sm", variant="secondary")
            exports = gr.File(label=I18nData("chat.export_files"), file_count="multiple",
                              visible=False, interactive=False)
            code_accordion(code)
    # The browser's events (undocumented) show errors as notes; the public /chat raises them.
    # Every ChatInterface event that calls the model shares one concurrency group, "chat", so
    # the limit and the fair shares (ui/door.py) see one pool of answers.
    for fn_id in set(Context.root_block.fns) - before:
        fn = Context.root_block.fns[fn_id]
        if shared.token_state in fn.inputs:
            fn.concurrency_id = "chat"
        if fn.api_name == "chat" and fn.api_visibility == "public":
            fn.fn = raise_errors(fn.fn)
    ctx.on_session_end.append(forget_exports)
    gr.on([model.change, protocol.change], thinking_controls, [model, protocol],
          [enable_thinking, thinking_note, anthropic_note],
          queue=False, show_progress="hidden", api_visibility="private")

    def export(history: list, request: gr.Request):
        files = export_files(history, request)
        return gr.update(value=files, visible=True) if files else gr.skip()

    export_btn.click(export, chat.chatbot, exports, api_visibility="private",
                     concurrency_limit=ctx.concurrency)
    return model
