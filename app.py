"""ModelScope API-Inference Studio — the composition root: arguments, building, launching.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--offline] [--mcp]

Environment: MODELSCOPE_ACCESS_TOKEN (a shared server token, e.g. a Space secret),
MODELSCOPE_BASE_URL, STUDIO_CONCURRENCY, STUDIO_MAX_QUEUE, STUDIO_SERVER_TOKEN_*_LIMIT,
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (set by Spaces).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import secrets
import sys

import gradio as gr
from gradio.i18n import I18nData
from starlette.middleware import Middleware

from ui import chat_tab, door, header, images_tab, vision_tab
from ui.context import AppContext
from ui.door import KIND_CHAT, KIND_IMAGE, QueueDoor
from ui.edge import StudioEdge, lean_sessions
from ui.i18n import make_i18n

CSS = ".offline-banner { background: #fff4d6; border: 1px solid #f0c36d; border-radius: 8px; padding: 4px 12px; }"
STRINGS = {"en": {"app.tab_images": "Text-to-Image"}, "zh": {"app.tab_images": "文生图"}}
# Concurrency groups whose jobs count against a user's fair share (ui/door.py).
FAIR_KINDS = {"chat": KIND_CHAT, "vision": KIND_CHAT, "check": KIND_CHAT, "images": KIND_IMAGE}


def build_app(ctx: AppContext) -> gr.Blocks:
    lean_sessions()  # no per-session deep-link copy (deep links are off: ui/edge.py)
    with gr.Blocks(title="ModelScope API-Inference Studio", delete_cache=(3600, 86400)) as demo:
        shared = header.build(ctx, demo)
        with gr.Tabs():
            with gr.Tab(I18nData("chat.tab"), id="chat"):
                chat_model = chat_tab.build(ctx, shared)
            with gr.Tab(I18nData("vision.tab"), id="vision"):
                vision_model = vision_tab.build(ctx, shared)
            with gr.Tab(I18nData("app.tab_images"), id="images"):
                images_tab.build(ctx, shared)

        def fresh_models():
            """The model lists as last fetched in the background (a read of the cache: the
            page load never waits for the service)."""
            return gr.update(choices=ctx.models.chat()), gr.update(choices=ctx.models.vision())

        demo.load(fresh_models, None, [chat_model, vision_model], queue=False,
                  show_progress="hidden", api_visibility="private")
    # api_open=False: Gradio opens /gradio_api/run/<name> past the queue (and so past every
    # concurrency limit and fair share) everywhere but on Hugging Face; a Space must not.
    demo.queue(default_concurrency_limit=ctx.concurrency, max_size=ctx.max_queue, api_open=False)
    QueueDoor(ctx, FAIR_KINDS).install(demo)
    return demo


def thread_budget(demo: gr.Blocks, ctx: AppContext) -> int:
    """Worker threads for every I/O-bound concurrency group at its limit (a streaming sync
    handler holds a thread while it waits for tokens), one more default-sized group for the
    quick events, plus headroom. Threads are only started when needed."""
    groups = {fn.concurrency_id: fn.concurrency_limit for fn in demo.fns.values()
              if isinstance(fn.concurrency_limit, int)}
    return max(40, sum(groups.values()) + ctx.concurrency + 16)


def launch_kwargs(demo: gr.Blocks, ctx: AppContext) -> dict:
    tables = [chat_tab.STRINGS, vision_tab.STRINGS, header.STRINGS, images_tab.STRINGS, door.STRINGS,
              STRINGS]
    return {"i18n": make_i18n(*tables), "max_threads": thread_budget(demo, ctx), "css": CSS,
            "max_file_size": "20mb", "theme": gr.themes.Soft(),
            "app_kwargs": {"middleware": [Middleware(StudioEdge)]},  # deep links off, bodies bounded
            # Gradio keeps public runs (prompts, images) in the browser; on a shared classroom
            # laptop the next student would see them. Off unless the owner opts in.
            "run_history": os.environ.get("GRADIO_RUN_HISTORY", "").strip().lower() == "true"}


def return_large_buffers_to_the_os(threshold: int = 1 << 20) -> bool:
    """glibc serves a freed large buffer's size from its arenas next time (the mmap threshold
    grows up to 32 MB), and each of its per-thread arenas keeps its peak: a Vision request
    handles a 13 MB data: URL several times, so RSS rose ~300 MB over 1,000 sessions without
    anything being kept. A fixed threshold hands buffers over 1 MB back at once (measured:
    +18 MB instead of +282 MB over 200 sessions, bench P7). No-op off glibc, or when the owner
    set MALLOC_MMAP_THRESHOLD_ already."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def freeze_startup_objects() -> None:
    """Move everything alive once the app serves (Gradio, the SDKs: ~340,000 objects) out of
    the cycle collector's sight, so a full collection takes ~1 ms instead of ~130 ms with the
    GIL held; the Vision tab then collects after each inline picture (ui/uploads.py)."""
    gc.collect()
    gc.freeze()


def warm_up() -> None:
    """Load the parts the openai SDK imports lazily (~1-2 s) once the page already serves,
    so neither the start nor the first student's chat waits for them."""
    import openai.resources  # noqa: F401


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="ModelScope API-Inference Studio (Gradio)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--offline", action="store_true", help="run against the built-in simulator")
    p.add_argument("--mcp", action="store_true", help="also serve the endpoints as MCP tools")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    return_large_buffers_to_the_os()
    if args.mcp and importlib.util.find_spec("mcp") is None:
        sys.exit('--mcp needs the optional MCP extra: pip install "gradio[mcp]==6.31.0"')
    sim = None
    if args.offline:
        from modelscope_api.simulator import SimConfig, Simulator

        # A short request log: on a Space that runs for days it would otherwise keep 20 000
        # bodies, each up to a 13 MB picture.
        sim = Simulator(SimConfig(task_seconds=3.0, ttft=0.3, tokens_per_second=60.0, max_log=200)).start()
        ctx = AppContext.from_env(base_url=sim.base_url, server_token="ms-offline-" + secrets.token_hex(8),
                                  offline=True)
        print(f"Offline mode: simulator at {sim.base_url}")
    else:
        ctx = AppContext.from_env()
    demo = build_app(ctx)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                    mcp_server=args.mcp or None, prevent_thread_lock=True, **launch_kwargs(demo, ctx))
        ctx.models.start()  # GET /v1/models now and hourly, in a background thread
        warm_up()
        freeze_startup_objects()
        demo.block_thread()
    finally:
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    main()
