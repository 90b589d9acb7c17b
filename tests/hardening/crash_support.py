"""What the load, crash and fault tests share: environments, clients, strict readers of the traces, mounts.

The traces are read the hard way: every line of the CSV inference log is parsed (column
count, time, finite numbers, decision), every audit row is counted per request id, and
the hash chain is checked by the command an operator runs (``python -m stage4_prod.audit
verify``). Mounts (read-only bind, small tmpfs) need root and a kernel that allows them:
a test that cannot mount is skipped with the reason, and every mount is undone in a
``finally``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from common.schema import EXAMPLE_READING, SENSOR_NAMES
from stage3_preprod.inference_log import COLUMNS
from tests.hardening.live import ROOT, STARTUP_TIMEOUT_S, LiveServer
from tests.support import unavailable

STAGE3, STAGE4 = "stage3_preprod", "stage4_prod"
DECISIONS = {"Normal", "Anomalie"}
LOG_HEADER = COLUMNS  # the same in stages 3 and 4 (their inference_log files are one snapshot)
TIMEOUT = httpx.Timeout(60.0)


class Server(LiveServer):
    """A LiveServer that may also start without a usable model (``/health`` answers 503)."""

    def start_unready(self) -> Server:
        """Start and wait until ``/health`` answers, whatever its status."""
        self.start_process()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.stage} exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.url}/health", timeout=1.0)
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.stage} not answering after {STARTUP_TIMEOUT_S} s:\n{self.log()}")

    @contextlib.contextmanager
    def unready(self) -> Iterator[Server]:
        """``start_unready``, then ``stop`` on the way out (``with server.unready() as server:``)."""
        try:
            yield self.start_unready()
        finally:
            self.stop()


def stage_env(stage: str, models_dir: Path, log_dir: Path, state_db: Path | None = None) -> dict[str, str]:
    """The environment of a live stage: test registry, its own log folder (and state database for stage 4)."""
    env = {"MODELS_DIR": str(models_dir), "LOG_DIR": str(log_dir), "MODEL_VERSION": "", "LOG_LEVEL": "INFO"}
    if stage == STAGE4:
        env.update(
            STATE_DB=str(state_db),
            RATE_LIMIT_PER_S="100000",
            RATE_LIMIT_BURST="100000",
            MODEL_CHECK_INTERVAL_S="0.2",
        )
    return env


def operator_key(state_db: Path, name: str = "charge") -> str:
    from stage4_prod import auth

    return auth.create_key(state_db, name, "operator", by="test")


def reading(n: int, equipment_id: str) -> dict[str, Any]:
    """A valid reading, slightly different for each ``n`` (all within the plausible ranges)."""
    wobble = 1 + 0.001 * (n % 17)
    values = {k: (v * wobble if isinstance(v, float) else v) for k, v in EXAMPLE_READING.items()}
    values.pop("timestamp", None)
    return {**values, "equipment_id": equipment_id}


def bad_reading(equipment_id: str) -> dict[str, Any]:
    """A reading every stage refuses (pressure far out of its plausible range)."""
    return {**reading(0, equipment_id), "pressure": 1e9}


def new_request_id() -> str:
    return f"t-{uuid.uuid4().hex}"


def skab_csv(rows: int, start_minute: int = 0) -> bytes:
    """A small SKAB-format file (``;``, datetime then the eight sensors) of ``rows`` valid lines."""
    from common.schema import SENSORS

    head = "datetime;" + ";".join(s.csv_name for s in SENSORS)
    lines = [head]
    for i in range(rows):
        values = reading(i, "x")
        minute = start_minute + i
        stamp = f"2026-01-05 {minute // 60:02d}:{minute % 60:02d}:00"
        lines.append(stamp + ";" + ";".join(repr(values[s.name]) for s in SENSORS))
    return ("\n".join(lines) + "\n").encode()


# ---- Reading the traces -----------------------------------------------------------------------


def log_rows(log_dir: Path) -> list[dict[str, str]]:
    """Every line of the inference logs, each checked well formed; AssertionError names the first bad one."""
    rows = []
    for path in sorted(Path(log_dir).glob("inferences-*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f, delimiter=";"))
        assert lines and tuple(lines[0]) == LOG_HEADER, f"{path.name}: en-tête absent ou faux"
        for number, line in enumerate(lines[1:], start=2):
            where = f"{path.name}:{number}"
            assert len(line) == len(LOG_HEADER), f"{where}: {len(line)} champs au lieu de {len(LOG_HEADER)}: {line}"
            row = dict(zip(LOG_HEADER, line, strict=True))
            datetime.fromisoformat(row["time"])
            for name in (*SENSOR_NAMES, "score", "latency_ms"):
                assert math.isfinite(float(row[name])), f"{where}: {name} non fini"
            assert row["decision"] in DECISIONS, f"{where}: décision {row['decision']!r}"
            assert row["request_id"] and row["equipment_id"] and row["model_version"], where
            rows.append(row)
    return rows


def audit_rows(state_db: Path) -> list[dict[str, Any]]:
    """The prediction rows of the audit trail (read-only connection)."""
    conn = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        query = "SELECT seq, request_id, source, equipment_id, score, decision FROM audit WHERE kind = 'prediction'"
        return [dict(r) for r in conn.execute(query)]
    finally:
        conn.close()


def verify_chain(state_db: Path) -> str:
    """Run the operator's command; assert it says the chain holds, return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "stage4_prod.audit", "verify", "--db", str(state_db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"chaîne d'audit non vérifiée ({done.returncode}):\n{done.stdout}{done.stderr}"
    assert "Journal d'audit intègre" in done.stdout
    return done.stdout


def count_by(rows: list[dict[str, Any]], name: str) -> Counter:
    return Counter(r[name] for r in rows)


# ---- Mounts ---------------------------------------------------------------------------------------


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"mount {' '.join(args)} refused")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


class Mount:
    """A small tmpfs mounted on ``path``: a disk that can be filled, and switched to read-only and back."""

    def __init__(self, path: Path):
        self.path = path

    def read_only(self, on: bool) -> None:
        _mount("-o", f"remount,{'ro' if on else 'rw'}", str(self.path))


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int) -> Iterator[Mount]:
    """A ``size_kib`` KiB tmpfs on ``path``; skip the test (fail it in CI) if this machine refuses to mount."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path))
    except OSError as exc:
        unavailable(f"montage tmpfs refusé sur cette machine (root et CAP_SYS_ADMIN nécessaires) : {exc}")
    try:
        mount = Mount(path)
        try:
            mount.read_only(True)
            mount.read_only(False)
        except OSError as exc:
            unavailable(f"remontage en lecture seule refusé sur cette machine : {exc}")
        yield mount
    finally:
        _umount(path)


def fill(path: Path) -> Path:
    """Fill the file system of ``path`` until a write fails; return the filler file (delete it to recover)."""
    filler = path / "remplissage.bin"
    with open(filler, "wb", buffering=0) as f:
        for block in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * block)
    return filler
