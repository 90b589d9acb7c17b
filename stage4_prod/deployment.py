"""Which model version is served: the last row of the table ``deployment``, a pointer every worker follows.

A deploy checks the candidate (sha256, loading, sane scores), then moves the pointer with its audit
row in one transaction. Each worker's ``ModelCache`` keeps the versions it loaded: a rollback is one
SQLite write and a dictionary look-up.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.registry import LoadedModel, RegistryError, load
from common.simulator import simulate

from . import audit, state

logger = logging.getLogger(__name__)

CHECK_SEED = 2_000_003  # a simulated normal day no training seed uses
CHECK_HOURS = 12.0
MAX_ALARM_RATE = 0.05  # a sane model flags about 0.5 % of normal readings (its alarm_quantile); 10x that is broken
DEFAULT_CHECK_INTERVAL_S = 0.2
KEEP_LOADED = 4  # versions a worker keeps in memory: the served one and those a rollback may need
COLUMNS = "version, previous_version, action, deployed_at, by"


class DeploymentError(state.Refused):
    """A deploy or rollback was refused."""


@dataclass(frozen=True)
class Pointer:
    version: str
    previous_version: str | None
    action: str
    deployed_at: str
    by: str


def _current(conn) -> Pointer | None:
    rows = conn.execute(f"SELECT {COLUMNS} FROM deployment ORDER BY id DESC LIMIT 1").fetchall()
    return Pointer(*rows[0]) if rows else None


def current(db_path=None) -> Pointer | None:
    """The served version (None before the first start wrote it)."""
    return _current(state.reader(db_path))


def load_served(db_path=None, models_dir=None, default_version: str | None = None) -> LoadedModel:
    """The pointer's version, else ``default_version``, else the latest: what a one-off command scores with."""
    pointer = current(db_path) if state.db_path(db_path).exists() else None
    return load(pointer.version if pointer else default_version, models_dir)


def _move(conn, version: str, previous: str | None, action: str, by: str, details: dict, **origin) -> Pointer:
    """Write the new pointer and its audit row, inside the caller's transaction."""
    row = (version, previous, action, state.now_iso(), by)
    conn.execute(f"INSERT INTO deployment ({COLUMNS}) VALUES (?, ?, ?, ?, ?)", row)
    kind = "rollback" if action == "rollback" else "deploy"
    audit.append(conn, [{"kind": kind, "actor": by, "model_version": version, "details": details, **origin}])
    return _current(conn)


def initialize(db_path, version: str, by: str = "démarrage") -> Pointer:
    """Write the first pointer if there is none yet (workers starting together: one writes); the one in force."""
    with closing(state.connect(db_path)) as conn, state.transaction(conn):
        return _current(conn) or _move(conn, version, None, "initial", by, {"initial": True})


def check_candidate(loaded: LoadedModel) -> dict[str, Any]:
    """Score a simulated normal day with the candidate: finite scores, few alarms; what was measured."""
    sample = simulate("normal", seed=CHECK_SEED, hours=CHECK_HOURS)
    try:
        scores = np.asarray(loaded.model.score(sample), dtype="float64")
    except Exception as exc:  # a candidate that cannot score, whatever the reason, must not be served
        raise DeploymentError(f"le modèle {loaded.version} ne sait pas noter un échantillon : {exc}", 422) from None
    if len(scores) != len(sample) or not np.isfinite(scores).all() or not math.isfinite(loaded.model.threshold_):
        raise DeploymentError(f"le modèle {loaded.version} donne des scores non finis ou incomplets : refusé", 422)
    # A version commissioned for one pump (common.baseline) is judged on that pump's first readings, not the bench's.
    commissioned = "commissioning" in loaded.metadata
    rate = loaded.model.reference_["alarm_rate"] if commissioned else float(np.mean(scores > loaded.model.threshold_))
    if rate > MAX_ALARM_RATE:
        judged_on = "ses lectures de mise en service" if commissioned else "mesures normales simulées"
        raise DeploymentError(
            f"le modèle {loaded.version} lève des alarmes sur {100 * rate:.1f} % de {judged_on} "
            f"(au plus {100 * MAX_ALARM_RATE:.0f} % admis) : refusé",
            422,
        )
    return {"sample_rows": len(sample), "alarm_rate": rate, "score_median": float(np.median(scores))}


