"""The audit trail: who predicted what, with which model, and every admin action, hash-chained.

One table of the state database (``state.py``), ``audit``, holds one row per scored
reading (``kind`` = ``prediction``) and one row per admin or business action (``deploy``,
``deploy_refused``, ``rollback``, ``key_create``, ``key_revoke``, ``feedback``), in a
single chain: each row stores the hash of the previous row (``prev_hash``) and its own
``row_hash = sha256(prev_hash + canonical JSON of its content)``, its sequence number
included. Editing a row breaks its hash; inserting or deleting one breaks the link of the
next row. Deleting the *last* rows breaks no link, so a one-row table ``chain_head`` keeps
the number of rows and the hash of the last one, updated in the same transaction as every
append: a truncated tail no longer matches it. Someone able to rewrite the whole file can
rewrite the head too: against that, copy the head hash that ``verify`` prints somewhere
the service cannot write (a ticket, a signed e-mail) and pass it back with ``--ancre``.

Appends run inside a state transaction (``BEGIN IMMEDIATE``: read the head, insert, move
the head, commit), so they are serialised across threads and processes, and they are
committed before the caller answers: a caller that gets ``AuditUnavailable`` must answer
503, never the prediction. The service's predictions go through a ``Recorder``, the
state's group commit: the rows of the requests that arrive together share one commit.

    python -m stage4_prod.audit verify [--db FICHIER] [--ancre HASH]
    python -m stage4_prod.audit export [--db FICHIER] [--utilisateur NOM] [--depuis ISO] > audit.csv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.fast_text import canonical_json, canonical_json_rows

from . import __version__
from .state import GENESIS, AuditUnavailable, GroupCommit, connect, db_path, now_iso, transaction

KINDS = ("prediction", "deploy", "deploy_refused", "rollback", "key_create", "key_revoke", "feedback")
# The content a row's hash covers (prev_hash and row_hash are the chain itself).
CONTENT = (
    "seq",
    "kind",
    "at",
    "actor",
    "request_id",
    "source",
    "equipment_id",
    "inputs",
    "score",
    "decision",
    "model_version",
    "app_version",
    "client",
    "details",
)
COLUMNS = (*CONTENT, "prev_hash", "row_hash")
MAX_QUERY_ROWS = 10_000


canonical = canonical_json  # the one JSON spelling of a value that hashes are computed on


def row_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """sha256 of the previous row's hash followed by the canonical JSON of this row's content."""
    body = canonical({name: content.get(name) for name in CONTENT})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _entries(rows: Iterable[Mapping[str, Any]], at: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """The content of each row but ``seq``, from a caller's mappings: JSON columns as canonical text, scores finite.

    ``at`` is the time to use for a row without one (``None``: left for ``_chain`` to
    stamp), ``kind`` the kind of every row (``None``: each row says); ``app_version``
    defaults to this service's. Raises ValueError (or the TypeError of a value JSON cannot
    hold) for the first bad row: nothing is prepared then.
    """
    entries = []
    for values in rows:
        entry = {name: values.get(name) for name in CONTENT[1:]}
        entry["kind"] = kind or entry["kind"]
        if entry["kind"] not in KINDS:
            raise ValueError(f"unknown audit kind {entry['kind']!r}")
        if not entry["actor"]:
            raise ValueError("an audit row needs an actor")
        entry["at"] = entry["at"] or at
        entry["app_version"] = entry["app_version"] or __version__
        if entry["score"] is not None:
            entry["score"] = float(entry["score"])
            if not math.isfinite(entry["score"]):
                raise ValueError("an audited score must be finite")
        entries.append(entry)
    for name in ("inputs", "details"):  # a text is stored as it is; the rows of a batch are written together
        objects = [entry for entry in entries if entry[name] is not None and not isinstance(entry[name], str)]
        for entry, text in zip(objects, canonical_json_rows([entry[name] for entry in objects]), strict=True):
            entry[name] = text
    return entries


def _entry(values: Mapping[str, Any], at: str | None) -> dict[str, Any]:
    """``_entries`` of one row."""
    return _entries([values], at)[0]


def _chain(conn: sqlite3.Connection, groups: list[list[dict[str, Any]]]) -> list[int]:
    """Chain groups of entries (``_entries``) after the head, in the open transaction; the count after each group.

    Rows without a time get the time of this call, so that ``at`` follows ``seq``. Each
    row's hash is ``row_hash``; the canonical JSON of the rows is written all at once.
    """
    count, head = conn.execute("SELECT count, head_hash FROM chain_head WHERE id = 1").fetchone()
    at = now_iso()
    contents, counts = [], []
    for entries in groups:
        for entry in entries:
            count += 1
            entry["seq"], entry["at"] = count, entry["at"] or at  # entries are this call's own
            contents.append(entry)
        counts.append(count)
    rows = []
    for content, body in zip(contents, canonical_json_rows(contents), strict=True):
        prev, head = head, hashlib.sha256((head + body).encode("utf-8")).hexdigest()
        rows.append((*(content[name] for name in CONTENT), prev, head))
    if rows:
        placeholders = ", ".join("?" * len(COLUMNS))
        conn.executemany(f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows)
        conn.execute("UPDATE chain_head SET count = ?, head_hash = ? WHERE id = 1", (count, head))
    return counts


def append(conn: sqlite3.Connection, entries: Iterable[Mapping[str, Any]]) -> int:
    """Chain ``entries`` after the head, inside the caller's open transaction; returns the new count.

    Use within ``state.transaction(conn)``, so that the rows are written together with
    whatever the caller changes in the same database (a deployment pointer, a key) or not at
    all. Raises ValueError for a bad entry (nothing written).
    """
    if not conn.in_transaction:
        raise RuntimeError("audit.append needs an open transaction (use state.transaction)")
    return _chain(conn, [_entries(entries)])[0]


def record(conn: sqlite3.Connection, entries: Iterable[Mapping[str, Any]]) -> int:
    """Append ``entries`` in one transaction of their own and commit before returning.

    Raises ValueError for a bad entry, AuditUnavailable if they could not be written:
    nothing was written then.
    """
    prepared = _entries(entries)
    with transaction(conn):
        return _chain(conn, [prepared])[0]


def record_predictions(conn: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Audit the scored readings of one request (one or a whole batch) in ONE transaction.

    Each row: ``actor``, ``request_id``, ``source``, ``equipment_id``, ``inputs`` (the eight
    sensor values), ``score``, ``decision``, ``model_version``, ``client``; ``at`` and
    ``app_version`` default to now and this service. Call it before sending the response.
    """
    prepared = _entries(rows, kind="prediction")
    with transaction(conn):
        return _chain(conn, [prepared])[0]


