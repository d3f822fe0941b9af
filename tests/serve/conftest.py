"""Fixtures of the service tests: a real ``viewfinder serve`` process on a free loopback port.

Every wait is bounded; the processes are stopped (SIGTERM, then SIGKILL) at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e .[serve])")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx", reason="the serve extra is not installed")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``viewfinder serve`` subprocess."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "viewfinder", "serve", "--port", str(self.port), *args]
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=dict(os.environ))

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/readyz", timeout=2.0)
                if r.status_code == 200:
                    return r.json()
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._out.close()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory, shared: Path):
    """``start_server(*args) -> Server`` (ready); all stopped at the end of the session."""
    servers: list[Server] = []

    def start(*args: str, ready: bool = True) -> Server:
        log = tmp_path_factory.mktemp("serve") / "server.log"
        server = Server([str(a) for a in args], log)
        servers.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def faces_server(start_server) -> Server:
    """faces (SCRFD-500M + 106 landmarks on ONNX Runtime: no backend trials, no OpenVINO
    compiles at start) with the default batching."""
    return start_server("--task", "faces", "--backend", "ort", "--max-body-mb", "4")
