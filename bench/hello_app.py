"""P5's baseline: Gradio's hello world, launched the way app.py launches.

    python bench/hello_app.py --port P
"""

from __future__ import annotations

import argparse

import gradio as gr

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
args = p.parse_args()
gr.Interface(lambda x: x, "text", "text").launch(server_name="127.0.0.1", server_port=args.port)