def record_action(
    conn: sqlite3.Connection,
    kind: str,
    actor: str,
    details: Mapping[str, Any],
    *,
    request_id: str | None = None,
    client: str | None = None,
    model_version: str | None = None,
) -> int:
    """Audit one admin or business action (``deploy``, ``key_create``...) in its own transaction."""
    entry = {
        "kind": kind,
        "actor": actor,
        "details": dict(details),
        "request_id": request_id,
        "client": client,
        "model_version": model_version,
    }
    return record(conn, [entry])


class Recorder:
    """The service's prediction rows, audited through the state's group commit (``state.GroupCommit``).

    The rows of one call are checked and serialised in the caller's thread (ValueError for a
    bad one, nothing queued), then chained with the rows of the other requests waiting at
    the same moment, in one transaction. Each call returns the count after its own rows once
    they are committed, or raises AuditUnavailable (French): then none of them was written.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self._commits = GroupCommit(_chain, path)

    def record_predictions(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Audit the scored readings of one request (same rows as ``record_predictions``), committed."""
        entries = _entries(rows, kind="prediction")
        return self._commits.run(entries) if entries else 0

    async def record_predictions_async(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """``record_predictions`` for the event loop: the commit runs in the group commit's writer thread."""
        entries = _entries(rows, kind="prediction")
        return await self._commits.run_async(entries) if entries else 0

    def close(self) -> None:
        self._commits.close()


@dataclass
class Report:
    """What ``verify`` found: ``ok`` and, if not, the first broken row and why (French)."""

    rows: int
    head_hash: str
    ok: bool = True
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.ok:
            return (
                f"Journal d'audit intègre : {self.rows} ligne(s), chaîne de hachage vérifiée.\n"
                f"Empreinte de tête (à conserver hors du serveur) : {self.head_hash}"
            )
        where = f" ; première ligne en cause : n° {self.first_bad_seq}" if self.first_bad_seq else ""
        return "Journal d'audit ALTÉRÉ" + where + ".\n" + "\n".join(f"- {p}" for p in self.problems)


def verify(path: str | os.PathLike | None = None, anchor: str | None = None) -> Report:
    """Recompute the whole chain and compare it with the stored hashes and the head.

    Detects an edited row (its hash no longer matches its content), an inserted or
    deleted row (the next row's ``prev_hash``, or a gap in the sequence), and a
    truncated tail (``chain_head`` says more rows, or another head). ``anchor`` is a
    head hash kept elsewhere: the chain must contain it.
    """
    conn = connect(path)
    try:
        stored = conn.execute("SELECT count, head_hash FROM chain_head WHERE id = 1").fetchone()
        report = Report(rows=0, head_hash=GENESIS)
        prev, expected_seq, anchored = GENESIS, 1, anchor is None or anchor == GENESIS

        def bad(seq: int | None, message: str) -> None:
            if report.ok:
                report.first_bad_seq = seq
            report.ok = False
            if len(report.problems) < 20:
                report.problems.append(message)

        for row in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq"):
            seq = row["seq"]
            report.rows += 1
            if seq != expected_seq:
                bad(seq, f"ligne n° {seq} : numéro attendu {expected_seq} (ligne supprimée ou insérée avant elle)")
            if row["prev_hash"] != prev:
                bad(seq, f"ligne n° {seq} : ne suit pas la ligne précédente (ligne supprimée ou insérée avant elle)")
            if row_hash(row["prev_hash"], dict(row)) != row["row_hash"]:
                bad(seq, f"ligne n° {seq} : contenu modifié (son empreinte ne correspond plus)")
            prev, expected_seq = row["row_hash"], seq + 1
            anchored = anchored or prev == anchor
        report.head_hash = prev
        if (report.rows, prev) != (stored["count"], stored["head_hash"]):
            # Name the row where the trail and its head part: the first missing, the first extra, or the last.
            count = stored["count"]
            if report.rows < count:
                seq, why = report.rows + 1, f"ligne n° {report.rows + 1} et suivantes supprimées, ou tête modifiée"
            elif report.rows > count:
                seq, why = count + 1, f"ligne n° {count + 1} et suivantes ajoutées sans la tête, ou tête modifiée"
            else:
                seq, why = report.rows, f"ligne n° {report.rows} remplacée, ou tête modifiée"
            bad(seq, f"tête de chaîne : {count} ligne(s) enregistrée(s), {report.rows} présente(s) ({why})")
        if not anchored:
            bad(None, f"l'empreinte d'ancrage {anchor[:16]}… n'apparaît pas dans la chaîne")
        return report
    finally:
        conn.close()


def _utc(value: str | datetime | None) -> str | None:
    """An ISO time (or datetime) as the UTC ISO text stored in ``at``; naive times are UTC."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def query(
    path: str | os.PathLike | None = None,
    user: str | None = None,
    model_version: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Audit rows matching the filters, oldest first; ``since`` inclusive, ``until`` exclusive.

    ``inputs`` and ``details`` come back decoded. Raises ValueError (French) on a bad time.
    """
    clauses, params = [], []
    for column, value in (("actor", user), ("model_version", model_version), ("kind", kind)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    try:
        bounds = (("at >= ?", _utc(since)), ("at < ?", _utc(until)))
    except ValueError:
        raise ValueError("date invalide : attendu le format ISO 8601, par exemple 2026-01-05T10:00:00Z") from None
    for clause, value in bounds:
        if value is not None:
            clauses.append(clause)
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    limit = max(0, min(int(limit), MAX_QUERY_ROWS))
    conn = connect(path)
    try:
        cursor = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM audit {where} ORDER BY seq LIMIT ? OFFSET ?",
            (*params, limit, max(0, int(offset))),
        )
        rows = [dict(row) for row in cursor]
    finally:
        conn.close()
    for row in rows:
        for name in ("inputs", "details"):
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return rows


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows of ``query`` as CSV text (``;``-separated, like the inference log), JSON columns as text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [canonical(row[c]) if c in ("inputs", "details") and row[c] is not None else row[c] for c in COLUMNS]
        )
    return buffer.getvalue()


