"""Processes for the benchmarks: the simulator, the studio, the baseline apps.

Every server runs in its own process (so no server shares the benchmark client's GIL), is
started with the same environment, and is stopped by its own pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent

# Environment variables that would make the studio use a server token instead of the
# X-ModelScope-Token header each benchmark user sends.
_TOKEN_VARS = ("MODELSCOPE_ACCESS_TOKEN", "MODELSCOPE_API_TOKEN", "MODELSCOPE_SDK_TOKEN",
               "MODELSCOPE_BASE_URL", "STUDIO_SERVER_TOKEN_SESSION_LIMIT",
               "STUDIO_SERVER_TOKEN_DAILY_LIMIT", "STUDIO_CONCURRENCY", "STUDIO_MAX_QUEUE",
               "GRADIO_SERVER_PORT", "GRADIO_SERVER_NAME")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The same environment for every server process: no tokens, no analytics (a network
    call at launch), temp files under `workdir`."""
    env = {k: v for k, v in os.environ.items() if k not in _TOKEN_VARS}
    env.update(
        PYTHONPATH=str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        PYTHONUNBUFFERED="1",
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(workdir / "gradio-tmp"),
        STUDIO_OUTPUTS_DIR=str(workdir / "outputs"),
    )
    env.update(extra)
    return env


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Proc:
    """A server process we started; `stop()` ends exactly this pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, logdir: Path):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}/"
        self.log_path = logdir / f"{name}-{port}.log"
        self._log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, path: str = "", timeout: float = 180.0) -> float:
        """Poll GET url+path until 200; returns the monotonic time it first answered."""
        deadline = time.monotonic() + timeout
        url = self.url + path
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log_path}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    return time.monotonic()
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {url} within {timeout:g} s; see {self.log_path}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()


def start_simulator(logdir: Path, env: dict[str, str]) -> Proc:
    port = free_port()
    argv = [sys.executable, "-m", "modelscope_api.simulator", "--port", str(port),
            "--requests-limit", "100000000", "--model-requests-limit", "100000000"]
    proc = Proc("simulator", argv, env, port, logdir)
    proc.wait_ready("_sim/health", timeout=120)
    return proc


def start_gradio(name: str, script: str, logdir: Path, env: dict[str, str], *args: str,
                 wait: bool = True) -> Proc:
    """`python <script> --port P [args]` (script relative to the repo root)."""
    port = free_port()
    argv = [sys.executable, script, "--port", str(port), *args]
    proc = Proc(name, argv, env, port, logdir)
    if wait:
        proc.wait_ready(timeout=300)
    return proc


class SimAdmin:
    """The simulator's admin API over HTTP (the simulator runs in another process)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()

    def set_config(self, **fields) -> dict:
        r = self.session.post(self.base_url + "_sim/config", json=fields, timeout=10)
        r.raise_for_status()
        return r.json()["config"]

    def finished_at(self, task_id: str) -> float | None:
        r = self.session.get(self.base_url + f"_sim/tasks/{task_id}", timeout=10)
        r.raise_for_status()
        return r.json()["finished_at"]

    def reset(self) -> None:
        for path in ("_sim/quota", "_sim/log", "_sim/faults"):
            self.session.delete(self.base_url + path, timeout=10).raise_for_status()
