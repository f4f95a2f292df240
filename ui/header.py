"""The top of the page: title, offline banner, the user's own token, the quota line.

The token typed here goes into `shared.token_state` (a gr.State: its value stays on the
server) through PRIVATE events only, so it is never part of a public endpoint's recorded
inputs. "Remember on this device" keeps it in an encrypted gr.BrowserState. Nothing here ever
shows the server's token.
"""

from __future__ import annotations

import hashlib
import os

import gradio as gr
from gradio.i18n import I18nData

from modelscope_api import catalog, config, wire
from modelscope_api.chat import ChatClient
from modelscope_api.errors import EmptyAnswerError, MissingTokenError, ModelScopeError

from .context import SOURCE_SERVER, AppContext, QuotaCapReached, session_id
from .explain import explain, lang_of
from .shared import Shared, answered_by_server, clear_quota, format_quota

BROWSER_KEY = "modelscope-studio-token"
STUDENT_KEY = "modelscope-studio-student"  # a random id: the per-student cap follows the browser
BROWSER_SECRET_ENV = "STUDIO_BROWSER_SECRET"  # set it so remembered tokens survive restarts


def browser_state_key() -> str | None:
    """The key for "Remember on this device". Gradio puts a BrowserState's key in the page
    config, so only a hash of the configured value is used, never the value itself; unset,
    Gradio picks a random key per start (remembered tokens then end with a restart)."""
    value = os.environ.get(BROWSER_SECRET_ENV, "").strip()
    if not value:
        return None
    return hashlib.sha256(("modelscope-studio/browser-state/" + value).encode("utf-8")).hexdigest()[:32]

_HELP_EN = """1. Create a free account at [{name}]({home}).
2. Open your [access token page]({token_page}) and copy a token (it starts with `ms-`).
3. Bind your account to an Alibaba Cloud (Aliyun) account on [your account page]({account_page}).
4. Make sure the Aliyun account has passed real-name verification.
5. Paste the token into the box above. Tick “Remember on this device” only on your own computer.

The free API allows about 2000 calls a day per account (fewer per model)."""

_HELP_ZH = """1. 在 [{name}]({home}) 注册一个免费账号。
2. 打开[访问令牌页面]({token_page})，复制一个令牌（以 `ms-` 开头）。
3. 在[账号设置页面]({account_page})把账号绑定到阿里云账号。
4. 确认该阿里云账号已完成实名认证。
5. 把令牌粘贴到上面的输入框。只在自己的电脑上勾选“在此设备上记住”。

免费 API 每个账号每天约 2000 次调用（每个模型更少）。"""


def help_text(template: str, site: config.Site) -> str:
    """The token help with the links of the site that goes with the API host."""
    return template.format(name=site.home.split("//", 1)[1], home=site.home,
                           token_page=site.token_page, account_page=site.account_page)


_CN, _AI = (config.Site(home) for home in (wire.DEFAULT_SITE, "https://modelscope.ai"))


def help_key(site: config.Site) -> str:
    """The i18n key of the help for `site` (one per website: the tables are built once)."""
    return "header.help_ai" if site.home == _AI.home else "header.help"


