"""What app.py hands to every tab's `build(ctx, shared)`: the session's token state and the
header's quota display, plus the few helpers all tabs use the same way."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modelscope_api import Quota
from modelscope_api.errors import ModelScopeError

from .context import SOURCE_SERVER, AppContext, session_id


@dataclass
class Shared:
    token_state: gr.State  # the browser session's own token (filled by a private event)
    quota_md: gr.Markdown  # the header's quota line; handlers may output format_quota(...) to it


def answered_by_server(err: BaseException | None) -> bool:
    """Whether a call that ended with `err` (None: it succeeded) got a reply from ModelScope,
    whose headers then say what the quota is (or, by their absence, that it is unknown)."""
    return err is None or (isinstance(err, ModelScopeError) and err.status is not None)


def clear_quota(ctx: AppContext, request) -> str:
    """Forget the session's quota line (a new token has numbers of its own): "" to show."""
    ctx.remember_quota_line(session_id(request), "")
    return ""


def format_quota(ctx: AppContext, quota: Quota | None, source: str, request, lang: str = "en", *,
                 answered: bool = False) -> str:
    """One Markdown line: today's remaining calls, this model's, and the class cap if any.

    answered: the call got a reply. A reply without the rate-limit headers (metering by
    credits, seen in 2026) makes the line say the quota is unknown instead of keeping the
    previous reply's numbers."""
    zh = lang == "zh"
    parts = []
    if answered and (quota is None or (quota.requests_remaining is None
                                       and quota.model_requests_remaining is None)):
        parts.append("未知（服务器这次没有返回额度信息）" if zh
                     else "unknown (the server's reply carried no quota figures)")
    if quota and quota.requests_remaining is not None:
        total = f"/{quota.requests_limit}" if quota.requests_limit else ""
        parts.append(("今日剩余调用 " if zh else "Calls left today: ") + f"**{quota.requests_remaining}{total}**")
    if quota and quota.model_requests_remaining is not None:
        total = f"/{quota.model_requests_limit}" if quota.model_requests_limit else ""
        parts.append(("本模型剩余 " if zh else "this model: ") + f"**{quota.model_requests_remaining}{total}**")
    if source == SOURCE_SERVER and ctx.guard.enabled:
        left = ctx.guard.remaining(ctx.student_of(request))
        if left["session"] is not None:
            parts.append(("共享令牌上你还可用 " if zh else "your share of the class token: ") + f"**{left['session']}**")
        if left["day"] is not None:
            parts.append(("全班今日还可用 " if zh else "class today: ") + f"**{left['day']}**")
    if not parts:
        return ""
    line = ("📊 额度：" if zh else "📊 Quota — ") + " · ".join(parts)
    ctx.remember_quota_line(session_id(request), line)
    return line
