"""A stage served for real by uvicorn, in its own process on a free port of 127.0.0.1.

The hardening suite needs what the in-process TestClient cannot give: several worker
processes, a process killed with SIGKILL mid-load, the server's own log output. Each
``LiveServer`` starts ``python -m common.serve <stage>.app:app`` (uvicorn, as the images
serve), waits until ``/health`` answers, and is stopped (SIGTERM, then SIGKILL) or killed on purpose.
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

import httpx

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class LiveServer:
    """``stage`` (``stage2_shared``, ``stage3_preprod``, ``stage4_prod``) served by uvicorn.

    ``env`` is added to the current environment (MODELS_DIR, LOG_DIR, STATE_DB...).
    Output (stdout and stderr, where the stages write their logs) goes to ``log_path``.
    Use as a context manager, or call ``start``/``stop``; ``kill`` sends SIGKILL to the
    whole process group (the uvicorn supervisor and its workers) without any cleanup.
    """

    def __init__(self, stage: str, env: dict[str, str], log_path: Path, workers: int = 1, port: int | None = None):
        self.stage, self.workers, self.log_path = stage, workers, Path(log_path)
        self.port = port or free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start_process(self) -> None:
        """Launch the server as the images do, its output appended to the log; do not wait."""
        command = [sys.executable, "-m", "common.serve", f"{self.stage}.app:app", "--host", HOST]
        command += ["--port", str(self.port), "--workers", str(self.workers), "--no-access-log"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start(self) -> LiveServer:
        """``start_process``, then wait until ``/health`` answers 200."""
        self.start_process()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.stage} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.stage} not healthy after {STARTUP_TIMEOUT_S} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the supervisor and every worker at once: no shutdown code runs."""
        if self.process is not None:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
