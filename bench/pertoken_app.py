"""P2's per-token baseline: a small gr.ChatInterface over the openai SDK that yields after
every token, the way `gr.load_chat(..., streaming=True)` does (the same loop; a plain text box,
max_tokens and the X-ModelScope-Token header added so it can be driven like the studio).

    python bench/pertoken_app.py --port P --base-url http://127.0.0.1:S/ [--model M]
"""

from __future__ import annotations

import argparse
from functools import lru_cache

import gradio as gr
from openai import OpenAI


def text_of(content) -> str:
    """A plain-text Chatbot message's content (a str, or Gradio's list of text parts)."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", default="Qwen/Qwen2.5-72B-Instruct")
    args = p.parse_args()
    base = args.base_url.rstrip("/") + "/v1/"

    @lru_cache(maxsize=256)
    def client_for(token: str) -> OpenAI:  # gr.load_chat makes one client up front
        return OpenAI(api_key=token, base_url=base, max_retries=0)

    def respond(message: str, history: list, max_tokens: float, request: gr.Request):
        client = client_for(request.headers.get("x-modelscope-token") or "ms-test-bench")
        conversation = [{"role": m["role"], "content": text_of(m["content"])} for m in history or []]
        conversation.append({"role": "user", "content": message})
        stream = client.chat.completions.create(model=args.model, messages=conversation, stream=True,
                                                max_tokens=int(max_tokens) or None)
        response = ""
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content is not None:
                response += chunk.choices[0].delta.content
                yield response

    demo = gr.ChatInterface(respond, additional_inputs=[gr.Number(0, precision=0, label="max_tokens")],
                            api_name="chat", concurrency_limit=None)
    demo.launch(server_name="127.0.0.1", server_port=args.port)


if __name__ == "__main__":
    main()
