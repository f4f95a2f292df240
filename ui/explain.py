"""Turn any failure into one plain-language sentence a student can act on, in 中文 or English.

The API module's errors carry the facts (class = meaning, status, server message, request id);
the words for people live here.
"""

from __future__ import annotations

from modelscope_api import errors as E
from modelscope_api.config import Site

from .context import QuotaCapReached

TOKEN_PAGE = E.TOKEN_PAGE
ACCOUNT_PAGE = E.ACCOUNT_PAGE

# (English, 中文) for each meaning; {msg} is the server's own message.
_TEXT: dict[type | str, tuple[str, str]] = {
    E.MissingTokenError: (
        f"No ModelScope token yet. Get one at {TOKEN_PAGE}, then paste it into the token box "
        "at the top (or set MODELSCOPE_ACCESS_TOKEN).",
        f"还没有 ModelScope 访问令牌。请到 {TOKEN_PAGE} 获取，然后粘贴到页面顶部的令牌框"
        "（或设置环境变量 MODELSCOPE_ACCESS_TOKEN）。",
    ),
    E.AccountNotBoundError: (
        "Your ModelScope account is not bound to an Alibaba Cloud (Aliyun) account yet. "
        f"Bind it at {ACCOUNT_PAGE}, then try again.",
        f"你的 ModelScope 账号还没有绑定阿里云账号。请到 {ACCOUNT_PAGE} 完成绑定后再试。",
    ),
    E.AuthenticationError: (
        f"The token was refused (401). Copy a fresh access token from {TOKEN_PAGE}.",
        f"令牌无效（401）。请到 {TOKEN_PAGE} 复制一个新的访问令牌。",
    ),
    E.PermissionDeniedError: (
        "Access denied (403): the bound Aliyun account must pass real-name verification "
        f"first ({ACCOUNT_PAGE}).",
        f"没有权限（403）：绑定的阿里云账号需要先完成实名认证（{ACCOUNT_PAGE}）。",
    ),
    # 429: only a remaining count of 0 in the headers means the day's quota is used up.
    E.QuotaExhaustedError: (
        "Today's free quota is used up (429: {msg}). Try another model, or come back tomorrow.",
        "今天的免费额度已用完（429：{msg}）。可以换一个模型，或明天再试。",
    ),
    E.TooManyRequestsError: (
        "Too many requests right now (429: {msg}). Wait a moment and try again; today's quota "
        "is not used up.",
        "当前请求太多（429：{msg}）。请稍等片刻再试；今天的额度还没有用完。",
    ),
    E.RateLimitError: (
        "ModelScope is refusing calls for now (429: {msg}). Wait a moment and try again; if it "
        "keeps happening, today's quota may be used up: then try another model or come back tomorrow.",
        "ModelScope 暂时拒绝了请求（429：{msg}）。请稍等片刻再试；如果一直这样，可能是今天的额度已用完，"
        "可以换一个模型或明天再试。",
    ),
    E.ValidationError: ("{msg}. Nothing was sent.", "{msg}。请求未发送。"),
    E.ModelNotServedError: (
        "API-Inference does not serve this model right now ({msg}); the list of free models "
        "changes often. Pick another model from the list.",
        "API-Inference 目前不提供这个模型（{msg}）；免费模型的列表经常变化。请从列表中另选一个模型。",
    ),
    E.ThinkingNeedsStreamError: (
        "This model thinks before it answers, and thinking only works with a streamed answer "
        "({msg}). Stream the answer, or switch thinking off.",
        "这个模型会先思考再回答，而思考只能在流式输出时使用（{msg}）。请使用流式输出，或关闭深度思考。",
    ),
    E.UnexplainedRefusalError: (
        "The server refused the request without saying why (400). If every request does this, "
        f"your account may not be bound to an Alibaba Cloud account yet: bind it at {ACCOUNT_PAGE}.",
        "服务器拒绝了请求，但没有说明原因（400）。如果每次请求都这样，可能是你的账号还没有绑定阿里云账号："
        f"请到 {ACCOUNT_PAGE} 完成绑定。",
    ),
    E.InvalidRequestError: (
        "The server did not accept the request: {msg}",
        "服务器不接受这个请求：{msg}",
    ),
    E.EmptyAnswerError: (
        "The model returned no answer. Try again, or pick another model.",
        "模型没有返回任何回答。请重试，或换一个模型。",
    ),
    E.ServerError: (
        "ModelScope is busy or having trouble ({msg}). Your work is kept; try again in a moment.",
        "ModelScope 服务繁忙或出错（{msg}）。你的内容已保留，请稍后再试。",
    ),
    E.IncompleteStreamError: (
        "The answer was cut off ({msg}). The part received is kept; try again.",
        "回答中途断开（{msg}）。已收到的部分已保留，请重试。",
    ),
    E.APIConnectionError: (
        "Could not reach the server ({msg}). Check the network and try again.",
        "无法连接服务器（{msg}）。请检查网络后重试。",
    ),
    E.TaskCanceledByServerError: (
        "The server cancelled the image task (status {status}). Generate it again.",
        "服务器取消了这个图片任务（状态 {status}）。请重新生成。",
    ),
    E.TaskStatusUnknownError: (
        "The server lost track of the image task (status {status}). Generate it again.",
        "服务器无法确定这个图片任务的状态（状态 {status}）。请重新生成。",
    ),
    E.TaskFailedError: (
        "The image task failed on the server: {msg}",
        "图片任务在服务器上失败：{msg}",
    ),
    E.TaskNotFoundError: (
        "The server no longer knows this image task (task not found). Generate it again.",
        "服务器找不到这个图片任务（task not found）。请重新生成。",
    ),
    E.ImageDownloadError: (
        "The picture was made, but it could not be downloaded ({msg}). Output links expire "
        "soon after a task ends; generate it again.",
        "图片已生成，但无法下载（{msg}）。输出链接在任务结束后很快会过期，请重新生成。",
    ),
    E.TaskTimeoutError: (
        "The image did not finish in time ({msg}). The server may be busy; try again later.",
        "图片没有按时生成（{msg}）。服务器可能繁忙，请稍后再试。",
    ),
    E.TaskCancelledError: ("Cancelled.", "已取消。"),
}


