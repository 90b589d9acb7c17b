"""Load: 24 concurrent clients against stages 3 and 4, each served by 2 uvicorn workers.

Every successful prediction leaves exactly one well-formed line in the CSV inference log
(a batch or a file counts as its scored readings) and, on stage 4, exactly one audit row,
with the chain intact; a refused request leaves none.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.hardening.crash_support import (
    LOG_HEADER,
    STAGE3,
    STAGE4,
    Server,
    audit_rows,
    log_rows,
    operator_key,
    stage_env,
    verify_chain,
)
from tests.hardening.workload import AUDIT_BUSY, Client, expected_rows, run_clients

CLIENTS = 24
REQUESTS_PER_CLIENT = 12  # 2 single, 2 batches (4 + 2 scored), 1 refused, 1 CSV file (3 scored) per 6
STREAM_MESSAGES = 3
ROWS_PER_CLIENT = 2 * (2 + 4 + 3 + 2) + STREAM_MESSAGES  # scored readings a client is told of


def check_traces(clients: list[Client], rows: list[dict], what: str) -> dict[str, int]:
    """Rows per (request id, equipment) equal what the clients were told; refused requests have none."""
    outcomes = [o for c in clients for o in c.outcomes]
    assert all(o.status is not None for o in outcomes), "une requête est restée sans réponse"
    statuses = Counter(o.status for o in outcomes)
    assert set(statuses) <= {200, 401, 422, 503}, statuses
    assert all(AUDIT_BUSY in o.detail for o in outcomes if o.status == 503), "503 sans la raison attendue"
    expected = expected_rows(clients)
    found = Counter((r["request_id"], r["equipment_id"]) for r in rows)
    missing, extra = expected - found, found - expected
    assert not missing and not extra, f"{what}: manquantes {dict(missing)}, en trop {dict(extra)}"
    traced_ids = {r["request_id"] for r in rows}
    refused = [o.request_id for o in outcomes if o.status != 200]
    assert not traced_ids.intersection(refused), f"{what}: une requête refusée a laissé une trace"
    return {
        "requests": len(outcomes),
        "ok": statuses[200],
        "refused": len(refused),
        "busy_503": statuses[503],
        "rows": len(rows),
    }


def test_stage3_under_load_logs_each_prediction_exactly_once(models_dir, tmp_path):
    log_dir = tmp_path / "logs"
    env = stage_env(STAGE3, models_dir, log_dir)
    with Server(STAGE3, env, tmp_path / "server.log", workers=2) as server:
        clients = [Client(i, server.url, {}) for i in range(CLIENTS)]
        run_clients(clients, REQUESTS_PER_CLIENT, STREAM_MESSAGES)
    figures = check_traces(clients, log_rows(log_dir), "journal des inférences")
    assert figures["requests"] == CLIENTS * (REQUESTS_PER_CLIENT + STREAM_MESSAGES)
    assert figures["busy_503"] == 0  # stage 3 has no audit: nothing to wait for
    assert figures["rows"] == CLIENTS * ROWS_PER_CLIENT
    print(f"stage 3: {CLIENTS} clients, {figures}")


def test_stage4_under_load_audits_and_logs_each_prediction_exactly_once(models_dir, tmp_path):
    state_db, log_dir = tmp_path / "state" / "stage4.sqlite", tmp_path / "logs"
    state_db.parent.mkdir()
    key = operator_key(state_db)
    env = stage_env(STAGE4, models_dir, log_dir, state_db)
    with Server(STAGE4, env, tmp_path / "server.log", workers=2) as server:
        clients = [Client(i, server.url, {"X-API-Key": key}) for i in range(CLIENTS)]
        intruders = [Client(CLIENTS + i, server.url, {"X-API-Key": "pk_0000000000000000.faux"}) for i in range(2)]
        run_clients(clients + intruders, REQUESTS_PER_CLIENT, 0)
        assert {o.status for c in intruders for o in c.outcomes} == {401}
        run_clients(clients, 0, STREAM_MESSAGES)
    everyone = clients + intruders
    audited = audit_rows(state_db)
    figures = check_traces(everyone, audited, "journal d'audit")
    check_traces(everyone, log_rows(log_dir), "journal des inférences")
    if not figures["busy_503"]:
        assert figures["rows"] == CLIENTS * ROWS_PER_CLIENT
    assert sorted(r["seq"] for r in audited) == sorted(set(r["seq"] for r in audited))
    verify_chain(state_db)
    print(f"stage 4: {len(everyone)} clients, {figures}")


def test_the_log_reader_refuses_a_cut_line(tmp_path):
    """The strict reader above would catch a cut or interleaved line (a test that cannot fail is a defect)."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    cut = "2026-01-05T00:00:00+00:00;r;api;pompe;1.0.0;0.02"
    (log_dir / "inferences-2026-01-05.csv").write_text(";".join(LOG_HEADER) + "\n" + cut + "\n")
    with pytest.raises(AssertionError, match="champs"):
        log_rows(log_dir)
