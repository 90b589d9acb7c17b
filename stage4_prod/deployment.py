"""Which model version is served: a pointer in SQLite shared by every worker, deploy and rollback.

The table ``deployment`` of the state database (``state.py``) keeps one row per change
(deploy, rollback, first start): the version served, the one it replaced, when and by
whom. The last row is the pointer. ``deploy`` checks a candidate *before* switching (sha256, loading, sane scores on a
simulated normal sample), then moves the pointer and writes the audit row in one
transaction: every worker sees either the old pointer or the new one, never a half
switch. A refused candidate changes nothing (the refusal is audited).

Each worker holds a ``ModelCache``: on a request it reads the pointer (at most every
``check_interval_s``), and when it moved, loads the new version once and swaps its
reference to it. Versions already loaded stay in memory, so a rollback costs one SQLite
write and, in each worker, one dictionary look-up: well under a second.
``rollback`` undoes the last deploy: after 1.0.0 -> 1.1.0 -> 1.2.0, rollbacks go to 1.1.0,
then 1.0.0.

The served model comes from here and nowhere else: ``ModelCache`` in the service,
``load_served`` in a command that runs once; both serve the pointer's version, else the
configured one (``MODEL_VERSION``), else the latest.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
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
KEEP_LOADED = 4  # versions a worker keeps in memory (the current one, and the ones a rollback may need)


class DeploymentError(Exception):
    """A deploy or rollback was refused; the message (French) says why. ``status`` suits an HTTP answer."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pointer:
    version: str
    previous_version: str | None
    action: str
    deployed_at: str
    by: str


def _current(conn) -> Pointer | None:
    rows = conn.execute(
        "SELECT id, version, previous_version, action, deployed_at, by FROM deployment ORDER BY id DESC LIMIT 1"
    ).fetchall()  # fetchall: the statement is finished, no read transaction stays open
    return Pointer(*tuple(rows[0])[1:]) if rows else None


def current(db_path=None) -> Pointer | None:
    """The served version (None before the first start wrote it), read on this thread's open connection."""
    return _current(state.reader(db_path))


def load_served(db_path=None, models_dir=None, default_version: str | None = None) -> LoadedModel:
    """The model to serve: the pointer's version, else ``default_version`` (else the latest), sha256 checked.

    What a command that runs once (a batch job, a prediction from the shell, a retrain)
    scores with; the service keeps a ``ModelCache``, which starts from the same version.
    A state database that does not exist yet is not created. Raises
    common.registry.RegistryError, or AuditUnavailable if the database cannot be read.
    """
    pointer = current(db_path) if state.db_path(db_path).exists() else None
    return load(pointer.version if pointer else default_version, models_dir)


def history(db_path=None) -> list[Pointer]:
    """Every change, oldest first."""
    conn = state.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT version, previous_version, action, deployed_at, by FROM deployment ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    return [Pointer(*tuple(row)) for row in rows]


def initialize(db_path, version: str, by: str = "démarrage") -> Pointer:
    """Write the first pointer if there is none yet, and return the pointer in force.

    Several workers starting together call it: the first one writes, the others read.
    """
    conn = state.connect(db_path)
    try:
        with state.transaction(conn):
            pointer = _current(conn)
            if pointer is None:
                conn.execute(
                    "INSERT INTO deployment (version, previous_version, action, deployed_at, by) VALUES (?, NULL, ?, ?, ?)",
                    (version, "initial", state.now_iso(), by),
                )
                audit.append(
                    conn, [{"kind": "deploy", "actor": by, "model_version": version, "details": {"initial": True}}]
                )
                pointer = _current(conn)
        return pointer
    finally:
        conn.close()


