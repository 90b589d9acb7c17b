"""What maintenance says about the alarms: confirmed, rejected, or a fault the model missed.

``POST /feedback`` stores one of three verdicts, by the technician's key name, in the table
``feedback`` of the state database (``state.py``):

* ``confirmed`` / ``rejected``: about the alarms of one prediction request (its
  ``request_id``, optionally narrowed to one ``equipment_id`` for a batch). The alarms are
  found in the audit trail, so a verdict always names the model version that raised them.
  A later verdict on the same alarm replaces the earlier one.
* ``missed``: a fault on ``equipment_id`` at ``fault_at`` that raised no alarm; it is
  charged to the model version that scored that equipment last before that time.

Each verdict is also chained in the audit trail (kind ``feedback``). ``summary`` gives, per
model version, the alarms raised, reviewed, confirmed and rejected, the share confirmed
among the reviewed ones (an estimate of precision), and the faults missed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from common.decision import ANOMALY

from . import audit, state

VERDICTS = ("confirmed", "rejected", "missed")


class FeedbackError(ValueError):
    """A verdict was refused; the message is French, ``status`` suits an HTTP answer (404, 409, 422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def record(
    db_path,
    verdict: str,
    by: str,
    request_id: str | None = None,
    equipment_id: str | None = None,
    fault_at: str | datetime | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Store a verdict and audit it in one transaction; returns what was stored (French errors)."""
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict « {verdict} » inconnu (attendus : {', '.join(VERDICTS)})")
    now = state.now_iso()
    conn = state.connect(db_path)
    try:
        with state.transaction(conn):
            if verdict == "missed":
                stored = [_missed(conn, equipment_id, fault_at, comment, now, by)]
            else:
                stored = _verdict_on_alarms(conn, verdict, request_id, equipment_id, comment, now, by)
            details = {"verdict": verdict, "request_id": request_id, "equipment_id": equipment_id, "rows": len(stored)}
            if verdict == "missed":
                details["fault_at"] = stored[0]["fault_at"]
            entry = {"kind": "feedback", "actor": by, "request_id": request_id, "equipment_id": equipment_id}
            audit.append(conn, [{**entry, "model_version": stored[0]["model_version"], "details": details}])
    finally:
        conn.close()
    return {
        "verdict": verdict,
        "alarms": len(stored) if verdict != "missed" else 0,
        "model_version": stored[0]["model_version"],
    }


def _verdict_on_alarms(conn, verdict, request_id, equipment_id, comment, now, by) -> list[dict[str, Any]]:
    if not request_id:
        raise FeedbackError("indiquez l'identifiant de la requête (request_id) qui a levé l'alarme")
    sql = "SELECT seq, equipment_id, model_version, decision FROM audit WHERE kind = 'prediction' AND request_id = ?"
    params: list[Any] = [request_id]
    if equipment_id:
        sql += " AND equipment_id = ?"
        params.append(equipment_id)
    rows = conn.execute(sql, params).fetchall()
    if not rows:
        raise FeedbackError(f"aucune prédiction avec l'identifiant de requête « {request_id} »", 404)
    alarms = [dict(r) for r in rows if r["decision"] == ANOMALY]
    if not alarms:
        raise FeedbackError(f"la requête « {request_id} » n'a levé aucune alarme : rien à confirmer ou infirmer", 409)
    conn.executemany(
        "INSERT INTO feedback (audit_seq, verdict, model_version, request_id, equipment_id, comment, at, by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (audit_seq) DO UPDATE SET verdict = excluded.verdict, "
        "comment = excluded.comment, at = excluded.at, by = excluded.by",
        [(a["seq"], verdict, a["model_version"], request_id, a["equipment_id"], comment, now, by) for a in alarms],
    )
    return alarms


def _missed(conn, equipment_id, fault_at, comment, now, by) -> dict[str, Any]:
    if not equipment_id or fault_at is None:
        raise FeedbackError("une panne manquée se signale avec l'équipement (equipment_id) et l'heure (fault_at)")
    try:
        moment = fault_at if isinstance(fault_at, datetime) else datetime.fromisoformat(str(fault_at))
    except ValueError:
        raise FeedbackError("fault_at : date invalide, attendu le format ISO 8601 (2026-01-05T10:00:00Z)") from None
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    when = moment.isoformat(timespec="milliseconds")
    row = conn.execute(
        "SELECT model_version FROM audit WHERE kind = 'prediction' AND equipment_id = ? AND at <= ? "
        "ORDER BY seq DESC LIMIT 1",
        (equipment_id, when),
    ).fetchone()
    if row is None:
        raise FeedbackError(f"aucune prédiction pour l'équipement « {equipment_id} » avant le {when}", 404)
    conn.execute(
        "INSERT INTO feedback (verdict, model_version, equipment_id, fault_at, comment, at, by) "
        "VALUES ('missed', ?, ?, ?, ?, ?, ?)",
        (row["model_version"], equipment_id, when, comment, now, by),
    )
    return {"model_version": row["model_version"], "fault_at": when}


def summary(db_path) -> dict[str, dict[str, Any]]:
    """Per model version: alarms raised, reviewed, confirmed, rejected, share confirmed, faults missed."""
    conn = state.connect(db_path)
    try:
        raised = conn.execute(
            "SELECT model_version, count(*) FROM audit WHERE kind = 'prediction' AND decision = ? GROUP BY model_version",
            (ANOMALY,),
        ).fetchall()
        verdicts = conn.execute("SELECT model_version, verdict, count(*) FROM feedback GROUP BY 1, 2").fetchall()
    finally:
        conn.close()
    out: dict[str, dict[str, Any]] = {}

    def entry(version: str) -> dict[str, Any]:
        return out.setdefault(version, {"alarms": 0, "confirmed": 0, "rejected": 0, "missed": 0})

    for version, n in raised:
        entry(version)["alarms"] = n
    for version, verdict, n in verdicts:
        entry(version)[verdict] = n
    for e in out.values():
        reviewed = e["confirmed"] + e["rejected"]
        e["reviewed"] = reviewed
        e["confirmed_share"] = e["confirmed"] / reviewed if reviewed else None
    return dict(sorted(out.items()))