STRINGS = {
    "en": {
        "header.title_md": "# 🤖 ModelScope API-Inference Studio\nChat, ask about images and make "
                           "pictures with ModelScope's free API — and see the Python behind every request.",
        "header.token_label": "Your ModelScope access token",
        "header.token_placeholder": "ms-…  (kept for this browser tab only)",
        "header.remember": "Remember on this device",
        "header.check": "Check token",
        "header.quota_label": "Quota",
        "header.server_token": "✅ This studio has a shared class token, so you can start right away. "
                               "Paste your own token to use yours instead.",
        "header.offline_token": "🧪 Offline mode: every request goes to the built-in simulator; no token needed.",
        "header.no_token": "🔑 No token yet: paste your ModelScope access token above "
                           "(see “How do I get a token?” below).",
        "header.help_title": "How do I get a ModelScope token?",
        "header.help": help_text(_HELP_EN, _CN),
        "header.help_ai": help_text(_HELP_EN, _AI),
        "header.using_own": "🔐 Your own token is set for this browser tab; your requests use it.",
        "header.not_ms": " It does not look like a ModelScope token (those start with `ms-`).",
        "header.cleared_server": "Token box empty: requests use the shared class token again.",
        "header.cleared_none": "Token box empty: no token is set.",
        "header.remembered": "💾 Your token will be remembered on this device (encrypted in this browser).",
        "header.forgotten": "🧹 This device no longer remembers a token.",
        "header.loaded": "💾 Using the token remembered on this device.",
        "header.check_ok": "✅ The token works: `{model}` answered.",
        "header.check_ok_server": "✅ The shared class token works: `{model}` answered.",
        "header.check_hollow": "✅ The server accepted the token, but `{model}` returned no answer this time. "
                               "The token is fine; if chats stay empty, pick another model.",
        "header.check_fail": "❌ {reason}",
    },
    "zh": {
        "header.title_md": "# 🤖 ModelScope API-Inference 工作室\n用 ModelScope 免费 API 聊天、看图问答、"
                           "生成图片——并查看每个请求背后的 Python 代码。",
        "header.token_label": "你的 ModelScope 访问令牌",
        "header.token_placeholder": "ms-…（只保存在当前浏览器标签页）",
        "header.remember": "在此设备上记住",
        "header.check": "检查令牌",
        "header.quota_label": "额度",
        "header.server_token": "✅ 本工作室已配置全班共享的令牌，可以直接开始使用。填写你自己的令牌后将改用你的令牌。",
        "header.offline_token": "🧪 离线模式：所有请求都发往内置模拟器，无需令牌。",
        "header.no_token": "🔑 还没有令牌：请在上面粘贴你的 ModelScope 访问令牌（获取方法见下方“如何获取令牌？”）。",
        "header.help_title": "如何获取 ModelScope 令牌？",
        "header.help": help_text(_HELP_ZH, _CN),
        "header.help_ai": help_text(_HELP_ZH, _AI),
        "header.using_own": "🔐 已为当前标签页设置你自己的令牌，你的请求将使用它。",
        "header.not_ms": " 它看起来不像 ModelScope 令牌（应以 `ms-` 开头）。",
        "header.cleared_server": "令牌框已清空：请求将重新使用全班共享令牌。",
        "header.cleared_none": "令牌框已清空：当前没有令牌。",
        "header.remembered": "💾 将在此设备上记住你的令牌（在浏览器中加密保存）。",
        "header.forgotten": "🧹 此设备不再记住令牌。",
        "header.loaded": "💾 正在使用此设备上记住的令牌。",
        "header.check_ok": "✅ 令牌可用：`{model}` 已回答。",
        "header.check_ok_server": "✅ 全班共享令牌可用：`{model}` 已回答。",
        "header.check_hollow": "✅ 服务器接受了这个令牌，但 `{model}` 这次没有返回回答。令牌没有问题；"
                               "如果对话一直没有回答，请换一个模型。",
        "header.check_fail": "❌ {reason}",
    },
}


def t(key: str, lang: str, **fmt) -> str:
    value = STRINGS.get(lang, STRINGS["en"]).get(key) or STRINGS["en"][key]
    return value.format(**fmt) if fmt else value


TOKEN_MAX_CHARS = 512  # a ModelScope token is ~40 characters


def _clean(token) -> str | None:
    """A pasted or remembered token, stripped; None for blank, not text, or absurdly long."""
    if not isinstance(token, str) or len(token) > TOKEN_MAX_CHARS:
        return None
    return token.strip() or None


def initial_status_key(ctx: AppContext) -> str:
    if ctx.offline:
        return "header.offline_token"
    return "header.server_token" if ctx.server_token else "header.no_token"


# --------------------------------------------------------------------------- handlers (private)


