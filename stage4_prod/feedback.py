"""What maintenance says about the alarms: confirmed, rejected, or a fault the model missed.

A verdict finds the request's alarms in the audit trail, so it names the model version that raised them
(a later verdict replaces the earlier one); a missed fault is charged to the version that last scored the
equipment before ``fault_at``. Every verdict is audited too.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing
from datetime import datetime
from typing import Any

from common.decision import ANOMALY

from . import audit, state

VERDICTS = ("confirmed", "rejected", "missed")


class FeedbackError(state.Refused):
    """A verdict was refused."""


def record(
    db_path,
    verdict: str,
    by: str,
    request_id: str | None = None,
    equipment_id: str | None = None,
    fault_at: str | datetime | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Store a verdict and audit it in one transaction; returns what was stored."""
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict « {verdict} » inconnu (attendus : {', '.join(VERDICTS)})")
    now = state.now_iso()
    details = {"verdict": verdict, "request_id": request_id, "equipment_id": equipment_id}
    with closing(state.connect(db_path)) as conn, state.transaction(conn):
        if verdict == "missed":
            details["fault_at"] = when = _fault_time(equipment_id, fault_at)
            version, alarms = _version_before(conn, equipment_id, when), []
            conn.execute(
                "INSERT INTO feedback (verdict, model_version, equipment_id, fault_at, comment, at, by) "
                "VALUES ('missed', ?, ?, ?, ?, ?, ?)",
                (version, equipment_id, when, comment, now, by),
            )
        else:
            alarms = _alarms(conn, request_id, equipment_id)
            version = alarms[0]["model_version"]
            conn.executemany(
                "INSERT INTO feedback (audit_seq, verdict, model_version, request_id, equipment_id, comment, at, by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (audit_seq) DO UPDATE SET verdict = excluded.verdict, "
                "comment = excluded.comment, at = excluded.at, by = excluded.by",
                [
                    (a["seq"], verdict, a["model_version"], request_id, a["equipment_id"], comment, now, by)
                    for a in alarms
                ],
            )
        details["rows"] = len(alarms) or 1
        entry = {"kind": "feedback", "actor": by, "request_id": request_id, "equipment_id": equipment_id}
        audit.append(conn, [{**entry, "model_version": version, "details": details}])
    return {"verdict": verdict, "alarms": len(alarms), "model_version": version}


def _alarms(conn, request_id: str | None, equipment_id: str | None) -> list[dict[str, Any]]:
    """The alarms of one prediction request (of one of its equipments), as audited."""
    if not request_id:
        raise FeedbackError("indiquez l'identifiant de la requête (request_id) qui a levé l'alarme")
    rows = conn.execute(
        "SELECT seq, equipment_id, model_version, decision FROM audit WHERE kind = 'prediction' "
        "AND request_id = :request AND (:equipment IS NULL OR equipment_id = :equipment)",
        {"request": request_id, "equipment": equipment_id or None},
    ).fetchall()
    if not rows:
        raise FeedbackError(f"aucune prédiction avec l'identifiant de requête « {request_id} »", 404)
    alarms = [dict(r) for r in rows if r["decision"] == ANOMALY]
    if not alarms:
        raise FeedbackError(f"la requête « {request_id} » n'a levé aucune alarme : rien à confirmer ou infirmer", 409)
    return alarms


def _fault_time(equipment_id: str | None, fault_at: str | datetime | None) -> str:
    if not equipment_id or fault_at is None:
        raise FeedbackError("une panne manquée se signale avec l'équipement (equipment_id) et l'heure (fault_at)")
    try:
        return audit.utc_iso(fault_at)
    except ValueError:
        raise FeedbackError("fault_at : date invalide, attendu le format ISO 8601 (2026-01-05T10:00:00Z)") from None


def _version_before(conn, equipment_id: str, when: str) -> str:
    """The model version that last scored ``equipment_id`` at or before ``when``."""
    row = conn.execute(
        "SELECT model_version FROM audit WHERE kind = 'prediction' AND equipment_id = ? AND at <= ? "
        "ORDER BY seq DESC LIMIT 1",
        (equipment_id, when),
    ).fetchone()
    if row is None:
        raise FeedbackError(f"aucune prédiction pour l'équipement « {equipment_id} » avant le {when}", 404)
    return row["model_version"]


def summary(db_path) -> dict[str, dict[str, Any]]:
    """Per model version: alarms raised, reviewed, confirmed, rejected, the share confirmed, faults missed."""
    conn = state.reader(db_path)
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(("alarms", "confirmed", "rejected", "missed"), 0)
    )
    alarms = "SELECT model_version, count(*) FROM audit WHERE kind = 'prediction' AND decision = ? GROUP BY 1"
    for version, n in conn.execute(alarms, (ANOMALY,)).fetchall():
        out[version]["alarms"] = n
    for version, verdict, n in conn.execute("SELECT model_version, verdict, count(*) FROM feedback GROUP BY 1, 2"):
        out[version][verdict] = n
    for counts in out.values():
        counts["reviewed"] = counts["confirmed"] + counts["rejected"]
        counts["confirmed_share"] = counts["confirmed"] / counts["reviewed"] if counts["reviewed"] else None
    return dict(sorted(out.items()))
