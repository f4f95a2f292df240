"""P1's floor: a bare gr.ChatInterface that waits (the server's TTFT) and yields once.

    python bench/floor_app.py --port P [--delay 0.3]
"""

from __future__ import annotations

import argparse
import time

import gradio as gr


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay", type=float, default=0.3)
    args = p.parse_args()

    def respond(message, history):
        time.sleep(args.delay)
        yield "ok"

    demo = gr.ChatInterface(respond, api_name="chat", concurrency_limit=None)
    demo.launch(server_name="127.0.0.1", server_port=args.port)


if __name__ == "__main__":
    main()
