"""Shared fixtures: one simulator and one launched studio for the whole test session.

- `simulator`: a running Simulator with short durations (session-scoped).
- `studio`: the app from `app.build_app`, launched in-process on a free port with its
  AppContext pointing at the simulator and no server token (session-scoped).
- `clean_studio`: the same studio after clearing the simulator's faults and log and
  restoring the context (no server token, no caps); use it in tests that change either.
- `fake_request(...)`: a stand-in for gr.Request when calling handlers directly.
"""

from __future__ import annotations

import socket
import types
from dataclasses import dataclass

import pytest

from ui.context import AppContext, BoundedMap, ServerTokenGuard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake_request(session: str = "s1", lang: str = "en", token: str | None = None):
    headers = {"accept-language": "zh-CN,zh;q=0.9" if lang == "zh" else "en-US,en;q=0.9"}
    if token:
        headers["x-modelscope-token"] = token
    return types.SimpleNamespace(headers=headers, session_hash=session)


@dataclass
class Studio:
    url: str
    ctx: AppContext
    demo: object
    sim: object  # modelscope_api.simulator.Simulator

    def reset(self) -> None:
        self.sim.clear_faults()
        self.sim.clear_log()
        self.ctx.server_token = None
        self.ctx.guard = ServerTokenGuard()
        self.ctx.students = BoundedMap()
        self.ctx.session_tokens = BoundedMap()


@pytest.fixture
def fake_request():
    """fake_request(session="s1", lang="en", token=None) -> a gr.Request stand-in
    (accept-language set; `token` goes into the X-ModelScope-Token header)."""
    return _fake_request


@pytest.fixture
def uploaded():
    """uploaded(path_or_bytes, name=None) -> a path inside Gradio's upload cache, where a real
    upload lands (the only place the studio reads client-named files from); removed after
    the test."""
    import secrets
    import shutil
    from pathlib import Path

    from gradio.utils import get_upload_folder

    folders: list[Path] = []

    def put(source, name: str | None = None) -> str:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        name = name or (Path(source).name if not isinstance(source, bytes) else "upload.png")
        folder = Path(get_upload_folder()) / ("test-" + secrets.token_hex(8))
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder)
        target = folder / name
        target.write_bytes(data)
        return str(target)

    yield put
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def simulator():
    from modelscope_api.simulator import SimConfig, Simulator

    with Simulator(SimConfig(task_seconds=0.3, ttft=0.01, tokens_per_second=3000)) as sim:
        yield sim


@pytest.fixture(scope="session")
def studio(simulator):
    import app

    ctx = AppContext(base_url=simulator.base_url, concurrency=8, max_queue=64)
    demo = app.build_app(ctx)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                ssr_mode=False, **app.launch_kwargs(demo, ctx))
    try:
        yield Studio(f"http://127.0.0.1:{port}/", ctx, demo, simulator)
    finally:
        demo.close()


@pytest.fixture
def clean_studio(studio):
    studio.reset()
    yield studio
    studio.reset()


@pytest.fixture
def fresh_sim(sim):
    """For modules with their own `sim` fixture: no faults and an empty log for each test."""
    sim.clear_faults()
    sim.clear_log()
    yield sim
    sim.clear_faults()
