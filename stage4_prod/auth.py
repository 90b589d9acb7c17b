"""API keys, roles and the per-key rate limit.

A key looks like ``pk_3f9c0a1e2b4d5c6f.<43 random characters>``: a public identifier
(16 hex digits, shown by ``keys list`` and written in the audit trail and the logs) and
32 random bytes. Only the sha256 of the whole key is stored (table ``api_keys`` of the
state database, ``state.py``). sha256 and not a slow KDF (bcrypt, scrypt, argon2): a slow
hash protects low-entropy secrets chosen by people against guessing; a key of 256 random
bits cannot be guessed whatever the hash, and a fast hash keeps checking a key on every
request cheap.
A request's key is found by its identifier, then its hash compared in constant time
(``hmac.compare_digest``). The key itself is never stored, logged or echoed in an error.

Roles and what they may do (``PERMISSIONS``):

* ``reader``: monitoring (``GET /monitoring``, ``/metrics``, ``/models``);
* ``operator``: predict (one reading, batches, files, the stream) and send feedback;
* ``auditor``: read the audit trail (``GET /audit``);
* ``admin``: deploy a model, roll back, manage keys.

Duties are separated: an admin does not predict, an operator does not read the trail.

FastAPI glue: ``require("predict")`` is a dependency that answers 401 (no or unknown key,
with ``WWW-Authenticate``), 403 (role not allowed) or 429 (too many requests, with
``Retry-After``), and otherwise returns the caller's ``Principal``. It finds the
``Authenticator`` in ``app.state.auth``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from . import audit, state

logger = logging.getLogger(__name__)

HEADER = "X-API-Key"
KEY_PREFIX = "pk_"
KEY_PATTERN = re.compile(r"pk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
ROLES = ("reader", "operator", "auditor", "admin")
ACTIONS = {  # action -> what a French message calls it
    "monitoring": "consulter la surveillance",
    "predict": "demander des prédictions",
    "feedback": "confirmer ou infirmer une alarme",
    "audit": "lire le journal d'audit",
    "deploy": "déployer un modèle",
    "rollback": "revenir au modèle précédent",
    "keys": "gérer les clés d'API",
}
PERMISSIONS: dict[str, frozenset[str]] = {
    "reader": frozenset({"monitoring"}),
    "operator": frozenset({"monitoring", "predict", "feedback"}),
    "auditor": frozenset({"monitoring", "audit"}),
    "admin": frozenset({"monitoring", "deploy", "rollback", "keys"}),
}
UNKNOWN_KEY = "clé d'API absente ou inconnue : envoyez une clé valide dans l'en-tête X-API-Key"
DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 40
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()  # compared when the id is unknown: same work either way


class KeyRefused(ValueError):
    """A key operation was refused (unknown role, unknown key...); the message is French."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (a person or a system), its role and its public id."""

    name: str
    role: str
    key_id: str

    def can(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, frozenset())


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(db_path, name: str, role: str, by: str = "cli") -> str:
    """Create a key for ``name`` with ``role``, audit it, and return the key (shown once, never stored)."""
    name = name.strip()
    if role not in ROLES:
        raise KeyRefused(f"rôle « {role} » inconnu (rôles : {', '.join(ROLES)})")
    if not name or len(name) > 64 or not name.isprintable():
        raise KeyRefused("nom invalide : de 1 à 64 caractères imprimables")
    key_id = secrets.token_hex(8)
    key = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    conn = state.connect(db_path)
    try:
        with state.transaction(conn):
            conn.execute(
                "INSERT INTO api_keys (key_id, name, role, key_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, role, hash_key(key), state.now_iso(), by),
            )
            details = {"key_id": key_id, "name": name, "role": role}
            audit.append(conn, [{"kind": "key_create", "actor": by, "details": details}])
    finally:
        conn.close()
    logger.info("API key %s created for %s (role %s) by %s", key_id, name, role, by)
    return key


def revoke_key(db_path, key_id: str, by: str = "cli") -> None:
    """Revoke a key by its public id (effective on the next request); audited. KeyRefused if unknown."""
    conn = state.connect(db_path)
    try:
        with state.transaction(conn):
            row = conn.execute("SELECT name, revoked_at FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                raise KeyRefused(f"aucune clé d'identifiant « {key_id} »")
            if row["revoked_at"]:
                raise KeyRefused(f"la clé {key_id} ({row['name']}) est déjà révoquée depuis {row['revoked_at']}")
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ?", (state.now_iso(), by, key_id)
            )
            audit.append(
                conn, [{"kind": "key_revoke", "actor": by, "details": {"key_id": key_id, "name": row["name"]}}]
            )
    finally:
        conn.close()
    logger.info("API key %s revoked by %s", key_id, by)


