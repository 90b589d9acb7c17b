"""The audit trail: every prediction and every admin or business action, in one hash chain.

Each row stores ``sha256(previous row's hash + canonical JSON of its content)``: editing, inserting
or deleting a row breaks the chain; ``chain_head`` (count, last hash) catches a truncated tail, and
the head hash ``verify`` prints, kept elsewhere (``--ancre``), a chain rewritten whole.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.fast_text import canonical_json, canonical_json_rows
from common.shared_sqlite import GroupCommit, insert_rows

from . import __version__
from .state import GENESIS, AuditUnavailable, Refused, db_path, now_iso, reader, transaction
from .state import connect as connect  # the trail's callers open the state database with audit.connect

# What a row's hash covers (prev_hash and row_hash are the chain itself).
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
    body = canonical({name: content.get(name) for name in CONTENT})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _entries(rows: Iterable[Mapping[str, Any]], kind: str | None = None) -> list[dict]:
    """Each row's content but ``seq`` (``kind`` overrides each row's), JSON columns as canonical text."""
    entries = []
    for values in rows:
        entry = {name: values.get(name) for name in CONTENT[1:]}
        entry["kind"] = kind or entry["kind"]
        entry["app_version"] = entry["app_version"] or __version__
        if entry["score"] is not None:
            entry["score"] = float(entry["score"])
        entries.append(entry)
    for name in ("inputs", "details"):  # a text is stored as it is; a batch's objects are written together
        objects = [entry for entry in entries if entry[name] is not None and not isinstance(entry[name], str)]
        for entry, text in zip(objects, canonical_json_rows([entry[name] for entry in objects]), strict=True):
            entry[name] = text
    return entries


def _chain(conn: sqlite3.Connection, groups: list[list[dict[str, Any]]]) -> list[int]:
    """Chain groups of ``_entries`` after the head, in the open transaction; the row count after each group."""
    count, head = conn.execute("SELECT count, head_hash FROM chain_head WHERE id = 1").fetchone()
    at = now_iso()
    contents, counts = [], []
    for entries in groups:
        for entry in entries:
            count += 1
            entry["seq"], entry["at"] = count, entry["at"] or at  # so that ``at`` follows ``seq``
            contents.append(entry)
        counts.append(count)
    rows = []
    for content, body in zip(contents, canonical_json_rows(contents), strict=True):
        prev, head = head, hashlib.sha256((head + body).encode("utf-8")).hexdigest()
        rows.append((*(content[name] for name in CONTENT), prev, head))
    if rows:
        insert_rows(conn, "audit", COLUMNS, rows)  # common/shared_sqlite.py: executemany, a few statements
        conn.execute("UPDATE chain_head SET count = ?, head_hash = ? WHERE id = 1", (count, head))
    return counts


def append(conn: sqlite3.Connection, entries: Iterable[Mapping[str, Any]]) -> int:
    """Chain ``entries`` inside the caller's ``transaction``, with what it changes (a key, the pointer)."""
    return _chain(conn, [_entries(entries)])[0]


def record(conn: sqlite3.Connection, entries: Iterable[Mapping[str, Any]], kind: str | None = None) -> int:
    """Append ``entries`` in a transaction of their own, committed before returning."""
    prepared = _entries(entries, kind)
    with transaction(conn):
        return _chain(conn, [prepared])[0]


def record_predictions(conn: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    return record(conn, rows, "prediction")


def record_action(conn: sqlite3.Connection, kind: str, actor: str, details: Mapping[str, Any], **context) -> int:
    return record(conn, [{**context, "kind": kind, "actor": actor, "details": dict(details)}])


class Recorder:
    """The service's prediction rows through the group commit: the requests arriving together share one commit."""

    def __init__(self, path: str | os.PathLike | None = None):
        target = db_path(path)

        def commit(groups: list[list[dict[str, Any]]]) -> list[int]:
            with transaction(reader(target)) as conn:
                return _chain(conn, groups)

        self._commits = GroupCommit(commit, thread_name="audit-writer")

    def record_predictions(self, rows: Iterable[Mapping[str, Any]]) -> int:
        entries = _entries(rows, "prediction")
        return self._commits.run(entries) if entries else 0

    async def record_predictions_async(self, rows: Iterable[Mapping[str, Any]]) -> int:
        entries = _entries(rows, "prediction")
        return await self._commits.run_async(entries) if entries else 0

    def close(self) -> None:
        self._commits.close()


@dataclass
class Report:
    """What ``verify`` found: the first broken row and why (French), if any."""

    rows: int = 0
    head_hash: str = GENESIS
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, seq: int | None, problem: str) -> None:
        if self.ok:
            self.first_bad_seq = seq
        if len(self.problems) < 20:
            self.problems.append(problem)

    def text(self) -> str:
        if self.ok:
            return (
                f"Journal d'audit intègre : {self.rows} ligne(s), chaîne de hachage vérifiée.\n"
                f"Empreinte de tête (à conserver hors du serveur) : {self.head_hash}"
            )
        where = f" ; première ligne en cause : n° {self.first_bad_seq}" if self.first_bad_seq else ""
        return "Journal d'audit ALTÉRÉ" + where + ".\n" + "\n".join(f"- {p}" for p in self.problems)


