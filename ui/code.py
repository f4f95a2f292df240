"""The "Show code" accordion every tab shows under its controls: the Python behind the last
request of this browser session (a per-session event output, so nobody sees anyone else's),
with the token read from the environment, never written into the code."""

from __future__ import annotations

import gradio as gr
from gradio.i18n import I18nData

from modelscope_api import snippets
from modelscope_api.chat import ChatRequest
from modelscope_api.protocols import ANTHROPIC, OPENAI


def code_box(render: bool = True) -> gr.Code:
    return gr.Code(value="", language="python", label=I18nData("common.code_label"),
                   interactive=False, lines=12, max_lines=40, render=render)


def code_accordion(code: gr.Code | None = None, open: bool = False) -> gr.Code:
    """An Accordion "Show code" holding `code` (rendered here; made if not given); returns it.

    Pass a `code_box(render=False)` when an event defined earlier must already name it."""
    with gr.Accordion(I18nData("common.show_code"), open=open):
        gr.Markdown(I18nData("common.copy_hint"))
        if code is None:
            return code_box()
        code.render()
        return code


def chat_code(req: ChatRequest, base_url: str | None, protocol: str = OPENAI) -> str:
    """The protocol's script (snippets.chat_snippet or anthropic_snippet), or a comment if it
    cannot be rendered."""
    render = snippets.anthropic_snippet if protocol == ANTHROPIC else snippets.chat_snippet
    try:
        return render(req, base_url)
    except Exception as exc:  # a snippet must never break a chat
        return f"# could not render the code for this request: {type(exc).__name__}"
