"""`Simulator`: runs the app with uvicorn in a daemon thread and exposes the state."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from ..config import fingerprint
from .app import create_app, install_log_filter
from .state import LoggedRequest, SimConfig, SimState


class Simulator:
    """A local ModelScope API-Inference simulator.

    sim = Simulator(SimConfig(task_seconds=0.5)); sim.start(); ... sim.stop()
    or `with Simulator(...) as sim:`.
    """

    def __init__(self, config: SimConfig | None = None, **fields: Any):
        self.state = SimState(config or SimConfig())
        if fields:
            self.state.set_config(**fields)
        self.base_url: str | None = None
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Simulator:
        if self._thread is not None and self._thread.is_alive():
            return self
        cfg = self.state.config
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.host, cfg.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        shown = "127.0.0.1" if cfg.host in ("", "0.0.0.0") else cfg.host
        if ":" in shown:
            shown = "[::1]" if shown == "::" else f"[{shown}]"
        self.base_url = f"http://{shown}:{self.port}/"

        config = uvicorn.Config(
            create_app(self.state),
            log_config=None,  # leave the host program's logging alone
            log_level=cfg.log_level,
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
            backlog=2048,
        )
        install_log_filter()
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name="modelscope-simulator",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("the simulator did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        server.force_exit = True  # do not wait for open streams; they are cancelled
        thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- state --------------------------------------------------------------------------------
    @property
    def config(self) -> SimConfig:
        return self.state.config

    @property
    def chat_base_url(self) -> str:
        return (self.base_url or "") + "v1/"

    @property
    def log(self) -> list[LoggedRequest]:
        return self.state.log()

    def clear_log(self) -> None:
        self.state.clear_log()

    def requests(
        self, path_contains: str | None = None, token: str | None = None
    ) -> list[LoggedRequest]:
        fp = fingerprint(token) if token else None
        return [
            e
            for e in self.state.log()
            if (path_contains is None or path_contains in e.path)
            and (fp is None or e.token_fingerprint == fp)
        ]

    def inject(
        self,
        fault: str,
        *,
        token: str | None = None,
        times: int | None = 1,
        scope: str | None = None,
    ) -> None:
        self.state.inject(fault, token=token, times=times, scope=scope)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def add_token(self, token: str, behavior: str = "ok") -> None:
        self.state.add_token(token, behavior)

    def set_config(self, **fields: Any) -> SimConfig:
        return self.state.set_config(**fields)

    def reset_quota(self) -> None:
        self.state.reset_quota()

    def task_finished_at(self, task_id: str) -> float | None:
        return self.state.task_finished_at(task_id)
