"""Write a fixed audit trail through the stage 4 API: every kind of row, values that are hard to write.

``old_trail.sql`` is what this module wrote with the code of commit 05fe38e (the audit rows
prepared column by column); tests/stage4_prod/test_audit_compat.py checks that the current
code verifies that trail, extends it, and writes the very same rows from the same calls.

    python -m tests.stage4_prod.data.trail FICHIER.sqlite   # then: sqlite3 FICHIER .dump audit chain_head
"""

from __future__ import annotations

import sys
from datetime import datetime

from common.data import frame_from_readings
from common.schema import EQUIPMENT_ID, EXAMPLE_READING, TIMESTAMP
from stage4_prod import audit, scoring

AT = "2026-01-05T10:00:00.000+00:00"
TRICKY = [1e-7, 1e16, -0.0, 0.0, 0.1 + 0.2, 2.0**53 + 1, 5e-324, 1 / 3, 123456789.0, 7, 2**70, 1e300]


def _at(i: int) -> str:
    return f"2026-01-05T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}+00:00"


def tricky_predictions(n: int) -> list[dict]:
    """Rows of a batch: sensors cycling through awkward floats, texts needing escapes, repeated values."""
    rows = []
    for i in range(n):
        inputs = {name: TRICKY[(i + k) % len(TRICKY)] for k, name in enumerate(EXAMPLE_READING)}
        inputs["timestamp"] = f"2026-01-05T10:00:{i % 60:02d}"
        rows.append(
            {
                "actor": "atelier é",
                "request_id": f"req-{i}",
                "source": "api_batch",
                "equipment_id": ["pompe-01", "pompe \u00e9\u2028", 'x\\y "z"'][i % 3],
                "inputs": inputs,
                "score": [0.5, 1e-7, 0.1 + 0.2, 1 / 3][i % 4],
                "decision": ["Normal", "Anomalie"][i % 2],
                "model_version": "1.0.0",
                "client": [None, "127.0.0.1", 'a "b"\n'][i % 3],
                "at": _at(i),
            }
        )
    rows.append({**rows[0], "inputs": {"b": [1, {"z": -0.0}], "a": None, "é": "\u2028"}, "request_id": "odd-keys"})
    rows.append({**rows[0], "inputs": {}, "request_id": "no-inputs"})
    return rows


def scored_frame():
    """A scored frame as the batch endpoints audit it (``scoring.audit_rows``)."""
    return frame_from_readings(
        [
            {**EXAMPLE_READING, TIMESTAMP: datetime(2026, 1, 5, 10, 0, 0)},
            {**EXAMPLE_READING, "pressure": -0.0, TIMESTAMP: datetime(2026, 1, 5, 10, 0, 0, 123456)},
            {**EXAMPLE_READING, EQUIPMENT_ID: "p-2", "current": 1e-7, TIMESTAMP: datetime(1, 1, 1)},
        ]
    ).assign(score=[0.1 + 0.2, 1e-7, 0.5], decision=["Normal", "Anomalie", "Normal"], model_version="1.0.0")


def write_trail(path) -> None:
    conn = audit.connect(path)
    try:
        audit.record(
            conn,
            [
                {
                    "kind": "deploy",
                    "actor": "démarrage",
                    "model_version": "1.0.0",
                    "details": {"initial": True},
                    "at": AT,
                }
            ],
        )
        details = {"key_id": "0123456789abcdef", "name": "atelier é", "role": "operator"}
        with audit.transaction(conn):
            audit.append(conn, [{"kind": "key_create", "actor": "cli:root", "details": details, "at": AT}])
        audit.record_predictions(conn, tricky_predictions(40))
        frame = scored_frame()
        rows = scoring.audit_rows("atelier", "10.0.0.2", "api_csv", "req-frame", frame)
        audit.record_predictions(conn, [{**row, "at": AT} for row in rows])
        one = frame.to_dict("records")[1]
        row = scoring.audit_row("atelier", None, "api", "req-one", one, one)
        audit.record_predictions(conn, [{**row, "at": AT}])
        notes = {"version": "1.1.0", "notes": ["é", 1.5, None, {"b": 1, "a": 2}], "check": {"alarm_rate": 0.0}}
        audit.record(
            conn,
            [
                {
                    "kind": "deploy",
                    "actor": "admin",
                    "details": notes,
                    "model_version": "1.1.0",
                    "request_id": "req-deploy",
                    "client": "10.0.0.3",
                    "at": AT,
                }
            ],
        )
        audit.record(
            conn,
            [
                {
                    "kind": "feedback",
                    "actor": "tech",
                    "request_id": "req-1",
                    "equipment_id": "pompe-01",
                    "model_version": "1.0.0",
                    "details": {"verdict": "confirmed", "rows": 1},
                    "at": AT,
                }
            ],
        )
    finally:
        conn.close()
    recorder = audit.Recorder(path)
    try:
        recorder.record_predictions([{**r, "at": _at(100 + i)} for i, r in enumerate(tricky_predictions(3))])
    finally:
        recorder.close()


if __name__ == "__main__":
    write_trail(sys.argv[1])