def check_candidate(loaded: LoadedModel, max_alarm_rate: float = MAX_ALARM_RATE) -> dict[str, Any]:
    """Score a simulated normal sample with the candidate; DeploymentError (French) if the result is not sane.

    Sane: every score finite, the threshold finite, and an alarm rate on normal data below
    ``max_alarm_rate``. Returns what was measured (audited with the deploy).
    """
    sample = simulate("normal", seed=CHECK_SEED, hours=CHECK_HOURS)
    try:
        scores = np.asarray(loaded.model.score(sample), dtype="float64")
    except Exception as exc:  # a candidate that cannot score, whatever the reason, must not be served
        raise DeploymentError(f"le modèle {loaded.version} ne sait pas noter un échantillon : {exc}", 422) from None
    threshold = float(loaded.model.threshold_)
    if len(scores) != len(sample) or not np.isfinite(scores).all() or not math.isfinite(threshold):
        raise DeploymentError(f"le modèle {loaded.version} donne des scores non finis ou incomplets : refusé", 422)
    rate = float(np.mean(scores > threshold))
    if rate > max_alarm_rate:
        raise DeploymentError(
            f"le modèle {loaded.version} lève des alarmes sur {100 * rate:.1f} % de mesures normales simulées "
            f"(au plus {100 * max_alarm_rate:.0f} % admis) : refusé",
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
    """Check ``version`` and make it the served one; returns the new pointer and the loaded model.

    Raises DeploymentError (French): 404 unknown version, 422 corrupted or insane candidate,
    409 already served. The candidate is checked before the switch; a refusal changes
    nothing and is audited (``deploy_refused``).
    """
    try:
        loaded = load(version, models_dir)
        measured = check(loaded)
    except (RegistryError, DeploymentError) as exc:
        status = exc.status if isinstance(exc, DeploymentError) else (404 if "introuvable" in str(exc) else 422)
        conn = state.connect(db_path)
        try:
            audit.record_action(
                conn,
                "deploy_refused",
                by,
                {"version": version, "reason": str(exc)},
                request_id=request_id,
                client=client,
            )
        finally:
            conn.close()
        logger.warning("deploy of model %s refused: %s", version, exc)
        raise DeploymentError(f"déploiement de {version} refusé : {exc}", status) from None
    conn = state.connect(db_path)
    try:
        with state.transaction(conn):
            before = _current(conn)
            if before is not None and before.version == version:
                raise DeploymentError(f"la version {version} est déjà servie", 409)
            previous = before.version if before else None
            conn.execute(
                "INSERT INTO deployment (version, previous_version, action, deployed_at, by) VALUES (?, ?, ?, ?, ?)",
                (version, previous, "deploy", state.now_iso(), by),
            )
            details = {"version": version, "previous_version": previous, "check": measured}
            entry = {"kind": "deploy", "actor": by, "model_version": version, "details": details}
            audit.append(conn, [{**entry, "request_id": request_id, "client": client}])
            pointer = _current(conn)
    finally:
        conn.close()
    logger.info("model %s deployed by %s (previous: %s)", version, by, previous)
    return pointer, loaded


def rollback(db_path, by: str, request_id: str | None = None, client: str | None = None) -> Pointer:
    """Serve again the version the last deploy replaced; DeploymentError 409 if there is none.

    No check and no loading: that version was checked when it was deployed, and the
    workers still hold it in memory.
    """
    conn = state.connect(db_path)
    try:
        with state.transaction(conn):
            now = _current(conn)
            if now is None or now.previous_version is None:
                raise DeploymentError("aucune version précédente vers laquelle revenir", 409)
            target = now.previous_version
            # The version before the target is the one that was replaced when the target was itself deployed.
            row = conn.execute(
                "SELECT previous_version FROM deployment WHERE version = ? AND action != 'rollback' "
                "ORDER BY id DESC LIMIT 1",
                (target,),
            ).fetchone()
            before_target = row["previous_version"] if row else None
            conn.execute(
                "INSERT INTO deployment (version, previous_version, action, deployed_at, by) VALUES (?, ?, ?, ?, ?)",
                (target, before_target, "rollback", state.now_iso(), by),
            )
            details = {"from": now.version, "to": target}
            entry = {"kind": "rollback", "actor": by, "model_version": target, "details": details}
            audit.append(conn, [{**entry, "request_id": request_id, "client": client}])
            pointer = _current(conn)
    finally:
        conn.close()
    logger.warning("model rolled back from %s to %s by %s", now.version, target, by)
    return pointer


class ModelCache:
    """This worker's loaded models and the one it serves, following the shared pointer.

    ``get()`` is what a request calls: it reads the pointer at most every
    ``check_interval_s`` and returns the model to use. When the pointer names another
    version, it is taken from memory or loaded (sha256 checked) by one thread while the
    others keep serving the current model; if loading fails the current model stays
    and the error is logged. Thread-safe.
    """

    def __init__(
        self,
        db_path,
        models_dir=None,
        check_interval_s: float = DEFAULT_CHECK_INTERVAL_S,
        loader: Callable[..., LoadedModel] = load,
        keep: int = KEEP_LOADED,
    ):
        self.db_path = db_path
        self.models_dir = models_dir
        self.check_interval_s = check_interval_s
        self.loader = loader
        self.keep = keep
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._current: LoadedModel | None = None
        self._next_check = 0.0
        self._refresh_lock = threading.Lock()
        self._failed: str | None = None  # the version that failed to load last (logged once)

    def start(self, default_version: str | None = None) -> LoadedModel:
        """Load the served version (``load_served``), write the first pointer if there is none, and serve it.

        The very first start of a service writes the pointer; the later ones, and the other
        workers, follow it. Raises RegistryError or AuditUnavailable (French).
        """
        loaded = load_served(self.db_path, self.models_dir, default_version)
        initialize(self.db_path, loaded.version)
        self.add(loaded)
        return self.get()

    def add(self, loaded: LoadedModel) -> None:
        """Keep an already loaded model (the deploying worker's candidate) so that it is not loaded twice."""
        with self._refresh_lock:
            self._remember(loaded)

    def _remember(self, loaded: LoadedModel) -> None:
        loaded.model.warm_up()  # the forest for large batches, ready in the background (scikit-learn import)
        self._loaded[loaded.version] = loaded
        self._loaded.move_to_end(loaded.version)
        while len(self._loaded) > self.keep:
            oldest = next(iter(self._loaded))
            if self._current is not None and oldest == self._current.version:
                self._loaded.move_to_end(oldest)
                continue
            del self._loaded[oldest]

    def get(self) -> LoadedModel:
        """The model to serve now. Raises RegistryError (French) only if no model could ever be loaded."""
        current = self._current
        if current is not None and time.monotonic() < self._next_check:
            return current
        # Before the first model is loaded every caller waits; afterwards one refreshes, the others serve.
        if not self._refresh_lock.acquire(blocking=current is None):
            return current
        try:
            self._refresh()
        finally:
            self._refresh_lock.release()
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
        if pointer is None or (self._current is not None and pointer.version == self._current.version):
            return
        loaded = self._loaded.get(pointer.version)
        if loaded is None:
            try:
                loaded = self.loader(pointer.version, self.models_dir)
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

    @property
    def version(self) -> str | None:
        return None if self._current is None else self._current.version

    def loaded_versions(self) -> list[str]:
        return list(self._loaded)