def verify(path: str | os.PathLike | None = None, anchor: str | None = None) -> Report:
    """Recompute the chain: an edited, inserted or deleted row, a truncated tail (``chain_head``), a chain
    rewritten whole (``anchor``, a head kept elsewhere, is not in it)."""
    conn = reader(path)
    count, head = conn.execute("SELECT count, head_hash FROM chain_head WHERE id = 1").fetchone()
    report, expected, anchored = Report(), 1, anchor in (None, GENESIS)
    for row in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq"):
        seq = row["seq"]
        report.rows += 1
        if seq != expected or row["prev_hash"] != report.head_hash:
            report.fail(
                seq, f"ligne n° {seq} : ne suit pas la ligne précédente (ligne supprimée ou insérée avant elle)"
            )
        if row_hash(row["prev_hash"], dict(row)) != row["row_hash"]:
            report.fail(seq, f"ligne n° {seq} : contenu modifié (son empreinte ne correspond plus)")
        report.head_hash, expected = row["row_hash"], seq + 1
        anchored = anchored or report.head_hash == anchor
    rows = report.rows
    if (rows, report.head_hash) != (count, head):  # name the row where the trail and its head part
        if rows < count:
            seq, why = rows + 1, "et suivantes supprimées"
        elif rows > count:
            seq, why = count + 1, "et suivantes ajoutées sans la tête"
        else:
            seq, why = rows, "remplacée"
        problem = f"{count} ligne(s) enregistrée(s), {rows} présente(s) (ligne n° {seq} {why}, ou tête modifiée)"
        report.fail(seq, f"tête de chaîne : {problem}")
    if not anchored:
        report.fail(None, f"l'empreinte d'ancrage {anchor[:16]}… n'apparaît pas dans la chaîne")
    return report


def utc_iso(value: str | datetime | None) -> str | None:
    """An ISO time as stored in ``at`` (UTC, milliseconds); a naive time is UTC."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="milliseconds")


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
    """Rows matching the filters, oldest first, JSON columns decoded; ``since`` inclusive, ``until`` exclusive."""
    try:
        since, until = utc_iso(since), utc_iso(until)
    except ValueError:
        raise Refused("date invalide : attendu le format ISO 8601, par exemple 2026-01-05T10:00:00Z") from None
    filters = {
        "actor = ?": user,
        "model_version = ?": model_version,
        "kind = ?": kind,
        "at >= ?": since,
        "at < ?": until,
    }
    clauses = [clause for clause, value in filters.items() if value is not None]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cursor = reader(path).execute(
        f"SELECT {', '.join(COLUMNS)} FROM audit {where} ORDER BY seq LIMIT ? OFFSET ?",
        (
            *(value for value in filters.values() if value is not None),
            max(0, min(limit, MAX_QUERY_ROWS)),
            max(0, offset),
        ),
    )
    rows = [dict(row) for row in cursor]
    for row in rows:
        for name in ("inputs", "details"):
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return rows


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows of ``query`` as ``;``-separated CSV, like the inference log."""
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
    rows = reader(path).execute(
        "SELECT inputs, decision FROM audit WHERE kind = 'prediction' ORDER BY seq DESC LIMIT ?", (limit,)
    )
    return [(json.loads(r["inputs"]), r["decision"]) for r in reversed(rows.fetchall())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage4_prod.audit", description="Journal d'audit de l'étape 4.")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", default=None, help="base d'état (défaut : $STATE_DB ou state/stage4.sqlite)")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", parents=[db], help="vérifie la chaîne de hachage (code 1 si elle est altérée)")
    check.add_argument("--ancre", default=None, help="empreinte de tête conservée ailleurs, qui doit figurer")
    export = sub.add_parser("export", parents=[db], help="écrit les lignes en CSV sur la sortie standard")
    export.add_argument("--utilisateur", default=None, help="nom de la clé d'API qui a agi")
    export.add_argument("--version-modele", default=None, help="version du modèle")
    export.add_argument("--depuis", default=None, help="date ISO 8601 (incluse)")
    export.add_argument("--jusqua", default=None, help="date ISO 8601 (exclue)")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            rows = query(args.db, args.utilisateur, args.version_modele, args.depuis, args.jusqua, limit=MAX_QUERY_ROWS)
            sys.stdout.write(to_csv(rows))
            return 0
        if not db_path(args.db).is_file():
            print(f"Aucun journal d'audit : {db_path(args.db)} n'existe pas.", file=sys.stderr)
            return 2
        report = verify(args.db, args.ancre)
        print(report.text(), file=sys.stdout if report.ok else sys.stderr)
        return 0 if report.ok else 1
    except (AuditUnavailable, ValueError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