def recent_inputs(path: str | os.PathLike | None = None, limit: int = 1440) -> list[tuple[dict[str, float], str]]:
    """The last ``limit`` audited readings (inputs, decision), oldest first: to refill a drift window at start."""
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT inputs, decision FROM audit WHERE kind = 'prediction' ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
    finally:
        conn.close()
    return [(json.loads(r["inputs"]), r["decision"]) for r in reversed(rows)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage4_prod.audit", description="Journal d'audit de l'étape 4.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="vérifie la chaîne de hachage (code de sortie 1 si elle est altérée)")
    check.add_argument("--db", default=None, help="base d'état (défaut : $STATE_DB ou state/stage4.sqlite)")
    check.add_argument("--ancre", default=None, help="empreinte de tête conservée ailleurs, qui doit figurer")
    export = sub.add_parser("export", help="écrit les lignes en CSV sur la sortie standard")
    export.add_argument("--db", default=None, help="base d'état (défaut : $STATE_DB ou state/stage4.sqlite)")
    export.add_argument("--utilisateur", default=None, help="nom de la clé d'API qui a agi")
    export.add_argument("--version-modele", default=None, help="version du modèle")
    export.add_argument("--depuis", default=None, help="date ISO 8601 (incluse)")
    export.add_argument("--jusqua", default=None, help="date ISO 8601 (exclue)")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            if not db_path(args.db).is_file():
                print(f"Aucun journal d'audit : {db_path(args.db)} n'existe pas.", file=sys.stderr)
                return 2
            report = verify(args.db, args.ancre)
            print(report.text(), file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else 1
        rows = query(args.db, args.utilisateur, args.version_modele, args.depuis, args.jusqua, limit=MAX_QUERY_ROWS)
        sys.stdout.write(to_csv(rows))
        return 0
    except (AuditUnavailable, ValueError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