def make_handlers(ctx: AppContext):
    def set_token(value: str, remember: bool, request: gr.Request):
        lang = lang_of(request)
        token = _clean(value)
        if token:
            ctx.session_tokens[session_id(request)] = config.fingerprint(token)
        else:
            ctx.session_tokens.pop(session_id(request))
        if token is None:
            status = t("header.cleared_server" if ctx.server_token else "header.cleared_none", lang)
        else:
            status = t("header.using_own", lang) + ("" if token.startswith("ms-") else t("header.not_ms", lang))
        # another token: the previous one's quota numbers say nothing about it
        return token, (token if remember else gr.skip()), status, clear_quota(ctx, request)

    def set_remember(remember: bool, token_state: str | None, request: gr.Request):
        lang = lang_of(request)
        if remember:
            return _clean(token_state), t("header.remembered", lang)
        return None, t("header.forgotten", lang)

    def load_remembered(stored, stored_student, request: gr.Request):
        student = ctx.identify(session_id(request), stored_student)
        student_out = gr.skip() if student == stored_student else student
        token = _clean(stored)
        if token is None:
            return gr.skip(), gr.skip(), gr.skip(), student_out
        ctx.session_tokens[session_id(request)] = config.fingerprint(token)
        return token, True, t("header.loaded", lang_of(request)), student_out

    def check_token(token_state: str | None, request: gr.Request):
        lang = lang_of(request)
        token, source = ctx.token_for(token_state, request)
        student = ctx.student_of(request)
        model = catalog.DEFAULT_CHAT_MODEL
        try:
            if not token:
                raise MissingTokenError("No ModelScope token was given.")
            if source == SOURCE_SERVER:
                ctx.guard.take(student)
            try:
                result = ChatClient(token, ctx.base_url).check_token(model)
            except BaseException as err:
                ctx.settle(err, source, student)  # never reached the server: given back
                raise
        except EmptyAnswerError as err:  # a 200 that carried nothing: the token was accepted
            quota = format_quota(ctx, err.quota, source, request, lang, answered=True)
            return t("header.check_hollow", lang, model=model), quota or gr.skip()
        except (ModelScopeError, QuotaCapReached) as err:
            quota = format_quota(ctx, getattr(err, "quota", None), source, request, lang,
                                 answered=answered_by_server(err))
            return t("header.check_fail", lang, reason=explain(err, lang, ctx.site)), quota or gr.skip()
        key = "header.check_ok_server" if source == SOURCE_SERVER else "header.check_ok"
        quota = format_quota(ctx, result.quota, source, request, lang, answered=True)
        return t(key, lang, model=model), quota or gr.skip()

    return set_token, set_remember, load_remembered, check_token


def build(ctx: AppContext, demo: gr.Blocks) -> Shared:
    """Render the header; returns what every tab needs (the token State and the quota line)."""
    token_state = gr.State(None)
    stored = gr.BrowserState(None, storage_key=BROWSER_KEY, secret=browser_state_key())
    stored_student = gr.BrowserState(None, storage_key=STUDENT_KEY, secret=browser_state_key())
    gr.Markdown(I18nData("header.title_md"))
    if ctx.offline:
        gr.Markdown(I18nData("app.offline_banner"), elem_classes=["offline-banner"])
    with gr.Row(equal_height=True):
        token_box = gr.Textbox(label=I18nData("header.token_label"), type="password", scale=4,
                               placeholder=I18nData("header.token_placeholder"), max_lines=1)
        with gr.Column(scale=1, min_width=180):
            remember = gr.Checkbox(False, label=I18nData("header.remember"))
            check_btn = gr.Button(I18nData("header.check"), size="sm")
    status = gr.Markdown(I18nData(initial_status_key(ctx)))
    quota_md = gr.Markdown("", label=I18nData("header.quota_label"))
    with gr.Accordion(I18nData("header.help_title"), open=not (ctx.server_token or ctx.offline)):
        gr.Markdown(I18nData(help_key(ctx.site)))

    set_token, set_remember, load_remembered, check_token = make_handlers(ctx)

    def forget(request: gr.Request):  # the page closed: drop what the session left behind
        ctx.forget_session(session_id(request))

    private = {"api_visibility": "private", "show_progress": "hidden"}
    token_box.change(set_token, [token_box, remember], [token_state, stored, status, quota_md],
                     queue=False, **private)
    remember.input(set_remember, [remember, token_state], [stored, status], queue=False, **private)
    demo.load(load_remembered, [stored, stored_student], [token_state, remember, status, stored_student],
              queue=False, **private)
    demo.unload(forget)
    check_btn.click(check_token, token_state, [status, quota_md], concurrency_limit=ctx.concurrency,
                    concurrency_id="check", api_visibility="private")
    return Shared(token_state=token_state, quota_md=quota_md)