def deploy(
    db_path,
    version: str,
    by: str,
    models_dir=None,
    check: Callable[[LoadedModel], dict[str, Any]] = check_candidate,
    request_id: str | None = None,
    client: str | None = None,
) -> tuple[Pointer, LoadedModel]:
    """Check ``version``, then serve it; the new pointer and the loaded model. A refusal is audited too."""
    try:
        loaded = load(version, models_dir)
        measured = check(loaded)
    except (RegistryError, DeploymentError) as exc:
        status = getattr(exc, "status", 404 if "introuvable" in str(exc) else 422)
        details = {"version": version, "reason": str(exc)}
        with closing(state.connect(db_path)) as conn:
            audit.record_action(conn, "deploy_refused", by, details, request_id=request_id, client=client)
        logger.warning("deploy of model %s refused: %s", version, exc)
        raise DeploymentError(f"déploiement de {version} refusé : {exc}", status) from None
    with closing(state.connect(db_path)) as conn, state.transaction(conn):
        before = _current(conn)
        if before is not None and before.version == version:
            raise DeploymentError(f"la version {version} est déjà servie", 409)
        previous = before.version if before else None
        details = {"version": version, "previous_version": previous, "check": measured}
        pointer = _move(conn, version, previous, "deploy", by, details, request_id=request_id, client=client)
    logger.info("model %s deployed by %s (previous: %s)", version, by, previous)
    return pointer, loaded


def rollback(db_path, by: str, request_id: str | None = None, client: str | None = None) -> Pointer:
    """Serve again the version the last deploy replaced, unchecked (it was when deployed).
    After 1.0 -> 1.1 -> 1.2: 1.1, then 1.0."""
    with closing(state.connect(db_path)) as conn, state.transaction(conn):
        now = _current(conn)
        if now is None or now.previous_version is None:
            raise DeploymentError("aucune version précédente vers laquelle revenir", 409)
        target = now.previous_version
        row = conn.execute(
            "SELECT previous_version FROM deployment WHERE version = ? AND action != 'rollback' ORDER BY id DESC LIMIT 1",
            (target,),
        ).fetchone()
        details = {"from": now.version, "to": target}
        pointer = _move(conn, target, row and row[0], "rollback", by, details, request_id=request_id, client=client)
    logger.warning("model rolled back from %s to %s by %s", now.version, target, by)
    return pointer


class ModelCache:
    """This worker's loaded models and the one it serves, following the pointer at most every ``check_interval_s``.

    One thread loads a new version while the others keep serving; one that cannot be loaded is logged once.
    """

    def __init__(self, db_path, models_dir=None, check_interval_s: float = DEFAULT_CHECK_INTERVAL_S):
        self.db_path, self.models_dir, self.check_interval_s = db_path, models_dir, check_interval_s
        self._loaded: dict[str, LoadedModel] = {}  # oldest first
        self._current: LoadedModel | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self._failed: str | None = None  # the version that failed to load last

    @property
    def version(self) -> str | None:
        return None if self._current is None else self._current.version

    def start(self, default_version: str | None = None) -> LoadedModel:
        """Serve ``load_served``'s version; the very first start writes the pointer."""
        loaded = load_served(self.db_path, self.models_dir, default_version)
        initialize(self.db_path, loaded.version)
        self.add(loaded)
        return self.get()

    def add(self, loaded: LoadedModel) -> None:
        """Keep the deploying worker's candidate, so that it is not loaded twice."""
        with self._lock:
            self._remember(loaded)

    def _remember(self, loaded: LoadedModel) -> None:
        loaded.model.warm_up()  # the forest for large batches, ready in the background
        self._loaded.pop(loaded.version, None)
        self._loaded[loaded.version] = loaded
        unused = [version for version in self._loaded if version != self.version]
        for version in unused[: max(0, len(self._loaded) - KEEP_LOADED)]:
            del self._loaded[version]

    def get(self) -> LoadedModel:
        """The model to serve now; RegistryError only if no model could ever be loaded."""
        served = self._current
        if served is not None and time.monotonic() < self._next_check:
            return served
        if not self._lock.acquire(blocking=served is None):  # serving already: another thread refreshes
            return served
        try:
            self._refresh()
        finally:
            self._lock.release()
        if self._current is None:
            raise RegistryError("aucun modèle chargé : le pointeur de déploiement est vide ou illisible")
        return self._current

    def _refresh(self) -> None:
        self._next_check = time.monotonic() + self.check_interval_s
        try:
            pointer = current(self.db_path)
        except state.AuditUnavailable as exc:
            logger.error("deployment pointer unreadable, keeping model %s: %s", self.version, exc)
            return
        if pointer is None or pointer.version == self.version:
            return
        loaded = self._loaded.get(pointer.version)
        if loaded is None:
            try:
                loaded = load(pointer.version, self.models_dir)
            except RegistryError as exc:
                if self._failed != pointer.version:
                    logger.error("cannot load model %s, still serving %s: %s", pointer.version, self.version, exc)
                    self._failed = pointer.version
                if self._current is None:
                    raise
                return
        self._remember(loaded)
        previous, self._current = self.version, loaded  # one reference assignment: atomic for readers
        logger.info("worker %s now serves model %s (was %s)", os.getpid(), loaded.version, previous)
