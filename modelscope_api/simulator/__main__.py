"""python -m modelscope_api.simulator [--host H] [--port P] [--task-seconds S] ..."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from .server import Simulator
from .state import TEST_TOKENS, SimConfig


def main(argv: list[str] | None = None) -> int:
    defaults = SimConfig()
    p = argparse.ArgumentParser(
        prog="python -m modelscope_api.simulator",
        description="Local simulator of ModelScope API-Inference (chat, vision, images).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--task-seconds", type=float, default=defaults.task_seconds)
    p.add_argument("--ttft", type=float, default=defaults.ttft, help="seconds to first token")
    p.add_argument("--tokens-per-second", type=float, default=defaults.tokens_per_second)
    p.add_argument("--slow-ttft", type=float, default=defaults.slow_ttft)
    p.add_argument("--requests-limit", type=int, default=defaults.requests_limit)
    p.add_argument("--model-requests-limit", type=int, default=defaults.model_requests_limit)
    p.add_argument("--extra-model", action="append", default=[], help="accept this model id too")
    p.add_argument("--log-level", default=defaults.log_level)
    args = p.parse_args(argv)

    config = SimConfig(
        task_seconds=args.task_seconds,
        ttft=args.ttft,
        tokens_per_second=args.tokens_per_second,
        slow_ttft=args.slow_ttft,
        requests_limit=args.requests_limit,
        model_requests_limit=args.model_requests_limit,
        extra_models=tuple(args.extra_model),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
    )
    sim = Simulator(config)
    sim.start()
    print(f"ModelScope simulator running at {sim.base_url}", flush=True)
    print(f"  chat base URL (openai SDK): {sim.chat_base_url}")
    print(f"  admin: {sim.base_url}_sim/health")
    print("  test tokens (any ms-test-* or ms-offline-* token is accepted):")
    for behavior, token in TEST_TOKENS.items():
        print(f"    {token:<22} {behavior}")
    print("Press Ctrl+C to stop.", flush=True)

    def _exit(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _exit)
    try:
        while sim.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
