"""The Vision Q&A tab: ask a vision-language model about one image, then follow up.

The image is a public URL (the preview is loaded by the browser; the server never fetches a
user's URL) or an upload (validated with Pillow, shrunk to the service's 2048 px a side when it
is bigger, with a note saying so, and sent as a data: URL). It travels in the first
user message of the conversation; follow-ups send only text. History lives in a per-session
gr.State.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from modelscope_api import catalog
from modelscope_api.chat import ChatRequest, url_image_part
from modelscope_api.checks import check_text
from modelscope_api.errors import IncompleteStreamError, ModelScopeError, ValidationError
from modelscope_api.pictures import FittedPicture

from .chat_tab import Turn, error_note, quota_line, raise_errors, report, stream_turn
from .code import chat_code, code_accordion
from .context import AppContext, QuotaCapReached, session_id
from .explain import lang_of
from .limits import HISTORY_MAX_MESSAGES, MESSAGE_MAX_CHARS
from .shared import Shared
from .uploads import collect_after_inline_picture, read_fitted, refused, shrink_facts

ASSETS = Path(__file__).resolve().parent.parent / "assets"

STRINGS = {
    "en": {
        "vision.tab": "Vision Q&A",
        "vision.image_url": "Image URL",
        "vision.image_url_placeholder": "https://…/photo.jpg  (a public link; your browser shows the preview)",
        "vision.upload": "…or upload an image (PNG, JPEG, WebP, GIF, BMP; up to 10 MB)",
        "vision.question": "Question",
        "vision.question_placeholder": "What is in this picture?",
        "vision.ask": "Ask",
        "vision.stop": "Stop",
        "vision.new": "New image / clear",
        "vision.chatbot": "Answers",
        "vision.examples": "Examples (click one, then Ask)",
        "vision.model_info": "A vision-language (VL) model; you can type any model id.",
        "vision.hint": "Ask a first question about the image, then follow up: the image stays in the conversation until you press “New image / clear”.",
        "vision.need_image": "an image URL (https://…) or an uploaded image",
        "vision.need_question": "a question about the image",
        "vision.shrunk_title": "📐 Picture made smaller",
        "vision.shrunk": "Your picture was shrunk from {w0}×{h0} to {w}×{h} pixels before it was sent: the service takes at most {limit} px a side.",
        "vision.compressed": "Your picture was compressed from {mb0} MB to {mb} MB before it was sent, to keep the request small.",
    },
    "zh": {
        "vision.tab": "看图问答",
        "vision.image_url": "图片链接",
        "vision.image_url_placeholder": "https://…/photo.jpg（公开链接；预览由你的浏览器加载）",
        "vision.upload": "……或上传图片（PNG、JPEG、WebP、GIF、BMP，最大 10 MB）",
        "vision.question": "问题",
        "vision.question_placeholder": "这张图片里有什么？",
        "vision.ask": "提问",
        "vision.stop": "停止",
        "vision.new": "换图片 / 清空",
        "vision.chatbot": "回答",
        "vision.examples": "示例（点击后再按“提问”）",
        "vision.model_info": "选择视觉语言（VL）模型，也可以输入任意模型 ID。",
        "vision.hint": "先就图片提一个问题，然后可以继续追问：在点击“换图片 / 清空”之前，图片会一直保留在对话中。",
        "vision.need_image": "图片链接（https://…）或上传的图片",
        "vision.need_question": "关于图片的问题",
        "vision.shrunk_title": "📐 图片已缩小",
        "vision.shrunk": "发送前已将图片从 {w0}×{h0} 缩小到 {w}×{h} 像素：服务每边最多接受 {limit} 像素。",
        "vision.compressed": "发送前已将图片从 {mb0} MB 压缩到 {mb} MB，以免请求过大。",
    },
}

EXAMPLES = [
    ["red_circle.png", "图片里是什么形状？是什么颜色？"],
    ["bar_chart.png", "Which bar is the tallest, and roughly what is its value?"],
    ["street_sign.jpg", "这个路牌上写了什么？请翻译成英文。"],
    ["street_sign.jpg", "Read the text on this sign. What does it tell drivers to do?"],
]

# Runs in the browser only: the preview <img> is fetched by the user's browser, not the server.
PREVIEW_JS = """(url) => {
  const u = (url || "").trim();
  if (!/^https?:\\/\\/[^\\s"'<>]+$/i.test(u)) return "";
  const esc = u.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
  return `<img src="${esc}" alt="preview" referrerpolicy="no-referrer" style="max-width:100%;max-height:260px;border-radius:8px">`;
}"""


def t(key: str, lang: str) -> str:
    return STRINGS.get(lang, STRINGS["en"]).get(key) or STRINGS["en"][key]


def image_key(image_url: Any, image: Any) -> tuple[str | None, dict | None, dict | None, FittedPicture | None]:
    """(conversation key, image reference, image_url part, the fitted upload) for the inputs;
    the upload wins.

    The reference is what the conversation keeps: the upload's checked path in Gradio's
    cache or the URL, never the picture itself, so a session holds a few hundred bytes
    however large the picture. The part carries the upload fitted to the service (shrunk
    when a side is over 2048 px). ValidationError for a refused or bad upload, or a URL box
    holding anything but an http(s)/data:image URL (never a path on the server)."""
    found = read_fitted(image, field="image")
    if found is not None:
        upload, picture = found
        part = {"type": "image_url", "image_url": {"url": picture.data_url}}
        return f"file:{upload.digest}", {"upload": str(upload.path), "mime": upload.mime}, part, picture
    if image_url is not None and not isinstance(image_url, str):
        raise ValidationError("image_url", image_url, "an http(s) URL such as https://…/photo.png", kind="type")
    url = (image_url or "").strip()
    if url:
        part = url_image_part(url)  # refuses paths and other schemes before anything is kept
        return f"url:{hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]}", {"url": url}, part, None
    return None, None, None, None


def image_part_for(ref: dict) -> dict[str, Any]:
    """The image_url part for a kept reference: a follow-up re-reads a cached upload (bounded)
    and fits it the same way as the first question did (the same bytes give the same picture)."""
    if "url" in ref:
        return url_image_part(ref["url"])
    found = read_fitted(ref["upload"], field="image")
    if found is None:
        raise refused("image")
    return {"type": "image_url", "image_url": {"url": found[1].data_url}}


def shrink_note(picture: FittedPicture | None, lang: str) -> dict[str, Any] | None:
    """A note in the conversation when the upload was made smaller before sending (shown once,
    with the first question; never sent to the model), else None."""
    facts = shrink_facts(picture) if picture is not None else None
    if facts is None:
        return None
    kind, numbers = facts
    return {"role": "assistant", "content": t(f"vision.{kind}", lang).format(**numbers),
            "metadata": {"title": t("vision.shrunk_title", lang)}}


def with_image(messages: list[dict[str, Any]], part: dict[str, Any]) -> list[dict[str, Any]]:
    """The API messages: the conversation's text with the image put into its first message."""
    first = messages[0]
    return [{"role": "user", "content": [part, {"type": "text", "text": first["content"]}]}, *messages[1:]]


def _valid_conversation(conv: Any) -> dict | None:
    """The session's conversation if it has the shape this module writes (a State can only be
    written by our handler, but be strict anyway)."""
    if (isinstance(conv, dict) and isinstance(conv.get("key"), str) and isinstance(conv.get("image"), dict)
            and isinstance(conv.get("messages"), list) and isinstance(conv.get("display"), list)):
        return conv
    return None


def make_ask(ctx: AppContext):
    # Every parameter has a default, so a program can call /vision with just image_url and
    # question (gradio_client treats a parameter whose default is None as optional).
    def vision(image_url: str | None = None, image: str | None = None, question: str | None = None,
               model: str = catalog.DEFAULT_VISION_MODEL, conversation: dict | None = None,
               token_state: str | None = None, request: gr.Request = None):
        """Ask `model` a `question` about an image given as `image_url` (http(s) link) and/or
        `image` (an upload; it wins when both are given). Later calls in the same session
        without an image (or with the same image) are follow-ups about it. Streams the
        conversation as Chatbot messages."""
        lang = lang_of(request)
        before = _valid_conversation(conversation)
        try:
            question = check_text("question", question, max_chars=MESSAGE_MAX_CHARS,
                                  allowed=t("vision.need_question", "en")).strip()
            key, ref, part, picture = image_key(image_url, image)
            note = None
            if key is not None and (before is None or before.get("key") != key):
                text_messages = [{"role": "user", "content": question}]  # a new conversation
                display: list[dict[str, Any]] = [
                    {"role": "user", "content": {"path": ref["upload"]} if "upload" in ref else f"![image]({ref['url']})"}
                ]
                note = shrink_note(picture, lang)  # once, with the first question
            elif before is not None:  # a follow-up: the image is already in the first message
                if len(before["messages"]) + 2 > HISTORY_MAX_MESSAGES:
                    raise ValidationError("question", "a very long conversation",
                                          f"at most {HISTORY_MAX_MESSAGES} messages", kind="too_many",
                                          limit=HISTORY_MAX_MESSAGES)
                if key != before["key"]:  # no image given: the kept one, read and fitted again
                    part = image_part_for(before["image"])
                key, ref = before["key"], before["image"]
                text_messages = [*before["messages"], {"role": "user", "content": question}]
                display = list(before["display"])
            else:
                raise ValidationError("image_url", image_url or "", t("vision.need_image", "en"), kind="empty")
            picture = None  # its bytes travel in the part only
            display.append({"role": "user", "content": question})
            if note is not None:
                display.append(note)
            req = ChatRequest(model=model.strip() if isinstance(model, str) else model,
                              messages=with_image(text_messages, part))
            req.validate()
        except ValidationError as err:
            report(err, lang, ctx.site)
            yield [*(before["display"] if before else []), error_note(err, lang, ctx.site)], *[gr.skip()] * 4
            return
        events = _send(ctx, req, display, key, ref, text_messages, token_state, request, lang)
        # an uploaded picture went inline: free its copies as soon as this answer ends
        yield from (_then_collect(events) if "upload" in ref else events)

    return vision


def _then_collect(events):
    try:
        yield from events
    finally:
        collect_after_inline_picture()


def _send(ctx: AppContext, req: ChatRequest, display: list, key: str, ref: dict, text_messages: list,
          token_state: str | None, request, lang: str):
    """Stream the answer into the conversation; the last yield carries the new conversation."""
    token, kind = ctx.token_for(token_state, request)
    code = chat_code(req, ctx.base_url)
    # Unchanged values re-sent while streaming are cheaper than gr.skip() (see AppContext);
    # the question box keeps skip so a follow-up typed meanwhile is not overwritten.
    shown_quota = ctx.quota_line(session_id(request))
    yield display, gr.skip(), gr.skip(), shown_quota, code
    turn = Turn(source=kind)
    try:
        for turn in stream_turn(ctx, req, token, kind, ctx.student_of(request)):
            yield display + turn.messages(lang), gr.skip(), gr.skip(), shown_quota, code
        answer, shown, quota = turn.content, display + turn.messages(lang), turn.quota
    except IncompleteStreamError as err:
        cut = Turn(source=kind, reasoning_parts=[p for p in [err.partial_reasoning] if p],
                   content_parts=[err.partial_content])
        answer, shown, quota = err.partial_content, display + cut.messages(lang, cut=True), err.quota
        report(err, lang, ctx.site)
    except (ModelScopeError, QuotaCapReached) as err:
        # The conversation stays as it was; the question stays in its box for another try.
        report(err, lang, ctx.site)
        yield (display + turn.messages(lang) + [error_note(err, lang, ctx.site)], gr.skip(), gr.skip(),
               quota_line(ctx, getattr(err, "quota", None), kind, request, lang, err), code)
        return
    new_conv = {"key": key, "image": ref, "display": shown,
                "messages": [*text_messages, {"role": "assistant", "content": answer}]}
    yield shown, new_conv, "", quota_line(ctx, quota, kind, request, lang), code


def build(ctx: AppContext, shared: Shared) -> gr.Dropdown:
    """Render the tab; returns its model list (app.py refreshes the choices on each load)."""
    conversation = gr.State(None)
    gr.Markdown(I18nData("vision.hint"))
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            image_url = gr.Textbox(label=I18nData("vision.image_url"), max_lines=1,
                                   placeholder=I18nData("vision.image_url_placeholder"))
            preview = gr.HTML("")
            image = gr.Image(type="filepath", label=I18nData("vision.upload"), image_mode=None,
                             sources=["upload", "clipboard"], height=240)
            model = gr.Dropdown(ctx.models.vision(), value=catalog.DEFAULT_VISION_MODEL,
                                allow_custom_value=True, label=I18nData("common.model"),
                                info=I18nData("vision.model_info"))
        with gr.Column(scale=2):
            chatbot = gr.Chatbot(label=I18nData("vision.chatbot"), height=440, layout="bubble")
            question = gr.Textbox(label=I18nData("vision.question"), lines=2,
                                  placeholder=I18nData("vision.question_placeholder"))
            with gr.Row():
                ask_btn = gr.Button(I18nData("vision.ask"), variant="primary")
                stop_btn = gr.Button(I18nData("vision.stop"), variant="stop")
                new_btn = gr.Button(I18nData("vision.new"))
            examples = gr.Examples([[str(ASSETS / f), q] for f, q in EXAMPLES if (ASSETS / f).is_file()],
                                   inputs=[image, question], label=I18nData("vision.examples"),
                                   cache_examples=False)
            examples.dataset.headers = []  # the table's headers would not be translated
            code = code_accordion()

    # Browser-only: preview the URL, and keep one image source at a time.
    image_url.change(None, image_url, preview, js=PREVIEW_JS)
    image_url.input(None, None, image, js="() => null")
    image.upload(None, None, [image_url, preview], js="() => ['', '']")

    # Same handler twice: the browser's event shows errors as notes in the conversation (a
    # failed event would hide it under an "Error" badge); the public /vision raises them.
    inputs = [image_url, image, question, model, conversation, shared.token_state]
    outputs = [chatbot, conversation, question, shared.quota_md, code]
    # preprocess=False: the upload arrives as Gradio's file record (still confined to its upload
    # cache) and is checked by our Pillow validation, which names the field, instead of failing
    # inside gr.Image's own decoding with a generic error.
    ask = make_ask(ctx)
    ask_event = gr.on([ask_btn.click, question.submit], ask, inputs, outputs, api_name="vision_in_browser",
                      api_visibility="private", preprocess=False,
                      concurrency_limit=ctx.concurrency, concurrency_id="vision", show_progress="minimal")
    api_btn = gr.Button(visible=False)
    api_btn.click(raise_errors(ask), inputs, outputs, api_name="vision", preprocess=False,
                  concurrency_limit=ctx.concurrency, concurrency_id="vision")
    stop_btn.click(None, cancels=[ask_event])
    new_btn.click(lambda: ("", None, "", [], None, ""), None,
                  [image_url, image, preview, chatbot, conversation, question],
                  queue=False, api_visibility="private")
    chatbot.clear(lambda: None, None, conversation, queue=False, api_visibility="private")
    return model