_TEXT["model_quota"] = (  # a QuotaExhaustedError where only this model's count is 0
    "This model's free quota for today is used up (429: {msg}); other models still answer. "
    "Pick another model, or come back tomorrow.",
    "这个模型今天的免费额度已用完（429：{msg}）；其他模型仍可使用。请换一个模型，或明天再试。",
)


def lang_of(request) -> str:
    """'zh' when the browser prefers Chinese, else 'en' (for messages built at run time)."""
    headers = getattr(request, "headers", None) or {}
    try:
        accept = headers.get("accept-language") or ""
    except AttributeError:
        accept = ""
    first = accept.split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"


def explain(err: BaseException, lang: str = "en", site: Site | None = None) -> str:
    """One sentence for the user; adds the request id when the server gave one. Links point
    at `site` (the website of the API host in use; modelscope.cn when not given)."""
    text = _explain(err, lang)
    return site.localize(text) if site is not None else text


def _explain(err: BaseException, lang: str) -> str:
    idx = 1 if lang == "zh" else 0
    if isinstance(err, QuotaCapReached):
        if err.scope == "day":
            en = (f"The class has used today's {err.limit} requests on the shared token. "
                  "Paste your own ModelScope token at the top to go on.")
            zh = f"全班今天在共享令牌上的 {err.limit} 次请求已用完。请在页面顶部填写你自己的 ModelScope 令牌继续使用。"
        else:
            en = (f"You have used your {err.limit} requests on the shared token. "
                  "Paste your own ModelScope token at the top to go on.")
            zh = f"你在共享令牌上的 {err.limit} 次请求已用完。请在页面顶部填写你自己的 ModelScope 令牌继续使用。"
        return (en, zh)[idx]
    for cls in type(err).__mro__:
        if cls in _TEXT:
            key = "model_quota" if cls is E.QuotaExhaustedError and err.model_only else cls
            text = _TEXT[key][idx].format(msg=getattr(err, "message", None) or str(err),
                                          status=getattr(err, "task_status", None) or "")
            break
    else:
        text = (("Unexpected error: {msg}", "意外错误：{msg}")[idx]).format(msg=str(err) or type(err).__name__)
    request_id = getattr(err, "request_id", None)
    task_id = getattr(err, "task_id", None)
    if task_id and task_id not in text:
        text += f" (task {task_id})" if idx == 0 else f"（任务 {task_id}）"
    if request_id:
        text += f" [request_id: {request_id}]"
    return text
