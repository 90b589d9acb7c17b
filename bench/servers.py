"""Start a server as a subprocess on a free port of 127.0.0.1, time its startup, stop it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status of ``GET path`` on 127.0.0.1:port, None if nothing answers."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            first = s.recv(64).split(b"\r\n", 1)[0]
        return int(first.split()[1])
    except (OSError, IndexError, ValueError):
        return None


class Server:
    """A server process: ``start()`` returns once ``health`` answers 200 (or raises), ``stop()`` ends it.

    Its output goes to a log file (kept when it fails to start, to say why). The process
    is started in its own session and stopped by its id: SIGTERM, then SIGKILL.
    """

    def __init__(self, name: str, command: Sequence[str], health: str, env: dict[str, str] | None = None):
        self.name, self.command, self.health = name, list(command), health
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])

    def start(self, port: int) -> float:
        with open(self.log, "wb") as log:
            start = time.perf_counter()
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        while time.perf_counter() - start < STARTUP_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} at startup: {self.tail()}")
            if http_status(port, self.health, timeout=0.5) == 200:
                self.startup_s = time.perf_counter() - start
                return self.startup_s
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer 200 on {self.health} within {STARTUP_TIMEOUT_S:.0f} s")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and its workers
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_load(
    port: int,
    path: str,
    body: bytes | None,
    concurrency: int,
    requests: int,
    method: str = "POST",
    content_type: str = "application/json",
    warmup: int = 200,
    max_seconds: float = 10.0,
    headers: dict[str, str] | None = None,
    websocket: bool = False,
) -> dict:
    """Run ``bench.load`` in its own process against 127.0.0.1:port and return its result."""
    with tempfile.NamedTemporaryFile(prefix="bench-body-", delete=False) as f:
        f.write(body or b"")
    try:
        command = [sys.executable, "-m", "bench.load", "--port", str(port), "--method", method, "--path", path]
        command += ["--concurrency", str(concurrency), "--requests", str(requests), "--warmup", str(warmup)]
        command += ["--max-seconds", str(max_seconds), "--content-type", content_type]
        if body is not None:
            command += ["--body-file", f.name]
        for name, value in (headers or {}).items():
            command += ["--header", f"{name}: {value}"]
        if websocket:
            command.append("--websocket")
        out = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=max_seconds * 2 + 60, check=True
        )
        return json.loads(out.stdout)
    finally:
        os.unlink(f.name)