def list_keys(db_path) -> list[dict[str, str | None]]:
    """Every key, oldest first: id, name, role, creation, revocation. Never the key nor its hash."""
    conn = state.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT key_id, name, role, created_at, created_by, revoked_at, revoked_by FROM api_keys ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()
    return [dict(row) for row in rows]


def authenticate(db_path, presented_key: str | None) -> Principal | None:
    """The Principal of an active key, or None (missing, malformed, unknown, wrong or revoked key).

    The stored hash is compared in constant time. Nothing of the presented key is logged.
    The key is read from the database on every call (no cache): a revocation by any
    process refuses the very next request.
    """
    match = KEY_PATTERN.fullmatch(presented_key or "")
    if match is None:
        return None
    key_id = match.group(1)
    rows = (
        state.reader(db_path)  # this thread's open connection: no file opening per request
        .execute("SELECT name, role, key_hash, revoked_at FROM api_keys WHERE key_id = ?", (key_id,))
        .fetchall()
    )
    row = rows[0] if rows else None
    stored = row["key_hash"] if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(hash_key(presented_key), stored) or row is None:
        logger.warning("refused API key: unknown id or wrong secret (id %s)", key_id)
        return None
    if row["revoked_at"]:
        logger.warning("refused API key %s (%s): revoked", key_id, row["name"])
        return None
    return Principal(name=row["name"], role=row["role"], key_id=key_id)


class RateLimiter:
    """A token bucket per key, in this process's memory: ``rate_per_s`` on average, bursts of ``burst``.

    With several uvicorn workers each has its own buckets, so a key gets up to ``workers``
    times the rate; the limit protects the service from one runaway client, it is not billing.
    """

    def __init__(self, rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST, clock=time.monotonic):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, time of last update)
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> float:
        """Take one token for ``key_id``: 0.0 if allowed, else the seconds to wait before retrying."""
        if self.rate_per_s <= 0:
            return 0.0  # limit switched off
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate_per_s


class AuthError(Exception):
    """A refused request: HTTP ``status``, French ``detail`` and the headers to send."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class Authenticator:
    """Key check, role check and rate limit, for the HTTP dependencies and the WebSocket handshake."""

    def __init__(self, db_path, rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST):
        self.db_path = db_path
        self.limiter = RateLimiter(rate_per_s, burst)

    def check(self, presented_key: str | None, action: str) -> Principal:
        """The caller's Principal if its key is valid, its role allows ``action`` and its bucket has a token.

        Raises AuthError 401, 403 or 429 otherwise (AuditUnavailable if the database cannot be read).
        """
        principal = authenticate(self.db_path, presented_key)
        if principal is None:
            raise AuthError(401, UNKNOWN_KEY, {"WWW-Authenticate": f'ApiKey header="{HEADER}"'})
        if not principal.can(action):
            allowed = ", ".join(role for role in ROLES if action in PERMISSIONS[role])
            raise AuthError(
                403,
                f"rôle « {principal.role} » non autorisé pour {ACTIONS[action]} (rôle(s) autorisé(s) : {allowed})",
            )
        wait = self.limiter.acquire(principal.key_id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            logger.warning("rate limit reached for key %s (%s)", principal.key_id, principal.name)
            raise AuthError(
                429,
                f"trop de requêtes pour cette clé : au plus {self.limiter.rate_per_s:g} par seconde "
                f"en moyenne, réessayez dans {seconds} s",
                {"Retry-After": str(seconds)},
            )
        return principal


api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="Clé d'API (make create-key)")


def require(action: str) -> Callable[..., Principal]:
    """A FastAPI dependency allowing only keys whose role may do ``action``; returns the Principal."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    async def dependency(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> Principal:
        try:
            principal = request.app.state.auth.check(key, action)
        except AuthError as exc:
            raise HTTPException(exc.status, exc.detail, exc.headers) from None
        request.state.principal = principal  # the request log and the audit rows name the caller
        return principal

    return dependency


# Endpoint signatures say what they need: ``def predict(..., who: Operator)``.
Reader = Annotated[Principal, Depends(require("monitoring"))]
Operator = Annotated[Principal, Depends(require("predict"))]
Technician = Annotated[Principal, Depends(require("feedback"))]
Auditor = Annotated[Principal, Depends(require("audit"))]
Deployer = Annotated[Principal, Depends(require("deploy"))]
RollbackAdmin = Annotated[Principal, Depends(require("rollback"))]
KeyAdmin = Annotated[Principal, Depends(require("keys"))]
