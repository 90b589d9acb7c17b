"""``python -m common.serve``: uvicorn's command, each worker on a socket of its own (SO_REUSEPORT).

Served for real (two worker processes, real sockets on 127.0.0.1): connections opened at
once reach both workers, a killed worker is replaced by one that binds its own socket, a
busy port stops the server with uvicorn's error (a second server on the same port too:
it gets no share), SIGTERM ends every process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.hardening.live import HOST, ROOT, free_port

APP = "tests.common.serve_app:app"
CONNECTIONS = 16  # as the benchmark's clients: all on one worker has odds of 2 in 65,536 here


def start(port: int, log: Path, workers: int = 2) -> subprocess.Popen:
    command = [sys.executable, "-m", "common.serve", APP, "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def listening_port(process: subprocess.Popen, log: Path, workers: int = 2) -> int:
    """The port the server says it runs on, once each of its workers has finished starting."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        text = log.read_text()
        running = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", text)
        if running and text.count("Application startup complete.") >= workers:
            return int(running.group(1))
        time.sleep(0.1)
    raise AssertionError(f"not started after 60 s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=5)


def answering_pids(port: int) -> list[int]:
    """Open CONNECTIONS connections at once, then ask on each which worker holds it."""
    sockets = [socket.create_connection((HOST, port), timeout=10) for _ in range(CONNECTIONS)]
    pids = []
    try:
        for sock in sockets:
            sock.sendall(f"GET /pid HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data
            pids.append(int(data.split(b"\r\n\r\n", 1)[1]))
    finally:
        for sock in sockets:
            sock.close()
    return pids


def worker_pids(process: subprocess.Popen) -> set[int]:
    """The supervisor's children that are workers (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return {int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()}


def test_connections_opened_at_once_reach_both_workers(tmp_path):
    """Port 0 too: the workers bind the port uvicorn chose and logged."""
    log = tmp_path / "server.log"
    process = start(0, log)
    try:
        port = listening_port(process, log)
        workers = worker_pids(process)
        assert len(workers) == 2
        for _ in range(3):
            assert set(answering_pids(port)) == workers
    finally:
        assert stop(process) == 0


def test_a_killed_worker_is_replaced_by_one_on_its_own_socket(tmp_path):
    log = tmp_path / "server.log"
    process = start(free_port(), log)
    try:
        port = listening_port(process, log)
        first, second = sorted(worker_pids(process))
        os.kill(first, signal.SIGKILL)
        # Replaced once the supervisor has a new worker and that worker has started its app.
        deadline = time.monotonic() + 60
        while len(workers := worker_pids(process) - {first}) < 2 or log.read_text().count("startup complete") < 3:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert second in workers
        for _ in range(3):
            assert set(answering_pids(port)) == workers
    finally:
        assert stop(process) == 0


def test_a_busy_port_stops_the_server_with_uvicorn_error(tmp_path):
    log = tmp_path / "server.log"
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        process = start(busy.getsockname()[1], log)
        try:
            assert process.wait(timeout=30) == 3  # uvicorn's STARTUP_FAILURE
        finally:
            stop(process)
    assert "Address already in use" in log.read_text()


def test_a_second_server_on_the_same_port_is_refused_not_given_a_share(tmp_path):
    """The workers' SO_REUSEPORT sockets do not let another server join: it stops as on any busy port."""
    first = start(free_port(), tmp_path / "first.log")
    try:
        port = listening_port(first, tmp_path / "first.log")
        second = start(port, tmp_path / "second.log")
        try:
            assert second.wait(timeout=30) == 3
        finally:
            stop(second)
        assert "Address already in use" in (tmp_path / "second.log").read_text()
        assert set(answering_pids(port)) == worker_pids(first)  # the first still serves, alone
    finally:
        assert stop(first) == 0


def test_sigterm_ends_the_supervisor_and_its_workers_and_frees_the_port(tmp_path):
    log = tmp_path / "server.log"
    process = start(free_port(), log)
    port = listening_port(process, log)
    workers = worker_pids(process)
    os.kill(process.pid, signal.SIGTERM)  # the supervisor only: it stops its workers
    assert process.wait(timeout=15) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    with socket.socket() as again:
        again.bind((HOST, port))  # no worker holds it any more


def test_one_worker_is_plain_uvicorn_serving_in_its_own_process(tmp_path):
    log = tmp_path / "server.log"
    process = start(free_port(), log, workers=1)
    try:
        port = listening_port(process, log, workers=1)
        assert set(answering_pids(port)) == {process.pid}
    finally:
        assert stop(process) == -signal.SIGTERM  # a single uvicorn server ends by the signal it caught
